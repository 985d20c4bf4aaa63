package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/app"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// daemonFlags locate the service a daemon command acts on.
type daemonFlags struct {
	dataDir   string
	configDir string
	asJSON    bool
}

func (f *daemonFlags) add(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "the service's data directory (env TASK_RELAY_DATA_DIR; default: the current project's)")
	cmd.Flags().StringVar(&f.configDir, "config-dir", "", "project config directory naming the data dir (env TASK_RELAY_CONFIG_DIR; default ./.mcp-task-relay)")
	if withJSON {
		cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	}
}

// resolve returns the absolute data dir: --data-dir, else the one the
// project's config (and TASK_RELAY_DATA_DIR) names.
func (f *daemonFlags) resolve() (string, error) {
	if f.dataDir != "" {
		return filepath.Abs(f.dataDir)
	}
	var o config.Overrides
	if f.configDir != "" {
		o.ConfigDir = &f.configDir
	}
	cfg, err := config.Load(o, os.LookupEnv)
	if err != nil {
		return "", &exitError{code: 2, err: err}
	}
	return cfg.DataDir, nil
}

func newDaemon() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Manage the relay service (one per user data dir)",
		Long: `The relay service owns the job queue, the workers and their executors, the
HTTP API (Ask/Answer, jobs, MCP over Streamable HTTP at /mcp) and the unix
socket that "serve" fronts connect to. "serve" starts it when it is not
running; these commands manage it by hand.`,
	}
	cmd.AddCommand(newDaemonRun(), newDaemonStart(), newDaemonStop(), newDaemonStatus(), newDaemonRestart(),
		newDaemonLogs(), newDaemonInstall())
	return cmd
}

// daemonCommand is a daemon subcommand that acts on the service of the
// data dir its flags resolve to.
func daemonCommand(use, short string, withJSON bool, run func(cmd *cobra.Command, dir string, f *daemonFlags) error) *cobra.Command {
	f := &daemonFlags{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := f.resolve()
			if err != nil {
				return err
			}
			return run(cmd, dir, f)
		},
	}
	f.add(cmd, withJSON)
	return cmd
}

func newDaemonRun() *cobra.Command {
	return daemonCommand("run", "Run the relay service in the foreground (logs on stderr)", false,
		func(cmd *cobra.Command, dir string, _ *daemonFlags) error {
			level, _ := os.LookupEnv(config.EnvLogLevel)
			log := newLogger(cmd.ErrOrStderr(), level)
			ready := startupGC()
			defer ready()
			err := app.RunDaemon(cmd.Context(), app.DaemonOptions{DataDir: dir, Logger: log, Version: version(),
				Ready: func(*app.ServiceInfo) { ready() }})
			if errors.Is(err, app.ErrAlreadyRunning) {
				return &exitError{code: 3, err: err}
			}
			return err
		})
}

func newDaemonStart() *cobra.Command {
	return daemonCommand("start", "Start the relay service in the background, unless it runs", true,
		func(cmd *cobra.Command, dir string, f *daemonFlags) error {
			if _, err := status(cmd.Context(), dir); err != nil {
				if err := startService(cmd.Context(), dir); err != nil {
					return err
				}
			}
			return printStatus(cmd.Context(), cmd.OutOrStdout(), dir, f.asJSON)
		})
}

// startService starts the service of dir from this binary.
func startService(ctx context.Context, dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return app.StartService(ctx, dir, self, app.DefaultStartTimeout)
}

// withGrace adds --grace to cmd.
func withGrace(cmd *cobra.Command, grace *time.Duration) *cobra.Command {
	cmd.Flags().DurationVar(grace, "grace", app.DefaultDrainGrace, "how long running jobs may go on before they are released for retry")
	return cmd
}

func newDaemonStop() *cobra.Command {
	var grace time.Duration
	return withGrace(daemonCommand("stop",
		"Stop the relay service: no new claims, running jobs get --grace to finish, then are released for retry", false,
		func(cmd *cobra.Command, dir string, _ *daemonFlags) error {
			return stopService(cmd.Context(), cmd.OutOrStdout(), dir, grace)
		}), &grace)
}

func stopService(ctx context.Context, w io.Writer, dir string, grace time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := app.Control(cctx, dir, &app.Hello{Op: app.OpStop, Version: version(), GraceS: grace.Seconds()})
	cancel()
	if errors.Is(err, app.ErrNoService) {
		fmt.Fprintln(w, "relay service: not running")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "relay service (pid %d): stopping; %d running job(s) get %s to finish\n", r.PID, r.Running, grace)
	if err := app.WaitStopped(ctx, dir, grace+time.Minute); err != nil {
		return err
	}
	fmt.Fprintln(w, "relay service: stopped")
	return nil
}

func newDaemonRestart() *cobra.Command {
	var grace time.Duration
	return withGrace(daemonCommand("restart", "Stop the relay service (as stop does) and start it again", true,
		func(cmd *cobra.Command, dir string, f *daemonFlags) error {
			if err := stopService(cmd.Context(), cmd.OutOrStdout(), dir, grace); err != nil {
				return err
			}
			if err := startService(cmd.Context(), dir); err != nil {
				return err
			}
			return printStatus(cmd.Context(), cmd.OutOrStdout(), dir, f.asJSON)
		}), &grace)
}

func newDaemonStatus() *cobra.Command {
	return daemonCommand("status", "Show whether the relay service runs, where, and what it does", true,
		func(cmd *cobra.Command, dir string, f *daemonFlags) error {
			return printStatus(cmd.Context(), cmd.OutOrStdout(), dir, f.asJSON)
		})
}

func status(ctx context.Context, dir string) (*app.Reply, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return app.Control(cctx, dir, &app.Hello{Op: app.OpStatus, Version: version()})
}

// printStatus prints the service's status; a service that does not run is
// exit code 3 (as `systemctl status` does), so that scripts can tell.
func printStatus(ctx context.Context, w io.Writer, dir string, asJSON bool) error {
	r, err := status(ctx, dir)
	if err != nil {
		if asJSON {
			_ = json.NewEncoder(w).Encode(map[string]any{"running": false, "dataDir": dir, "error": err.Error()})
		} else {
			fmt.Fprintf(w, "relay service: not running (data dir %s)\n", dir)
		}
		return &exitError{code: 3}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"running": true, "status": r.Status})
	}
	s := r.Status
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "relay service:\trunning (pid %d, version %s, up %s)\n", s.PID, s.Version, time.Since(s.StartedAt).Round(time.Second))
	fmt.Fprintf(tw, "data dir:\t%s\n", s.DataDir)
	fmt.Fprintf(tw, "HTTP API:\t%s (MCP at %s/mcp)\n", s.Origin, s.Origin)
	fmt.Fprintf(tw, "socket:\t%s\n", s.Socket)
	fmt.Fprintf(tw, "running jobs:\t%d\n", s.Running)
	fmt.Fprintf(tw, "sessions:\t%d\n", s.Sessions)
	fmt.Fprintf(tw, "log:\t%s\n", filepath.Join(s.DataDir, app.ServiceLogFile))
	for _, p := range s.Projects {
		line := strings.Join(p.Executors, ", ")
		if p.Error != "" {
			line = "CONFIG ERROR: " + p.Error
		}
		fmt.Fprintf(tw, "project %s:\t%s\n", p.Dir, line)
	}
	if s.Version != version() {
		fmt.Fprintf(tw, "note:\tthis command is version %s; `mcp-task-relay daemon restart` runs it once jobs are done\n", version())
	}
	return tw.Flush()
}

func newDaemonLogs() *cobra.Command {
	var (
		follow bool
		lines  int
	)
	cmd := daemonCommand("logs", "Print the relay service's log (JSON lines)", false,
		func(cmd *cobra.Command, dir string, _ *daemonFlags) error {
			return tailFile(cmd.Context(), cmd.OutOrStdout(), filepath.Join(dir, app.ServiceLogFile), lines, follow)
		})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing lines as they are written")
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "print the last N lines first (0: all)")
	return cmd
}

// tailFile prints the last n lines of path, then, with follow, what is
// appended until ctx ends.
func tailFile(ctx context.Context, w io.Writer, path string, n int, follow bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("service log: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if n > 0 {
		lines := strings.SplitAfter(string(data), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		data = []byte(strings.Join(lines, ""))
	}
	if _, err := w.Write(data); err != nil || !follow {
		return err
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := f.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newDaemonInstall() *cobra.Command {
	var print bool
	cmd := daemonCommand("install", "Write a systemd user unit (Linux) or launchd agent (macOS) that keeps the relay service running", false,
		func(cmd *cobra.Command, dir string, _ *daemonFlags) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			path, body, hint := serviceUnit(runtime.GOOS, home, self, dir)
			if path == "" {
				return fmt.Errorf("daemon install supports linux (systemd) and darwin (launchd), not %s", runtime.GOOS)
			}
			if print {
				_, err := fmt.Fprint(cmd.OutOrStdout(), body)
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nenable it with:\n  %s\n", path, hint)
			return nil
		})
	cmd.Flags().BoolVar(&print, "print", false, "print the unit instead of writing it")
	return cmd
}

// serviceUnit returns where the OS's user service manager expects a unit
// for the relay service, its text and the command that enables it.
func serviceUnit(goos, home, self, dataDir string) (path, body, hint string) {
	switch goos {
	case "linux":
		path = filepath.Join(home, ".config", "systemd", "user", "mcp-task-relay.service")
		body = fmt.Sprintf(`[Unit]
Description=mcp-task-relay service (background coding jobs for MCP clients)

[Service]
ExecStart=%q daemon run --data-dir %q
ExecStop=%q daemon stop --data-dir %q --grace 60s
Restart=on-failure
TimeoutStopSec=120

[Install]
WantedBy=default.target
`, self, dataDir, self, dataDir)
		return path, body, "systemctl --user daemon-reload && systemctl --user enable --now mcp-task-relay"
	case "darwin":
		path = filepath.Join(home, "Library", "LaunchAgents", "dev.mcp-task-relay.plist")
		body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>dev.mcp-task-relay</string>
  <key>ProgramArguments</key>
  <array><string>%s</string><string>daemon</string><string>run</string><string>--data-dir</string><string>%s</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>StandardErrorPath</key><string>%s</string>
</dict>
</plist>
`, self, dataDir, filepath.Join(dataDir, app.ServiceLogFile))
		return path, body, "launchctl load -w " + path
	}
	return "", "", ""
}
