package cli

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/app"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

func newServe() *cobra.Command {
	var (
		o          config.Overrides
		standalone bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve MCP on stdio (what MCP clients launch)",
		Long: `Serve one MCP session on stdin/stdout. stdout carries only JSON-RPC; logs are
JSON lines on stderr.

By default serve is a thin front: it connects to the relay service of the
data dir over its unix socket (starting the service when it is not running)
and carries the session there unchanged. Jobs, asks and their executors
belong to the service and go on when the client exits.

With --standalone the whole relay runs in this process for this project
only, and stops (releasing running jobs for retry) when the session ends:
for containers and tests. --standalone --transport http serves MCP over
Streamable HTTP at /mcp instead of stdio.

Settings come from flags, then TASK_RELAY_* environment variables, then
config.yaml in the config directory, then defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keepChanged(cmd, map[string]**string{
				"profile": &o.Profile, "config-dir": &o.ConfigDir, "storage": &o.Storage,
				"sqlite": &o.SQLitePath, "transport": &o.Transport,
			})
			cfg, err := config.Load(o, os.LookupEnv)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Logging.Level)
			stdout := cmd.OutOrStdout()
			// Anything that writes to os.Stdout by accident would corrupt the
			// JSON-RPC stream; point it at stderr. The transport keeps the real one.
			if f, ok := stdout.(*os.File); ok && f == os.Stdout {
				os.Stdout = os.Stderr
				defer func() { os.Stdout = f }()
			}
			ready := startupGC()
			defer ready()
			if standalone {
				return app.RunStandalone(cmd.Context(), app.StandaloneOptions{Config: cfg, Overrides: o,
					Stdin: cmd.InOrStdin(), Stdout: stdout, Logger: log, Version: version(), Ready: ready})
			}
			if cfg.Transport != config.TransportStdio {
				return &exitError{code: 2, err: errServiceHTTP(cfg)}
			}
			for _, flag := range []string{"storage", "sqlite"} {
				if cmd.Flags().Changed(flag) {
					return &exitError{code: 2, err: &usageError{msg: "--" + flag + " applies to --standalone only; the relay service takes its storage from " +
						filepath.Join(cfg.DataDir, app.ServiceConfigFile) + " (or TASK_RELAY_STORAGE / TASK_RELAY_SQLITE_URL when it starts)"}}
				}
			}
			return app.RunFront(cmd.Context(), app.FrontOptions{Config: cfg, Stdin: cmd.InOrStdin(), Stdout: stdout,
				Logger: log, Version: version(), Ready: ready})
		},
	}
	o.Profile = cmd.Flags().String("profile", "", "deployment profile: dev, staging or prod (env TASK_RELAY_PROFILE)")
	o.ConfigDir = cmd.Flags().String("config-dir", "", "the project's config directory with config.yaml (env TASK_RELAY_CONFIG_DIR; default ./.mcp-task-relay)")
	o.Storage = cmd.Flags().String("storage", "", "job store with --standalone: memory or sqlite (env TASK_RELAY_STORAGE; default sqlite)")
	o.SQLitePath = cmd.Flags().String("sqlite", "", "SQLite database file with --standalone (env TASK_RELAY_SQLITE_URL)")
	o.Transport = cmd.Flags().String("transport", "", "MCP transport: stdio, or http with --standalone (env TASK_RELAY_TRANSPORT)")
	cmd.Flags().BoolVar(&standalone, "standalone", false, "run the whole relay in this process for this project (containers, tests)")
	return cmd
}

// errServiceHTTP explains where MCP over HTTP is when the service runs.
func errServiceHTTP(cfg *config.Config) error {
	return &usageError{msg: "--transport " + cfg.Transport + ": the relay service serves MCP over Streamable HTTP at /mcp on its HTTP port " +
		"(see `mcp-task-relay daemon status`); serve itself speaks stdio, or http with --standalone"}
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// keepChanged sets the override of every flag that was not given to nil,
// so that the environment and config files apply.
func keepChanged(cmd *cobra.Command, flags map[string]**string) {
	for name, dst := range flags {
		if !cmd.Flags().Changed(name) {
			*dst = nil
		}
	}
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
