package httpapi

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Defaults of Config.
const (
	DefaultLongPollMax  = 25 * time.Second
	DefaultSSEHeartbeat = 10 * time.Second
	DefaultMaxBodyBytes = 1 << 20
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout closes idle keep-alive connections.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes caps a request's headers.
	DefaultMaxHeaderBytes = 64 << 10
	// ShutdownTimeout bounds how long Serve waits for requests in flight
	// once its context ends.
	ShutdownTimeout = 5 * time.Second
	// sseWriteTimeout bounds one SSE write, so that a client that stops
	// reading cannot hold a stream (and its subscription) forever.
	sseWriteTimeout = 30 * time.Second
)

// Jobs is the part of *relay.Relay the API uses.
type Jobs interface {
	// Get returns one job or an error wrapping relaytype.ErrJobNotFound.
	Get(ctx context.Context, id string) (*relaytype.Job, error)
	// Events returns a job's audit log after afterID, at most limit.
	Events(ctx context.Context, id string, afterID int64, limit int) ([]*relaytype.Event, error)
	// Subscribe returns a channel of job changes and a function that ends
	// the subscription.
	Subscribe() (<-chan relay.Change, func())
	// ListJobs returns a page of jobs, newest first, and the total.
	ListJobs(ctx context.Context, p relay.ListParams) ([]*relaytype.Job, int, error)
	// Artifacts returns the metadata of a job's stored artifacts.
	Artifacts(ctx context.Context, id string) ([]*relaytype.Artifact, error)
	// ReadArtifact returns the bytes (checked against the digest) and the
	// metadata of one artifact, or an error wrapping
	// relaytype.ErrArtifactNotFound or relaytype.ErrJobNotFound.
	ReadArtifact(ctx context.Context, jobID string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error)
	// Cancel cancels a job and returns it in its new state.
	Cancel(ctx context.Context, id string) (*relaytype.Job, error)
}

var _ Jobs = (*relay.Relay)(nil)

// Config configures a Server.
type Config struct {
	// Asks runs the Ask/Answer protocol. Required.
	Asks *ask.Service
	// Jobs reads jobs and their events. Required.
	Jobs Jobs
	// Tokens checks bearer tokens. Required unless AuthNone.
	Tokens *ask.Tokens
	// AuthNone turns off authentication (askAnswer.auth: none). Serve
	// refuses to run with it on a listener that is not loopback. Defaults
	// to false.
	AuthNone bool
	// LongPollMax caps ?wait= of GET /asks/{askId}/answer
	// (askAnswer.longPollTimeoutSec). Defaults to 25s.
	LongPollMax time.Duration
	// SSEHeartbeat is the interval of heartbeat events on event streams
	// (askAnswer.sseHeartbeatSec). Defaults to 10s.
	SSEHeartbeat time.Duration
	// MaxBodyBytes caps request bodies; larger ones get 413. Defaults to
	// 1 MiB.
	MaxBodyBytes int64
	// ExecutorMCP is the executor-facing MCP endpoint (Streamable HTTP),
	// served at /mcp to job tokens. Defaults to none.
	ExecutorMCP http.Handler
	// ClientMCP is the relay's MCP server for orchestrators (Streamable
	// HTTP), served at /mcp to the operator token. Defaults to none.
	ClientMCP http.Handler
	// AttestationKey is served at GET /attestation-key. Defaults to none
	// (404).
	AttestationKey ed25519.PublicKey
	// Health, when set, is asked by GET /healthz: an error makes it
	// answer 503 with the error's text. Defaults to always healthy.
	Health func() error
	// BindHost is the configured bind address (askAnswer.host), accepted
	// as a Host header name at the listener's port besides the loopback
	// names and the listener's own address. Defaults to none.
	BindHost string
	// AllowedHosts are more Host header values the relay answers to
	// (askAnswer.allowedHosts): "name" (at the listener's port) or
	// "name:port". On a loopback listener only localhost, 127.0.0.1,
	// [::1], the listener's address and BindHost at its port are accepted
	// otherwise, so that a web page cannot reach the API through DNS
	// rebinding (403). On any other listener every Host is accepted
	// unless AllowedHosts is set. Defaults to none.
	AllowedHosts []string
	// AllowedOrigins are browser origins ("http://localhost:6274") whose
	// requests are served (askAnswer.allowedOrigins). A request with
	// another Origin header than these or the relay's own is 403.
	// Defaults to none.
	AllowedOrigins []string
	// ReadHeaderTimeout bounds reading a request's headers (slow
	// senders are cut off). Defaults to 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body: a
	// slower body gets 408 and its connection is closed. It ends with
	// the body, so long polls, event streams and MCP responses that
	// last longer go on. Defaults to 30s.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Defaults
	// to 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's headers; larger ones get 431.
	// Defaults to 64 KiB.
	MaxHeaderBytes int
	// Handlers maps more ServeMux patterns ("GET /metrics", "/ui/") to
	// their handlers: the dashboard and the metrics endpoint. They are
	// served behind the same Host, Origin and Content-Type checks as the
	// API, and authenticate requests themselves. Defaults to none.
	Handlers map[string]http.Handler
	// OnWait, when set, is called just before a long poll parks in
	// ask.Service.Wait; benchmarks and tests use it to answer only once a
	// waiter is parked. Defaults to none.
	OnWait func(askID string)
	// Logger receives structured logs; requests are logged at debug.
	// Defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with zero fields set to defaults.
func (c Config) WithDefaults() Config {
	if c.LongPollMax == 0 {
		c.LongPollMax = DefaultLongPollMax
	}
	if c.SSEHeartbeat == 0 {
		c.SSEHeartbeat = DefaultSSEHeartbeat
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Asks == nil:
		return errors.New("httpapi: Asks is required")
	case c.Jobs == nil:
		return errors.New("httpapi: Jobs is required")
	case c.Tokens == nil && !c.AuthNone:
		return errors.New("httpapi: Tokens is required unless AuthNone is set")
	case c.LongPollMax < 0:
		return fmt.Errorf("httpapi: LongPollMax must be positive, got %s", c.LongPollMax)
	case c.SSEHeartbeat < 0:
		return fmt.Errorf("httpapi: SSEHeartbeat must be positive, got %s", c.SSEHeartbeat)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("httpapi: MaxBodyBytes must be positive, got %d", c.MaxBodyBytes)
	case c.ReadHeaderTimeout < 0:
		return fmt.Errorf("httpapi: ReadHeaderTimeout must be positive, got %s", c.ReadHeaderTimeout)
	case c.ReadTimeout < 0:
		return fmt.Errorf("httpapi: ReadTimeout must be positive, got %s", c.ReadTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("httpapi: IdleTimeout must be positive, got %s", c.IdleTimeout)
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("httpapi: MaxHeaderBytes must be positive, got %d", c.MaxHeaderBytes)
	}
	return nil
}

// Server serves the Ask/Answer HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	guard   *guard
	handler http.Handler
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g, err := newGuard(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), guard: g}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /attestation-key", s.attestationKey)
	if s.cfg.ExecutorMCP != nil || s.cfg.ClientMCP != nil {
		s.mux.HandleFunc("/mcp", s.serveMCP)
	}
	s.mux.HandleFunc("POST /asks", s.postAsk)
	s.mux.HandleFunc("GET /asks/{askId}/answer", s.getAnswer)
	s.mux.HandleFunc("POST /answers", s.postAnswer)
	s.mux.HandleFunc("GET /jobs/{jobId}/asks", s.listAsks)
	s.mux.HandleFunc("GET /jobs/{jobId}/events", s.events)
	s.mux.HandleFunc("GET /jobs", s.listJobs)
	s.mux.HandleFunc("GET /jobs/{jobId}", s.getJob)
	s.mux.HandleFunc("GET /jobs/{jobId}/log", s.getJobLog)
	s.mux.HandleFunc("GET /jobs/{jobId}/artifacts/{kind}", s.getArtifact)
	s.mux.HandleFunc("POST /jobs/{jobId}/cancel", s.cancelJob)
	s.mux.HandleFunc("GET /asks", s.listAllAsks)
	for pattern, h := range s.cfg.Handlers {
		s.mux.Handle(pattern, h)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// serveHTTP checks a request's Host, Origin and Content-Type, routes it,
// answering unknown routes and wrong methods with JSON errors, and logs
// it.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	if e := s.guard.check(r); e != nil {
		writeError(sw, e)
	} else if h, pattern := s.mux.Handler(r); pattern == "" {
		s.noRoute(sw, r, h)
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	// The path, never the headers: they carry the token.
	s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", sw.Status(),
		"duration", time.Since(start))
}

// noRoute answers a request no pattern matches: 405 with Allow when the
// path exists for other methods, else 404. h is ServeMux's own answer,
// which knows the allowed methods.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: relaytype.CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, probe.header.Get("Allow"))})
		return
	}
	writeError(w, &apiError{Status: http.StatusNotFound, Code: relaytype.CodeNotFound,
		Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Health != nil {
		if err := s.cfg.Health(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// serveMCP serves MCP over Streamable HTTP at /mcp: a job token reaches
// the executor endpoint (each tool call acts for the token's job), the
// operator token the orchestrator's server (jobs_*, asks_*).
func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if s.cfg.AuthNone && s.cfg.Tokens != nil {
		// Without auth every caller is the operator; an executor still
		// presents its job token, which says which endpoint it wants.
		if tok, err := bearer(r.Header.Get("Authorization")); err == nil {
			if jobID, _, err := s.cfg.Tokens.Check(tok); err == nil && jobID != "" {
				p = principal{jobID: jobID}
			}
		}
	}
	switch {
	case p.jobID != "" && s.cfg.ExecutorMCP != nil:
		s.cfg.ExecutorMCP.ServeHTTP(w, r)
	case p.operator && s.cfg.ClientMCP != nil:
		s.cfg.ClientMCP.ServeHTTP(w, r)
	case p.operator:
		writeError(w, forbidden("the executor endpoint acts for one job: use that job's token (TASK_RELAY_TOKEN)"))
	default:
		writeError(w, forbidden("this relay serves no executor MCP endpoint"))
	}
}

// AttestationKey is the body of GET /attestation-key: the public half of
// the key that signs runner attestations.
type AttestationKey struct {
	Alg       string `json:"alg"`
	KeyID     string `json:"keyId"`
	PublicKey string `json:"publicKey"`
}

// attestationKey serves the public key without auth: it is public, and an
// executor needs it to check signatures.
func (s *Server) attestationKey(w http.ResponseWriter, _ *http.Request) {
	if len(s.cfg.AttestationKey) == 0 {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: relaytype.CodeNotFound, Message: "this relay signs no attestations"})
		return
	}
	writeJSON(w, http.StatusOK, AttestationKey{Alg: "Ed25519", KeyID: relaytype.KeyID(s.cfg.AttestationKey),
		PublicKey: base64.StdEncoding.EncodeToString(s.cfg.AttestationKey)})
}

// stopKey is the context key of the channel Serve closes when it begins
// to shut down.
type stopKey struct{}

// stopping returns a channel closed when the Serve that accepted r shuts
// down, or nil (never ready) when r came in some other way.
func stopping(r *http.Request) <-chan struct{} {
	ch, _ := r.Context().Value(stopKey{}).(chan struct{})
	return ch
}

// Serve serves on ln until ctx ends, then shuts down gracefully: long
// polls answer 204 and event streams end at once, and requests in flight
// get up to ShutdownTimeout. It closes ln. With AuthNone it refuses a
// listener that is not on a loopback address.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.CheckListener(ln.Addr()); err != nil {
		_ = ln.Close()
		return err
	}
	if s.cfg.AuthNone {
		s.log.Warn("Ask/Answer HTTP API runs WITHOUT authentication (askAnswer.auth: none); anyone on this host can create and answer asks", "addr", ln.Addr().String())
	}
	stop := make(chan struct{})
	base := withListener(context.WithValue(context.WithoutCancel(ctx), stopKey{}, stop), ln.Addr())
	// ReadTimeout's deadline is lifted once a request's body has been
	// read (net/http clears it when it starts watching the connection
	// for the client going away), so it does not cut long polls, streams
	// or MCP responses; TestLongPollAndSSEOutliveReadTimeouts holds it
	// to that. No WriteTimeout: streams set a deadline per write.
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Debug("Ask/Answer HTTP API serving", "addr", ln.Addr().String())
	select {
	case err := <-served:
		// The listener died: connections still open must not go on
		// being served by a server nobody will shut down.
		close(stop)
		_ = srv.Close()
		return fmt.Errorf("httpapi: serve: %w", err)
	case <-ctx.Done():
	}
	close(stop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	<-served
	if err != nil {
		return fmt.Errorf("httpapi: shutdown: %w", err)
	}
	return nil
}

// CheckListener returns the error Serve would refuse a listener on addr
// with: with AuthNone, an address that is not loopback. Callers can use it
// to fail at startup rather than when Serve runs.
func (s *Server) CheckListener(addr net.Addr) error {
	if s.cfg.AuthNone && !isLoopback(addr) {
		return fmt.Errorf("httpapi: askAnswer.auth none is only allowed on a loopback address, not %s: bind 127.0.0.1 or use bearer tokens", addr)
	}
	return nil
}

// ListenAndServe listens on addr (host:port) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("httpapi: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// isLoopback reports whether addr can only be reached from this host: a
// loopback IP address, or a Unix socket.
func isLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	if addr == nil {
		return false
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		host = addr.String()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// statusWriter records the status of a response for the request log. It
// unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Status returns the status written, or 0 if none was (the client left
// before an answer).
func (w *statusWriter) Status() int { return w.status }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeWriter captures what ServeMux's own 404/405 handler would send.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int)        { p.status = code }
