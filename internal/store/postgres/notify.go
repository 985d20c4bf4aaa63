package postgres

// Notifications (store.Notifier) through PostgreSQL's LISTEN/NOTIFY: every
// transaction that changes a job, an ask, an event or the outbox queues
// its notifications on its txn, and tryTx sends them with pg_notify just
// before COMMIT, so PostgreSQL delivers them when (and only if) the
// transaction commits. Listen holds one dedicated connection per call.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

// txn is one transaction of the store: the pgx transaction and the
// notifications its commit sends.
type txn struct {
	pgx.Tx
	notes []store.Notification
}

// notify queues n for the commit. A job is named once per transaction,
// with the state it commits; other repeats are dropped.
func (t *txn) notify(n store.Notification) {
	for i, m := range t.notes {
		if n.Kind == store.NotifyJob && m.Kind == store.NotifyJob && m.JobID == n.JobID {
			t.notes[i] = n
			return
		}
		if m == n {
			return
		}
	}
	t.notes = append(t.notes, n)
}

// wireNote is the payload of one NOTIFY: the notification and the origin
// of the Store value that sent it. Ids only, far below PostgreSQL's limit
// of 8000 bytes.
type wireNote struct {
	store.Notification
	Origin string `json:"o"`
}

// sendNotes issues the notifications of tx in one statement, in order.
func (s *Store) sendNotes(ctx context.Context, tx *txn) error {
	if len(tx.notes) == 0 {
		return nil
	}
	payloads := make([]string, len(tx.notes))
	for i, n := range tx.notes {
		b, err := json.Marshal(wireNote{Notification: n, Origin: s.origin})
		if err != nil {
			return fmt.Errorf("encode notification: %w", err)
		}
		payloads[i] = string(b)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i`,
		s.channel, payloads); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// channelBase is the NOTIFY channel of a store without a schema, and the
// prefix of the others.
const channelBase = "mcp_task_relay"

// maxIdentifier is PostgreSQL's longest identifier in bytes (NAMEDATALEN-1).
const maxIdentifier = 63

// channelName returns the NOTIFY channel of the store in schema: stores in
// different schemas of one database must not hear each other. A schema
// whose name would make the channel too long is named by its hash.
func channelName(schema string) string {
	if schema == "" {
		return channelBase
	}
	if name := channelBase + "_" + schema; len(name) <= maxIdentifier {
		return name
	}
	sum := sha256.Sum256([]byte(schema))
	return channelBase + "_" + hex.EncodeToString(sum[:16])
}

// newOrigin returns a random origin id for a Store value.
func newOrigin() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("origin id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Listen parameters.
const (
	// listenBuffer is the capacity of a Listen channel.
	listenBuffer = 1024
	// listenBackoffMin and listenBackoffMax bound the wait between
	// attempts to reconnect a listener.
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 2 * time.Second
	// listenerAppName is the application_name of listener connections
	// (unless the URL sets one), to find them in pg_stat_activity.
	listenerAppName = "mcp-task-relay listener"
)

// Listen implements store.Notifier. It opens a dedicated connection (with
// the pool's settings) and LISTENs on the store's channel before it
// returns, so every change committed afterwards is delivered. The
// notifications of this Store value are skipped. When the channel's
// buffer is full a notification is dropped, and a NotifyResync (one for
// any number of drops) is delivered once there is room; after a lost
// connection it reconnects with backoff and delivers a NotifyResync too.
// The channel is closed when ctx ends or the store is closed.
func (s *Store) Listen(ctx context.Context) (<-chan store.Notification, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closed, cancel)
	conn, err := s.listenConn(ctx)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	l := &listener{s: s, out: make(chan store.Notification, listenBuffer), wake: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Go(func() { l.receive(ctx, conn) })
	wg.Go(func() { l.resync(ctx) })
	go func() {
		wg.Wait()
		stop()
		cancel()
		close(l.out)
	}()
	return l.out, nil
}

// listenConn connects to the database and LISTENs on the store's channel.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = listenerAppName
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listen: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listen on %s: %w", s.channel, err)
	}
	return conn, nil
}

// closeConn closes a listener connection, bounding the wait for the
// server.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// listener is one Listen: a receiver that reads notifications from its
// connection into out without ever blocking, and a resyncer that delivers
// the NotifyResync owed for what the receiver could not deliver.
type listener struct {
	s   *Store
	out chan store.Notification
	// lost is set when a notification was dropped or the connection was
	// lost; wake tells the resyncer.
	lost atomic.Bool
	wake chan struct{}
}

// receive reads notifications until ctx ends, reconnecting after a lost
// connection.
func (l *listener) receive(ctx context.Context, conn *pgx.Conn) {
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			l.deliver(n.Payload)
			continue
		}
		closeConn(conn)
		conn = nil
		if ctx.Err() != nil {
			return
		}
		if conn = l.reconnect(ctx); conn == nil {
			return
		}
		// Whatever was committed while the connection was down is missed.
		l.missed()
	}
}

// reconnect connects again, with backoff, until it succeeds (nil when ctx
// ends first).
func (l *listener) reconnect(ctx context.Context) *pgx.Conn {
	wait := listenBackoffMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if conn, err := l.s.listenConn(ctx); err == nil {
			return conn
		}
		wait = min(2*wait, listenBackoffMax)
	}
}

// deliver passes on one payload unless this Store value sent it; when the
// buffer is full it drops it and owes a resync.
func (l *listener) deliver(payload string) {
	var w wireNote
	if err := json.Unmarshal([]byte(payload), &w); err != nil || w.Origin == l.s.origin || w.Kind == "" {
		return
	}
	select {
	case l.out <- w.Notification:
	default:
		l.missed()
	}
}

// missed records that a resync is owed and wakes the resyncer.
func (l *listener) missed() {
	l.lost.Store(true)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// resync delivers one NotifyResync for whatever was missed since the last
// one, waiting for room in the buffer.
func (l *listener) resync(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		// Cleared before the send: a drop while it waits owes another.
		if !l.lost.Swap(false) {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case l.out <- store.Notification{Kind: store.NotifyResync}:
		}
	}
}
