package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/mcpserver"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func newServe() *cobra.Command {
	var o config.Overrides
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the MCP server (stdio)",
		Long: `Run the MCP server on stdin/stdout. stdout carries only JSON-RPC; logs are
JSON lines on stderr. Settings come from flags, then TASK_RELAY_* environment
variables, then config.yaml in the config directory, then defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			for name, dst := range map[string]**string{
				"profile": &o.Profile, "config-dir": &o.ConfigDir, "storage": &o.Storage,
				"sqlite": &o.SQLitePath, "transport": &o.Transport,
			} {
				if !flags.Changed(name) {
					*dst = nil
				}
			}
			cfg, err := config.Load(o, os.LookupEnv)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return serve(cmd.Context(), cfg, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.Profile = cmd.Flags().String("profile", "", "deployment profile: dev, staging or prod (env TASK_RELAY_PROFILE)")
	o.ConfigDir = cmd.Flags().String("config-dir", "", "directory with config.yaml (env TASK_RELAY_CONFIG_DIR; default ./.mcp-task-relay)")
	o.Storage = cmd.Flags().String("storage", "", "job store: memory or sqlite (env TASK_RELAY_STORAGE; default sqlite)")
	o.SQLitePath = cmd.Flags().String("sqlite", "", "SQLite database file (env TASK_RELAY_SQLITE_URL)")
	o.Transport = cmd.Flags().String("transport", "", "MCP transport: stdio (env TASK_RELAY_TRANSPORT)")
	return cmd
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// stack is a wired relay with everything it needs.
type stack struct {
	cfg    *config.Config
	log    *slog.Logger
	store  store.Store
	relay  *relay.Relay
	asks   *ask.Service
	tokens *ask.Tokens
	// origin is the Ask/Answer API's base URL, as executors see it.
	origin   string
	mcp      *lateMCP
	stopHTTP context.CancelFunc
	httpDone chan struct{}
}

// Close stops the HTTP API, the relay (running jobs are released for
// retry) and the ask service, then closes the store.
func (s *stack) Close() error {
	s.stopHTTP()
	<-s.httpDone
	s.relay.Stop()
	s.asks.Stop()
	return s.store.Close()
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Storage.Mode {
	case config.StorageMemory:
		return sqlite.Open(ctx, sqlite.Config{})
	case config.StorageSQLite:
		return sqlite.Open(ctx, sqlite.Config{Path: cfg.Storage.SQLitePath})
	default:
		return nil, fmt.Errorf("storage.mode %q is not available in this build (use memory or sqlite)", cfg.Storage.Mode)
	}
}

// adapters are the coding-agent executor kinds.
var adapters = map[string]executor.Adapter{
	config.KindCodex:  executor.Codex{},
	config.KindClaude: executor.Claude{},
	config.KindGemini: executor.Gemini{},
}

// buildExecutors turns the executors section into runners.
func buildExecutors(cfg *config.Config) (map[string]executor.Runner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate own binary for the executor shim: %w", err)
	}
	out := map[string]executor.Runner{}
	for name, e := range cfg.Executors.ByName {
		// The relay's own credentials stay with the relay unless the
		// executor's config passes them on.
		base := executor.ScrubEnv(os.Environ(), e.PassEnv)
		if e.Kind == "" || e.Kind == config.KindCommand {
			c, err := executor.NewCommand(executor.CommandConfig{
				Name: name, Argv: e.Argv, Env: e.Env, Timeout: e.Timeout(), Shim: self, BaseEnv: base,
			})
			if err != nil {
				return nil, err
			}
			out[name] = c
			continue
		}
		ad, ok := adapters[e.Kind]
		if !ok {
			return nil, fmt.Errorf("executors.%s.kind: %q is not a known kind", name, e.Kind)
		}
		a, err := executor.NewAgent(executor.AgentConfig{
			Name: name, Binary: e.Binary, Model: e.Model, ExtraArgs: e.ExtraArgs, Env: e.Env, Timeout: e.Timeout(),
			Shim: self, BaseEnv: base, PermissionMode: e.PermissionMode, AllowedTools: e.AllowedTools,
			MaxTurns: e.MaxTurns, ApprovalMode: e.ApprovalMode,
		}, ad)
		if err != nil {
			return nil, err
		}
		out[name] = a
	}
	return out, nil
}

// bootstraps maps executors to their workspace bootstrap ("" is global).
func bootstraps(cfg *config.Config) map[string]*relay.Bootstrap {
	out := map[string]*relay.Bootstrap{}
	conv := func(w config.Workspace) *relay.Bootstrap {
		if len(w.CopyFiles) == 0 && strings.TrimSpace(w.Setup) == "" {
			return nil
		}
		return &relay.Bootstrap{CopyFiles: w.CopyFiles, Setup: w.Setup}
	}
	if b := conv(cfg.Workspace); b != nil {
		out[""] = b
	}
	for name, e := range cfg.Executors.ByName {
		if e.Workspace != nil {
			if b := conv(*e.Workspace); b != nil {
				out[name] = b
			} else {
				out[name] = &relay.Bootstrap{} // explicitly none
			}
		}
	}
	return out
}

// lateParents gives the pipeline, built before the relay, the relay's
// jobs and artifacts for follow-ups.
type lateParents struct{ r **relay.Relay }

func (l lateParents) Get(ctx context.Context, id string) (*relaytype.Job, error) {
	return (*l.r).Get(ctx, id)
}

func (l lateParents) ReadArtifact(ctx context.Context, id string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error) {
	return (*l.r).ReadArtifact(ctx, id, kind)
}

// listenAsk binds the Ask/Answer API. When the configured port is taken
// (another relay on this machine), it falls back to a free port: executors
// learn the address from ASK_ANSWER_ORIGIN, so nothing else needs it.
func listenAsk(cfg *config.Config, log *slog.Logger) (net.Listener, string, error) {
	addr := net.JoinHostPort(cfg.AskAnswer.Host, strconv.Itoa(cfg.AskAnswer.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		log.Warn("ask/answer port in use, using a free port instead", "addr", addr)
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

func routing(cfg *config.Config) ask.Routing {
	r := ask.Routing{Default: ask.Route(cfg.AskAnswer.Routing.Default),
		ByType: map[relaytype.AskType]ask.Route{}, ByRole: map[string]ask.Route{}}
	for t, route := range cfg.AskAnswer.Routing.ByType {
		r.ByType[relaytype.AskType(t)] = ask.Route(route)
	}
	for role, route := range cfg.AskAnswer.Routing.ByRole {
		r.ByRole[role] = ask.Route(route)
	}
	return r
}

// newStack wires store, ask service, HTTP API, workspaces, executors,
// pipeline and relay, and starts them.
func newStack(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *stack, err error) {
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cleanup = append(cleanup, func() { _ = st.Close() })

	operator, err := ask.LoadOperatorToken(cfg.DataDir, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	tokens, err := ask.NewTokens(operator)
	if err != nil {
		return nil, err
	}
	ln, origin, err := listenAsk(cfg, log)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = ln.Close() })

	late := &lateMCP{}
	ans, err := buildAnswerers(cfg, st, late, log)
	if err != nil {
		return nil, err
	}
	rules := routing(cfg)
	if rules.Default == "" && ans.runner != nil {
		rules.Default = ask.RouteRunner
	}
	var rl *relay.Relay
	asks, err := ask.New(ask.Config{
		Store:         st,
		Routing:       rules,
		Answerers:     ans.byRoute,
		Decider:       ans.decider,
		Timeout:       cfg.AskAnswer.AskTimeout(),
		RunnerTimeout: cfg.AskAnswer.Runner.Timeout(),
		Logger:        log,
		OnChange: func(j *relaytype.Job) {
			if rl != nil {
				rl.Notify(j, true)
			}
		},
	})
	if err != nil {
		return nil, err
	}

	wm, err := workspace.New(workspace.Config{Root: cfg.Server.WorkspaceRoot, Keep: cfg.Server.KeepWorkspaces})
	if err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	runners, err := buildExecutors(cfg)
	if err != nil {
		return nil, err
	}
	if len(runners) == 0 {
		log.Warn("no executor configured: jobs_submit will fail until one is added",
			"config_file", filepath.Join(cfg.ConfigDir, "config.yaml"))
	}
	self, _ := os.Executable()
	env := map[string]string{
		"TASK_RELAY_PROFILE":        cfg.Profile,
		"TASK_RELAY_POLICY_VERSION": ans.policyVersion,
		"ASK_ANSWER_ORIGIN":         origin,
		// Executors can run `mcp-task-relay ask` by name.
		"PATH": filepath.Dir(self) + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	pipe, err := relay.NewPipeline(relay.PipelineConfig{
		Workspaces:      wm,
		Artifacts:       relay.ArtifactDir{Root: cfg.Server.ArtifactRoot},
		Executors:       runners,
		DefaultExecutor: cfg.Executors.Default,
		ConfigFile:      filepath.Join(cfg.ConfigDir, "config.yaml"),
		Env:             env,
		JobToken:        tokens.Mint,
		Bootstrap:       bootstraps(cfg),
		Shim:            self,
		Parents:         lateParents{&rl},
		RelayMCPURL:     origin + "/mcp",
		LogSink: func(ctx context.Context, jobID string, chunk []byte) error {
			return rl.AppendLog(ctx, jobID, chunk)
		},
		MaxOutputBytes: cfg.Server.MaxOutputBytes,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	rl, err = relay.New(relay.Config{
		Store:             st,
		Handler:           pipe,
		Artifacts:         relay.ArtifactDir{Root: cfg.Server.ArtifactRoot},
		Logger:            log,
		MaxConcurrency:    cfg.Server.MaxConcurrency,
		LeaseTTL:          cfg.Server.LeaseTTL(),
		HeartbeatInterval: cfg.Server.HeartbeatInterval(),
		IdempotencyWindow: cfg.Server.IdempotencyWindow(),
	})
	if err != nil {
		return nil, err
	}
	execMCP, err := mcpserver.NewExecutorHandler(mcpserver.ExecutorConfig{
		Asks: asks, Jobs: rl, Profile: cfg.Profile, PolicyVersion: ans.policyVersion, Logger: log, Version: version(),
		JobOf: func(h http.Header) (string, error) {
			tok, _ := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
			jobID, _, err := tokens.Check(strings.TrimSpace(tok))
			if err == nil && jobID == "" {
				err = errors.New("the executor endpoint needs a job token")
			}
			return jobID, err
		},
	})
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Config{
		ExecutorMCP:    execMCP,
		Asks:           asks,
		Jobs:           rl,
		Tokens:         tokens,
		AuthNone:       cfg.AskAnswer.Auth == config.AuthNone,
		LongPollMax:    cfg.AskAnswer.LongPollTimeout(),
		SSEHeartbeat:   cfg.AskAnswer.SSEHeartbeat(),
		AttestationKey: ans.signingKey,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}

	// Workspaces left by a crash belong to jobs that are over or will be
	// prepared afresh. Remove only those of jobs this store knows to be
	// finished: other relays (another database, memory storage) may share
	// the workspace root, and their jobs are unknown here.
	go func() {
		err := wm.Sweep(ctx, func(id string) bool {
			j, err := st.JobGet(ctx, &store.JobGetParams{ID: id})
			return err != nil || !j.State.Terminal()
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep workspaces", "err", err)
		}
	}()

	if err := asks.Start(ctx); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, asks.Stop)
	if err := rl.Start(ctx); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, rl.Stop)
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpDone := make(chan struct{})
	changes, unsubscribe := rl.Subscribe()
	go func() {
		// A job that ends closes its pending asks in the store; executors
		// parked on them must hear it now, not at their next recheck.
		defer unsubscribe()
		for {
			select {
			case <-httpCtx.Done():
				return
			case c := <-changes:
				if c.State.Terminal() {
					asks.WakeAll()
				}
			}
		}
	}()
	go func() {
		defer close(httpDone)
		if err := api.Serve(httpCtx, ln); err != nil && httpCtx.Err() == nil {
			log.Error("ask/answer api stopped", "err", err)
		}
	}()
	log.Info("ask/answer api listening", "origin", origin, "auth", cfg.AskAnswer.Auth)
	return &stack{cfg: cfg, log: log, store: st, relay: rl, asks: asks, tokens: tokens, origin: origin, mcp: late,
		stopHTTP: stopHTTP, httpDone: httpDone}, nil
}

func serve(ctx context.Context, cfg *config.Config, stdin io.Reader, stdout, stderr io.Writer) error {
	log := newLogger(stderr, cfg.Logging.Level)
	if cfg.Transport != "" && cfg.Transport != config.TransportStdio {
		return &exitError{code: 2, err: fmt.Errorf("--transport %s is not available yet; use stdio", cfg.Transport)}
	}
	// Anything that writes to os.Stdout by accident would corrupt the
	// JSON-RPC stream; point it at stderr. The transport keeps the real one.
	if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		os.Stdout = os.Stderr
		defer func() { os.Stdout = f }()
	}
	st, err := newStack(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	attrs := []any{"version", version(), "profile", cfg.Profile, "storage", cfg.Storage.Mode,
		"executors", cfg.Executors.Names(), "instance", st.relay.InstanceID()}
	if cfg.Storage.Mode == config.StorageSQLite {
		attrs = append(attrs, "sqlite", cfg.Storage.SQLitePath)
	}
	log.Info("relay ready", attrs...)
	srv, err := mcpserver.New(mcpserver.Config{Jobs: st.relay, Asks: st.asks, Logger: log, Name: "mcp-task-relay", Version: version()})
	if err != nil {
		return err
	}
	st.mcp.srv.Store(srv)
	// Startup (roles, schemas, SDK initialisation) leaves garbage behind;
	// hand it back to the OS so that an idle relay stays small.
	go debug.FreeOSMemory()
	t := &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}}
	err = srv.Run(ctx, t)
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		return err
	}
	log.Info("relay stopping")
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
