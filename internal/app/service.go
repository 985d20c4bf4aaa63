package app

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/internal/answer"
	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/dashboard"
	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/mcpserver"
	"github.com/mcp-task-relay/mcp-task-relay/internal/metrics"
	"github.com/mcp-task-relay/mcp-task-relay/internal/notify"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// DefaultDrainGrace is how long a stopping service lets running jobs
// finish before it releases them for retry.
const DefaultDrainGrace = 10 * time.Second

// Options configure a Service.
type Options struct {
	// Config holds the service-wide settings: storage, server, the HTTP
	// API and logging. Required.
	Config *config.Config
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Version is reported to clients and fronts. Defaults to "dev".
	Version string
	// Only, when set, limits the service to the one project of that
	// config dir (standalone mode): it claims only that project's jobs.
	// Defaults to every project.
	Only string
	// Environ is the environment projects start from (their executors,
	// the runner's key). Defaults to os.Environ().
	Environ []string
}

// Service is a wired relay: one store, queue, ask service, HTTP API and
// workspace manager, shared by any number of projects, each with its own
// executors, answerers and MCP server.
type Service struct {
	cfg     *config.Config
	log     *slog.Logger
	version string
	self    string
	environ []string

	store  store.Store
	relay  *relay.Relay
	asks   *ask.Service
	tokens *ask.Tokens
	wm     *workspace.Manager
	api    *httpapi.Server
	ln     net.Listener
	origin string
	// answerKey is the public key of the runners' attestations, handed to
	// every executor (TASK_RELAY_ANSWER_PUBKEY); nil when unavailable.
	answerKey ed25519.PublicKey

	projects *projects
	notify   *notify.Worker
	// cluster is the membership in a store shared by several relays, or
	// nil.
	cluster *cluster
	planner *notify.Planner
	metrics *metrics.Metrics
	// dashboard is the web dashboard served on the HTTP API's port.
	dashboard *dashboard.Dashboard

	runCtx    context.Context
	stopRun   context.CancelFunc
	httpDone  chan struct{}
	closeOnce sync.Once

	// life is canceled when the service closes: the goroutines of its
	// projects (MCP change pumps) derive from it.
	life    context.Context
	endLife context.CancelFunc
	// serving is set while the HTTP API's listener serves.
	serving atomic.Bool
	// httpFailed is closed, with httpErr set, when the HTTP API stopped
	// serving other than by Close.
	httpFailed chan struct{}
	httpErr    error
}

// New opens the store, binds the HTTP API and wires the relay. Call Start
// to begin running jobs and serving HTTP, and Close to stop.
func New(ctx context.Context, opts Options) (_ *Service, err error) {
	if opts.Config == nil {
		return nil, errors.New("app: Config is required")
	}
	cfg := opts.Config
	s := &Service{cfg: cfg, log: opts.Logger, version: opts.Version, environ: opts.Environ, httpFailed: make(chan struct{})}
	s.life, s.endLife = context.WithCancel(context.WithoutCancel(ctx))
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.environ == nil {
		s.environ = os.Environ()
	}
	if s.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("locate own binary for the executor shim: %w", err)
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	// The built-in roles every project's answerers share are parsed once
	// per process; parse them while the store opens, so that the first
	// project open finds them ready.
	go role.PrepareBuiltin()
	if s.store, err = openStore(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cleanup = append(cleanup, func() { _ = s.store.Close() })
	// The attestation key (read, or made and written, then its public
	// half derived: ed25519 precomputes its tables on first use) is made
	// alongside the rest of the wiring, and waited for before the HTTP
	// API, which serves it, and the projects, which hand it on.
	keyc := make(chan ed25519.PublicKey, 1)
	go func() { keyc <- s.attestationKey() }()
	answerKey := sync.OnceValue(func() ed25519.PublicKey { return <-keyc })
	cleanup = append(cleanup, func() { answerKey() })

	operator, err := ask.LoadOperatorToken(cfg.DataDir, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if s.tokens, err = ask.NewTokens(operator); err != nil {
		return nil, err
	}
	if s.metrics, err = s.newMetrics(); err != nil {
		return nil, err
	}
	s.store = s.metrics.Store(s.store)
	if s.ln, s.origin, err = listenHTTP(cfg, s.log); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = s.ln.Close() })
	if s.wm, err = workspace.New(workspace.Config{Root: cfg.Server.WorkspaceRoot, Keep: cfg.Server.KeepWorkspaces}); err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	s.projects = newProjects(s)

	if s.asks, err = ask.New(ask.Config{
		Store:    s.store,
		Timeout:  cfg.AskAnswer.AskTimeout(),
		RulesFor: s.rulesFor,
		Logger:   s.log,
		OnChange: func(j *relaytype.Job) {
			if s.relay != nil {
				s.relay.Notify(j, true)
			}
		},
	}); err != nil {
		return nil, err
	}
	rcfg := relay.Config{
		Store:             s.store,
		Handler:           s.projects,
		Artifacts:         relay.ArtifactDir{Root: cfg.Server.ArtifactRoot},
		Logger:            s.log,
		MaxConcurrency:    cfg.Server.MaxConcurrency,
		LeaseTTL:          cfg.Server.LeaseTTL(),
		HeartbeatInterval: cfg.Server.HeartbeatInterval(),
		IdempotencyWindow: cfg.Server.IdempotencyWindow(),
		MaxArtifactBytes:  cfg.Storage.MaxArtifactBytes,
	}
	s.cluster = newCluster(s)
	if s.cluster != nil {
		// Claim only what this relay can run; hear the other relays.
		rcfg.Projects = s.cluster.projects
		rcfg.Executors = s.cluster.executors
		rcfg.OnRemote = s.cluster.onRemote
	}
	if opts.Only != "" {
		only := []string{opts.Only}
		rcfg.Projects = func() []string { return only }
	}
	if s.relay, err = relay.New(rcfg); err != nil {
		return nil, err
	}
	if s.notify, err = s.newNotifier(opts.Only); err != nil {
		return nil, err
	}
	execMCP, err := mcpserver.NewExecutorHandler(mcpserver.ExecutorConfig{
		Asks: s.asks, Jobs: s.relay, Profile: cfg.Profile, ProfileOf: s.profileOf, Logger: s.log, Version: s.version,
		JobOf: func(h http.Header) (string, int, error) {
			tok, _ := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
			jobID, attempt, _, err := s.tokens.CheckAttempt(strings.TrimSpace(tok))
			if err == nil && jobID == "" {
				err = errors.New("the executor endpoint needs a job token")
			}
			return jobID, attempt, err
		},
	})
	if err != nil {
		return nil, err
	}
	if s.dashboard, err = s.newDashboard(operator); err != nil {
		return nil, err
	}
	if s.planner, err = s.newPlanner(opts.Only); err != nil {
		return nil, err
	}
	s.answerKey = answerKey()
	clientMCP := s.clientMCPHandler(mcpserver.GuardHTTP(mcp.NewStreamableHTTPHandler(s.httpSessionServer, &mcp.StreamableHTTPOptions{Logger: s.log}), 0))
	if s.api, err = httpapi.New(httpapi.Config{
		ExecutorMCP:    execMCP,
		ClientMCP:      clientMCP,
		Asks:           s.asks,
		Jobs:           s.relay,
		Tokens:         s.tokens,
		AuthNone:       cfg.AskAnswer.Auth == config.AuthNone,
		BindHost:       cfg.AskAnswer.Host,
		AllowedHosts:   cfg.AskAnswer.AllowedHosts,
		AllowedOrigins: cfg.AskAnswer.AllowedOrigins,
		LongPollMax:    cfg.AskAnswer.LongPollTimeout(),
		SSEHeartbeat:   cfg.AskAnswer.SSEHeartbeat(),
		AttestationKey: s.answerKey,
		Health:         s.health,
		Logger:         s.log,
		Handlers:       s.handlers(),
	}); err != nil {
		return nil, err
	}
	if err := s.api.CheckListener(s.ln.Addr()); err != nil {
		return nil, err
	}
	return s, nil
}

// attestationKey returns the public half of the key the Answer Runners of
// every project sign with (made on first use), so that executors can
// check signed answers.
func (s *Service) attestationKey() ed25519.PublicKey {
	priv, err := answer.LoadSigningKey(s.cfg.DataDir)
	if err != nil {
		s.log.Warn("attestation signing key unavailable", "err", err)
		return nil
	}
	return priv.Public().(ed25519.PublicKey)
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Storage.Mode {
	case config.StorageMemory:
		return sqlite.Open(ctx, sqlite.Config{})
	case config.StorageSQLite:
		return sqlite.Open(ctx, sqlite.Config{Path: cfg.Storage.SQLitePath})
	case config.StoragePostgres:
		return postgres.Open(ctx, postgres.Config{URL: cfg.Storage.PostgresURL})
	default:
		return nil, fmt.Errorf("storage.mode %q is not available in this build (use memory, sqlite or postgres)", cfg.Storage.Mode)
	}
}

// listenHTTP binds the HTTP API. When the configured port is taken
// (another relay on this machine), it falls back to a free port: the
// service publishes its address in service.json, and executors learn it
// from ASK_ANSWER_ORIGIN.
func listenHTTP(cfg *config.Config, log *slog.Logger) (net.Listener, string, error) {
	addr := net.JoinHostPort(cfg.AskAnswer.Host, strconv.Itoa(cfg.AskAnswer.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		log.Warn("HTTP API port in use, using a free port instead", "addr", addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(cfg.AskAnswer.Host, "0"))
	}
	if err != nil {
		return nil, "", fmt.Errorf("askAnswer listener on %s: %w", addr, err)
	}
	host := cfg.AskAnswer.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return ln, "http://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// Origin returns the base URL of the HTTP API.
func (s *Service) Origin() string { return s.origin }

// Relay returns the job engine.
func (s *Service) Relay() *relay.Relay { return s.relay }

// Asks returns the ask service.
func (s *Service) Asks() *ask.Service { return s.asks }

// Store returns the job store.
func (s *Service) Store() store.Store { return s.store }

// Config returns the service-wide settings.
func (s *Service) Config() *config.Config { return s.cfg }

// Start recovers what a previous run left behind (workspaces, worktree
// registrations), then starts the ask service, the relay and the HTTP API.
func (s *Service) Start(ctx context.Context) error {
	s.runCtx, s.stopRun = context.WithCancel(context.WithoutCancel(ctx))
	// Workspaces left by a crash belong to jobs that are over or will be
	// prepared afresh. Remove only those of jobs this store knows to be
	// finished: other relays (another database, memory storage) may share
	// the workspace root, and their jobs are unknown here. This runs
	// before the relay claims anything, so that no retry trips over a
	// half-made worktree of its own earlier attempt.
	sweepCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err := s.wm.Sweep(sweepCtx, func(id string) bool {
		j, err := s.store.JobGet(sweepCtx, &store.JobGetParams{ID: id})
		return err != nil || !j.State.Terminal()
	})
	cancel()
	if err != nil && ctx.Err() == nil {
		s.log.Warn("sweep workspaces", "err", err)
	}
	// Temp files of artifact writes a kill interrupted.
	if n, err := (relay.ArtifactDir{Root: s.cfg.Server.ArtifactRoot}).CleanTemp(time.Hour); err != nil {
		s.log.Warn("clean temporary artifacts", "err", err)
	} else if n > 0 {
		s.log.Info("removed temporary artifacts", "count", n)
	}
	if err := s.asks.Start(ctx); err != nil {
		return err
	}
	if err := s.relay.Start(ctx); err != nil {
		s.asks.Stop()
		return err
	}
	// Webhooks a previous run left undelivered are due at once.
	s.notify.Start(s.runCtx)
	if s.cluster != nil {
		go s.cluster.run(s.runCtx)
	}
	go s.metrics.Run(s.runCtx, s.relay)
	go s.planner.Run(s.runCtx)
	changes, unsubscribe := s.relay.Subscribe()
	go func() {
		// A job that ends closes its pending asks in the store; executors
		// parked on them must hear it now, not at their next recheck.
		defer unsubscribe()
		for {
			select {
			case <-s.runCtx.Done():
				return
			case c, ok := <-changes:
				if !ok {
					return // the relay stopped
				}
				// An attempt that ends closes its pending asks too.
				if c.State.Terminal() || c.State == relaytype.StateStale || c.State == relaytype.StateQueued {
					s.asks.WakeAll()
				}
				if c.State.Terminal() {
					s.notify.Wake() // its webhook was enqueued with the transition
				}
			}
		}
	}()
	s.httpDone = make(chan struct{})
	s.serving.Store(true)
	go func() {
		defer close(s.httpDone)
		err := s.api.Serve(s.runCtx, s.ln)
		s.serving.Store(false)
		if s.runCtx.Err() == nil {
			// Executors would be handed a dead address: the service must
			// not go on without its HTTP API.
			if err == nil {
				err = errors.New("stopped serving")
			}
			s.httpErr = fmt.Errorf("the Ask/Answer HTTP listener on %s died: %w", s.origin, err)
			s.log.Error("HTTP API listener died; the relay cannot serve asks or executors", "origin", s.origin, "err", err)
			close(s.httpFailed)
		}
	}()
	s.log.Info("HTTP API listening", "origin", s.origin, "auth", s.cfg.AskAnswer.Auth)
	return nil
}

// HTTPFailed returns a channel closed when the HTTP API's listener died
// (Serve ended other than by Close); HTTPErr then says why. The daemon
// and the standalone relay stop with that error.
func (s *Service) HTTPFailed() <-chan struct{} { return s.httpFailed }

// HTTPErr returns why the HTTP API's listener died, once HTTPFailed is
// closed, else nil.
func (s *Service) HTTPErr() error {
	select {
	case <-s.httpFailed:
		return s.httpErr
	default:
		return nil
	}
}

// health is the answer of GET /healthz: an error while the HTTP API's
// listener is not serving (not started yet, died, or stopping).
func (s *Service) health() error {
	if err := s.HTTPErr(); err != nil {
		return err
	}
	if !s.serving.Load() {
		return errors.New("the Ask/Answer HTTP listener is not serving")
	}
	return nil
}

// Idle reports whether the service runs no job and no job waits for an
// answer, so that it can be replaced without interrupting anyone's work.
func (s *Service) Idle(ctx context.Context) bool {
	for _, st := range []relaytype.JobState{relaytype.StateRunning, relaytype.StateWaitingOnAnswer} {
		_, n, err := s.relay.List(ctx, st, 1, 0)
		if err != nil || n > 0 {
			return false
		}
	}
	return true
}

// Close drains the relay (no new claims; running jobs get up to grace to
// finish, then are released for retry), stops the HTTP API and the ask
// service and closes the store. It is safe to call twice.
func (s *Service) Close(grace time.Duration) error {
	var err error
	s.closeOnce.Do(func() {
		s.relay.Drain(grace)
		// Undelivered webhooks stay in the outbox for the next run.
		s.notify.Stop()
		if s.stopRun != nil {
			s.stopRun()
			<-s.httpDone
		} else {
			_ = s.ln.Close()
		}
		s.projects.close()
		// Answerers are canceled and waited for (bounded); their asks
		// stay pending in the store for the next relay.
		s.asks.Stop()
		s.endLife()
		err = s.store.Close()
	})
	return err
}

// rulesFor returns the ask rules of the project of a job.
func (s *Service) rulesFor(ctx context.Context, jobID string) (*ask.RuleSet, error) {
	j, err := s.relay.Get(ctx, jobID)
	if err != nil {
		return nil, err
	}
	p, err := s.projects.open(ctx, j.Project, nil)
	if err != nil {
		return nil, err
	}
	return p.rules(), nil
}

// ProjectHeader names the project of a Streamable HTTP MCP request when
// the URL does not (?project=).
const ProjectHeader = "Mcp-Task-Relay-Project"

// requestProject returns the project a Streamable HTTP request names
// (?project=ABSOLUTE_CONFIG_DIR, or the Mcp-Task-Relay-Project header);
// without one, the service's only project in standalone mode.
func (s *Service) requestProject(r *http.Request) (string, error) {
	dir := r.URL.Query().Get("project")
	if dir == "" {
		dir = r.Header.Get(ProjectHeader)
	}
	if dir == "" {
		dir = s.projects.defaultDir()
	}
	if dir == "" {
		return "", errors.New("name the project: /mcp?project=/absolute/path/to/.mcp-task-relay (its config dir), or the header " + ProjectHeader)
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("project %q must be the absolute path of a config dir", dir)
	}
	return filepath.Clean(dir), nil
}

// clientMCPHandler answers requests for no or an unusable project with a
// clear error before they reach the MCP handler.
func (s *Service) clientMCPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir, err := s.requestProject(r)
		if err == nil {
			_, err = s.projects.open(r.Context(), dir, nil)
		}
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": string(relaytype.CodeInvalidRequest), "message": err.Error()}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// httpSessionServer picks the MCP server of the project of a new
// Streamable HTTP session.
func (s *Service) httpSessionServer(r *http.Request) *mcp.Server {
	dir, err := s.requestProject(r)
	if err != nil {
		return nil
	}
	p, err := s.projects.open(r.Context(), dir, nil)
	if err != nil {
		return nil
	}
	return p.mcp.MCP()
}
