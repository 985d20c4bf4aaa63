package store

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Several relays on one database
//
// A store shared by several relay processes (PostgreSQL) implements the
// optional interfaces below besides Store. The relay checks for each with
// a type assertion; a store without them (SQLite) serves one relay
// process, whose in-process signals are then enough.

// Wrapper is a Store that decorates another one (timing, tracing): it
// passes the Store methods on and hands out the store it wraps, so that
// As still finds the optional interfaces below through it.
type Wrapper interface {
	Store
	// Unwrap returns the wrapped store.
	Unwrap() Store
}

// As returns s, or the first store s wraps (see Wrapper), that implements
// T, the way errors.As looks through wrapped errors. Callers look for the
// optional interfaces of a store with it, never with a bare type
// assertion, which a decorator would defeat.
func As[T any](s Store) (T, bool) {
	for s != nil {
		if t, ok := s.(T); ok {
			return t, true
		}
		w, ok := s.(Wrapper)
		if !ok {
			break
		}
		s = w.Unwrap()
	}
	var zero T
	return zero, false
}

// Notifier is a store that tells other processes sharing it about the
// changes it commits, in the manner of PostgreSQL's LISTEN/NOTIFY: every
// transaction that changes a job, an ask, an answer, an event or the
// outbox sends its Notifications when it commits (never before, never for
// a rolled-back transaction). A notification names what changed, not the
// data: a receiver reads the store. Notifications are a wake-up, not a
// log: one may be lost (a dropped connection), so every receiver keeps a
// slow poll as a safety net.
type Notifier interface {
	// Listen delivers the notifications committed by other Store values
	// (other processes, or other Opens in this one) until ctx ends, then
	// closes the channel. It reconnects by itself after a lost
	// connection, sending a Notification with Kind NotifyResync once it
	// is back, since changes in between were missed.
	Listen(ctx context.Context) (<-chan Notification, error)
}

// NotifyKind says what a Notification is about.
type NotifyKind string

// Notification kinds.
const (
	// NotifyJob: a job was inserted or changed state (JobID, State,
	// StateVersion set).
	NotifyJob NotifyKind = "job"
	// NotifyAsk: an ask was created, deferred or answered, or closed with
	// its attempt (JobID, AskID set).
	NotifyAsk NotifyKind = "ask"
	// NotifyEvent: a non-transition event (a log chunk, a note) was
	// appended to a job (JobID set).
	NotifyEvent NotifyKind = "event"
	// NotifyOutbox: an outbox message was enqueued.
	NotifyOutbox NotifyKind = "outbox"
	// NotifyResync: the listener reconnected; anything may have changed.
	NotifyResync NotifyKind = "resync"
)

// Notification is one committed change, as Notifier delivers it.
type Notification struct {
	Kind         NotifyKind         `json:"k"`
	JobID        string             `json:"j,omitempty"`
	AskID        string             `json:"a,omitempty"`
	State        relaytype.JobState `json:"s,omitempty"`
	StateVersion int64              `json:"v,omitempty"`
}

// ArtifactContents is a store that keeps the bytes of artifacts, so that
// every relay sharing it can serve them. JobTransition stores
// JobTransitionParams.Contents in the same transaction as the artifacts'
// metadata; an artifact stored again without contents has none (its
// older bytes are not the new artifact's).
type ArtifactContents interface {
	// ArtifactOpen streams the stored bytes of one artifact. An artifact
	// with no stored bytes (unknown, or left out for its size) fails with
	// an error wrapping relaytype.ErrArtifactNotFound.
	ArtifactOpen(ctx context.Context, p *ArtifactGetParams) (io.ReadCloser, *relaytype.Artifact, error)
}

// Registry is a store that records the relays sharing it.
type Registry interface {
	// RelayUpsert records a relay (or refreshes its record): what it is
	// and what it can run, and that it was seen at SeenAt.
	RelayUpsert(ctx context.Context, r *RelayRecord) error
	// RelayList returns every recorded relay, most recently seen first.
	RelayList(ctx context.Context) ([]*RelayRecord, error)
}

// RelayRecord describes one relay process sharing a store.
type RelayRecord struct {
	// ID is stable across restarts: the host and the data directory.
	ID string `json:"id"`
	// Host is the machine's host name; a job with a local repository
	// runs only on the host it was submitted on.
	Host string `json:"host"`
	// DataDir is the relay's data directory on Host.
	DataDir string `json:"dataDir"`
	// Instance is the lease owner name of the running process.
	Instance string `json:"instance"`
	// Version is the relay binary's version.
	Version string `json:"version"`
	// Projects are the projects whose jobs the relay claims (nil: any).
	Projects []string `json:"projects,omitempty"`
	// Executors are the executors it can run (nil: any).
	Executors []string  `json:"executors,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	SeenAt    time.Time `json:"seenAt"`
}

// ParseRelayList decodes a relay's projects or executors as the drivers
// store them: a JSON array, or NULL (raw nil) for a nil list (any).
func ParseRelayList(raw []byte) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	out := []string{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// SchemaTooNewError refuses to open a database migrated by a newer
// binary: an older relay must not write rows whose meaning it does not
// know. Upgrade this relay's binary.
type SchemaTooNewError struct {
	// Database is the schema version found; Known the newest this binary
	// knows.
	Database, Known int64
}

func (e *SchemaTooNewError) Error() string {
	return "the database schema is at version " + strconv.FormatInt(e.Database, 10) +
		", newer than this binary knows (" + strconv.FormatInt(e.Known, 10) +
		"): a newer relay migrated it; upgrade this relay before starting it"
}
