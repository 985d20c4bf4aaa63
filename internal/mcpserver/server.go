package mcpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Jobs is the part of *relay.Relay the MCP server uses.
type Jobs interface {
	Submit(ctx context.Context, spec *relaytype.JobSpec) (*relaytype.Job, bool, error)
	Get(ctx context.Context, id string) (*relaytype.Job, error)
	List(ctx context.Context, state relaytype.JobState, limit, offset int) ([]*relaytype.Job, int, error)
	Cancel(ctx context.Context, id string) (*relaytype.Job, error)
	Events(ctx context.Context, id string, afterID int64, limit int) ([]*relaytype.Event, error)
	Artifacts(ctx context.Context, id string) ([]*relaytype.Artifact, error)
	ReadArtifact(ctx context.Context, id string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error)
	Subscribe() (<-chan relay.Change, func())
}

// Asks is the part of *ask.Service the MCP server uses: the orchestrator
// lists the asks routed to it and answers them.
type Asks interface {
	List(ctx context.Context, jobID string, status relaytype.AnswerStatus) ([]*relaytype.AskRecord, error)
	Get(ctx context.Context, askID string) (*relaytype.AskRecord, error)
	AnswerOf(ctx context.Context, askID string) (*relaytype.AnswerRecord, error)
	Answer(ctx context.Context, a *relaytype.Answer) (*relaytype.AnswerRecord, bool, error)
}

// Defaults of Config.
const (
	// DefaultName is the implementation name reported in initialize.
	DefaultName = "mcp-task-relay"
	// DefaultVersion is the implementation version reported in initialize.
	DefaultVersion = "dev"
)

// Config configures a Server.
type Config struct {
	// Jobs is the relay the tools and resources translate to. Required.
	Jobs Jobs
	// Asks is the ask service the asks_* tools and the
	// mcp://jobs/{jobId}/asks resource translate to. When nil, they are not
	// offered and jobs_wait reports no pending asks. Defaults to nil.
	Asks Asks
	// Logger receives the server's and the SDK's logs. In stdio mode it
	// must not write to stdout. Defaults to slog.Default().
	Logger *slog.Logger
	// Name is the implementation name reported to clients. Defaults to
	// DefaultName.
	Name string
	// Version is the implementation version reported to clients. Defaults
	// to DefaultVersion.
	Version string
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	return c
}

func (c Config) validate() error {
	if c.Jobs == nil {
		return errors.New("mcpserver: Jobs is required")
	}
	return nil
}

// Server is the relay's MCP server. One Server serves any number of
// sessions; each is run with Run (stdio) or connected by an HTTP handler
// built on MCP (Streamable HTTP, with Watch running alongside).
type Server struct {
	jobs Jobs
	asks Asks // nil when the ask tools are off
	log  *slog.Logger
	mcp  *mcp.Server

	// now and progressEvery are fields so that tests can control them.
	now func() time.Time
	// progressEvery is how often jobs_wait reports progress and rechecks
	// the job (for changes made by another process).
	progressEvery time.Duration

	// subsMu guards subs: URI → sessions subscribed to it. The SDK keeps
	// its own table to address notifications; this one lets the pump skip
	// URIs nobody watches, so that a busy relay does not cost a lookup and
	// a log line per change per URI.
	subsMu sync.Mutex
	subs   map[string]map[*mcp.ServerSession]struct{}

	// pumpMu guards the shared change pump: one goroutine, however many
	// Run and Watch calls are active, so that a change is announced once.
	pumpMu    sync.Mutex
	pumpUsers int
	pumpStop  func()

	// closingMu guards closing: per session, the context of the requests
	// sent to its client, cancelled when the session is being closed.
	closingMu sync.Mutex
	closing   map[*mcp.ServerSession]sessionClosing
}

// New returns a Server with the jobs_* tools and the job resources.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		jobs:          cfg.Jobs,
		asks:          cfg.Asks,
		log:           cfg.Logger,
		now:           time.Now,
		progressEvery: defaultProgressEvery,
		subs:          map[string]map[*mcp.ServerSession]struct{}{},
		closing:       map[*mcp.ServerSession]sessionClosing{},
	}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: cfg.Name, Title: "MCP Task Relay", Version: cfg.Version}, &mcp.ServerOptions{
		Instructions: instructions(cfg.Asks != nil),
		Logger:       cfg.Logger,
		// No logging capability: logs go to the Logger, not to clients.
		// Tools and resources (with subscribe) are inferred.
		Capabilities:       &mcp.ServerCapabilities{},
		SubscribeHandler:   s.subscribe,
		UnsubscribeHandler: s.unsubscribe,
	})
	s.addTools()
	s.addResources()
	return s, nil
}

// instructions returns the text sent to clients in the initialize result:
// the loop a client model drives, with the ask steps when asks is set, the
// job states and how tool errors come back. The tools' descriptions do not
// repeat it.
func instructions(asks bool) string {
	waiting := `WAITING_ON_ANSWER (an executor question waits for its answer)`
	if asks {
		waiting = `WAITING_ON_ANSWER (see 3)`
	}
	text := `Runs long coding jobs in the background. ` +
		`1. jobs_submit {spec} returns a jobId at once. ` +
		`2. Call jobs_wait {jobId} repeatedly: each call returns within 50 s, as soon as the job or its asks change, with its status ` +
		`(or subscribe to mcp://jobs/{jobId}/status). States: QUEUED, RUNNING, ` + waiting + `, STALE (worker lost; retried up to maxAttempts); ` +
		`terminal: SUCCEEDED, FAILED, CANCELED, EXPIRED (queued past ttlS). FAILED has a reasonCode: EXECUTOR_ERROR, TIMEOUT, ` +
		`CONFLICT (patch does not apply), BAD_ARTIFACTS, POLICY (e.g. a file outside scope.fileGlobs), OUTPUT_CONTRACT (a part missing) or INTERNAL_ERROR. `
	if asks {
		text += `3. WAITING_ON_ANSWER (pendingAsks > 0): an executor asked a question. Call asks_list {jobId} and answer each pending ask ` +
			`routed to orchestrator with asks_answer, from the user's intent and the task (runner and human asks answer themselves; ` +
			`answer them only if they stay pending). Answer REJECTED only to refuse: it fails the job. Then jobs_wait again. `
	}
	return text + `When terminal, resources/read mcp://jobs/{jobId}/artifacts/patch.diff (applies to baselineCommit), ` +
		`out.md (test plan, notes) and logs.txt; jobs_get lists those that exist. Cancel with jobs_cancel. ` +
		`A tool error is an isError result with the text {"code","message","field"}.`
}

// MCP returns the underlying SDK server, for transports that connect
// sessions themselves (mcp.NewStreamableHTTPHandler).
func (s *Server) MCP() *mcp.Server { return s.mcp }

// Run serves one session on transport t until the client disconnects or
// ctx ends; it also pumps relay changes to notifications/resources/updated
// for subscribed sessions while it runs. For stdio (or any line stream),
// pass a LineTransport, which answers malformed lines instead of ending
// the session as the SDK's IOTransport and StdioTransport do. It returns
// nil when the client disconnects (including a write failing on the pipe
// it closed), ctx.Err() when ctx ends first, and any other transport error
// as is.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	// Take the relay subscription before the session can say initialize,
	// so that no change after the client's first request is missed.
	release := s.acquirePump()
	defer release()
	ss, err := s.mcp.Connect(ctx, t, nil)
	if err != nil {
		return err
	}
	defer s.forgetSession(ss)
	s.trackRequests(ss)
	defer s.closeRequests(ss)
	waitErr := make(chan error, 1)
	go func() { waitErr <- ss.Wait() }()
	select {
	case err := <-waitErr:
		if peerGone(err) {
			return nil
		}
		return err
	case <-ctx.Done():
		// The SDK's Close waits for requests in flight, such as an
		// elicitation a person may never answer: end those first.
		s.closeRequests(ss)
		_ = ss.Close()
		<-waitErr
		return ctx.Err()
	}
}

// peerGone reports whether err only says that the client went away: a
// write racing the disconnect (an answer to a subscriptions/listen the
// client abandoned, say) fails on the closed pipe, which is no fault.
func peerGone(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, mcp.ErrConnectionClosed)
}

// Watch pumps relay changes to notifications/resources/updated until ctx
// ends. Run does this itself; call Watch when sessions are connected some
// other way, such as a Streamable HTTP handler serving MCP(). Concurrent
// Run and Watch calls share one pump, so each change is announced once.
func (s *Server) Watch(ctx context.Context) {
	release := s.acquirePump()
	defer release()
	<-ctx.Done()
}

// acquirePump starts the change pump if it is not running and returns the
// function that gives the caller's use of it back; the last one stops it.
func (s *Server) acquirePump() (release func()) {
	s.pumpMu.Lock()
	defer s.pumpMu.Unlock()
	s.pumpUsers++
	if s.pumpUsers == 1 {
		changes, unsubscribe := s.jobs.Subscribe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.pump(ctx, changes)
		}()
		s.pumpStop = func() {
			cancel()
			unsubscribe()
			<-done
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.pumpMu.Lock()
			defer s.pumpMu.Unlock()
			s.pumpUsers--
			if s.pumpUsers == 0 {
				s.pumpStop()
				s.pumpStop = nil
			}
		})
	}
}

// maxBatch bounds how many queued changes the pump folds into one round of
// notifications.
const maxBatch = 64

// pump turns relay changes into resource-updated notifications. Changes
// that are already queued are folded together, so that a burst (a job
// storing three artifacts and finishing) announces each URI once.
func (s *Server) pump(ctx context.Context, changes <-chan relay.Change) {
	for {
		var batch []relay.Change
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			batch = append(batch, c)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case c, ok := <-changes:
				if !ok {
					break drain
				}
				batch = append(batch, c)
			default:
				break drain
			}
		}
		for _, uri := range s.subscribedOnly(changedURIs(batch)) {
			if err := s.mcp.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
				s.log.Warn("notify resource updated", "uri", uri, "err", err)
			}
		}
	}
}

// changedURIs lists, in order and without repeats, the resource URIs whose
// content a batch of changes affects. A state change touches the job's
// status, its event log, its asks (a job that ends closes its pending
// asks) and the job list; a stored artifact touches the artifact, the
// status (which lists artifacts) and the event log (which records it); an
// ask created or answered touches the asks, the status and the event log.
func changedURIs(batch []relay.Change) []string {
	seen := map[string]bool{}
	var uris []string
	add := func(uri string) {
		if !seen[uri] {
			seen[uri] = true
			uris = append(uris, uri)
		}
	}
	for _, c := range batch {
		if c.Artifact != "" {
			add(relaytype.ArtifactURI(c.JobID, c.Artifact))
			add(statusURI(c.JobID))
			add(eventsURI(c.JobID))
		}
		if c.State != "" {
			add(statusURI(c.JobID))
			add(eventsURI(c.JobID))
			add(asksURI(c.JobID))
			add(listURI)
		}
		if c.Asks {
			add(asksURI(c.JobID))
			add(statusURI(c.JobID))
			add(eventsURI(c.JobID))
		}
		if c.Log {
			add(eventsURI(c.JobID))
		}
	}
	return uris
}

// subscribedOnly returns the URIs of uris that a live session subscribes
// to, dropping subscriptions of sessions that have gone away.
func (s *Server) subscribedOnly(uris []string) []string {
	live := map[*mcp.ServerSession]bool{}
	for ss := range s.mcp.Sessions() {
		live[ss] = true
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	var out []string
	for _, uri := range uris {
		sessions := s.subs[uri]
		for ss := range sessions {
			if !live[ss] {
				delete(sessions, ss)
			}
		}
		if len(sessions) == 0 {
			delete(s.subs, uri)
			continue
		}
		out = append(out, uri)
	}
	return out
}

// subscribe is the SDK's SubscribeHandler: it admits subscriptions to
// resources this server serves (an existing job's, or the job list) and
// records them. The SDK adds the session to its own table afterwards.
func (s *Server) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	ref, ok := s.lookup(uri)
	if !ok {
		return mcp.ResourceNotFoundError(uri)
	}
	if ref.jobID != "" {
		if _, err := s.jobs.Get(ctx, ref.jobID); err != nil {
			if errors.Is(err, relaytype.ErrJobNotFound) {
				return mcp.ResourceNotFoundError(uri)
			}
			return err
		}
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.subs[uri] == nil {
		s.subs[uri] = map[*mcp.ServerSession]struct{}{}
	}
	s.subs[uri][req.Session] = struct{}{}
	return nil
}

// unsubscribe is the SDK's UnsubscribeHandler.
func (s *Server) unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if sessions := s.subs[req.Params.URI]; sessions != nil {
		delete(sessions, req.Session)
		if len(sessions) == 0 {
			delete(s.subs, req.Params.URI)
		}
	}
	return nil
}

// forgetSession drops every subscription of a session that has ended.
func (s *Server) forgetSession(ss *mcp.ServerSession) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for uri, sessions := range s.subs {
		delete(sessions, ss)
		if len(sessions) == 0 {
			delete(s.subs, uri)
		}
	}
}
