package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// DefaultStartTimeout bounds how long a front waits for the service it
// started to accept connections.
const DefaultStartTimeout = 15 * time.Second

// FrontOptions configure RunFront.
type FrontOptions struct {
	// Config is the project's configuration: its ConfigDir is the project
	// and its DataDir names the service. Required.
	Config *config.Config
	// Stdin and Stdout carry the client's MCP session.
	Stdin  io.Reader
	Stdout io.Writer
	// Logger receives structured logs (stderr). Required.
	Logger *slog.Logger
	// Version is this binary's version.
	Version string
	// Getenv reads the variables forwarded for the project. Defaults to
	// os.LookupEnv.
	Getenv func(string) (string, bool)
	// Binary is the program started as the service. Defaults to this
	// executable.
	Binary string
	// StartTimeout bounds the wait for a service this front starts.
	// Defaults to DefaultStartTimeout.
	StartTimeout time.Duration
	// Ready, when set, is called once the session is connected to the
	// service.
	Ready func()
}

// RunFront is `serve` in service mode: it connects to the relay service of
// the project's data dir (starting it when it is not running) and carries
// the client's MCP session over the service's socket unchanged, until the
// client or the service closes it. Jobs, asks and executors belong to the
// service and outlive the session.
func RunFront(ctx context.Context, o FrontOptions) error {
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate own binary: %w", err)
		}
		o.Binary = self
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	cfg, log := o.Config, o.Logger
	hello := &Hello{Op: OpSession, Version: o.Version, Project: cfg.ConfigDir, Env: forwardEnv(cfg, o.Getenv)}
	// Look at the service's version before opening a session, so that our
	// own session does not make it look busy.
	status := &Hello{Op: OpStatus, Version: o.Version}
	conn, _, reply, err := connect(ctx, o, status)
	if err != nil {
		return err
	}
	_ = conn.Close()
	if reply.Version != o.Version {
		if err := upgrade(ctx, o, reply); err != nil {
			return err
		}
	}
	conn, br, reply, err := connect(ctx, o, hello)
	if err != nil {
		return err
	}
	defer conn.Close()
	if reply.ProjectError != "" {
		log.Error("this project's config does not load; jobs_submit fails until it is fixed", "project", cfg.ConfigDir,
			"err", reply.ProjectError)
	}
	log.Info("connected to the relay service", "pid", reply.PID, "version", reply.Version, "origin", reply.Origin,
		"project", cfg.ConfigDir)
	if o.Ready != nil {
		o.Ready()
	}
	return pipe(ctx, conn, br, o.Stdin, o.Stdout)
}

// connect dials the service, starting it first when none runs.
func connect(ctx context.Context, o FrontOptions, h *Hello) (net.Conn, *bufio.Reader, *Reply, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, br, r, err := Dial(dctx, o.Config.DataDir, h)
	cancel()
	if err == nil || !errors.Is(err, ErrNoService) {
		return conn, br, r, err
	}
	if err := StartService(ctx, o.Config.DataDir, o.Binary, o.StartTimeout); err != nil {
		return nil, nil, nil, err
	}
	dctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return Dial(dctx, o.Config.DataDir, h)
}

// upgrade handles a service of another version: when it is idle, it is
// stopped (connect then starts this front's own binary in its place);
// otherwise the session goes on with the running service, and the front
// says so.
func upgrade(ctx context.Context, o FrontOptions, r *Reply) error {
	log := o.Logger
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := Control(cctx, o.Config.DataDir, &Hello{Op: OpRestartIfIdle, Version: o.Version})
	cancel()
	if err != nil {
		log.Warn("the relay service runs another version and is busy; keeping it (running jobs are never interrupted). "+
			"Run `mcp-task-relay daemon restart` once its jobs have finished.",
			"service_version", r.Version, "front_version", o.Version, "why", err)
		return nil
	}
	log.Info("restarting the idle relay service of another version", "service_version", r.Version, "front_version", o.Version)
	return waitStopped(ctx, o.Config.DataDir, 30*time.Second)
}

// pipe copies the client's stdin to the service and the service's output
// to the client's stdout until either side closes.
func pipe(ctx context.Context, conn net.Conn, br *bufio.Reader, in io.Reader, out io.Writer) error {
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, in)
		// The client closed its end: tell the service the session is over,
		// and let it finish writing.
		if uc, ok := conn.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
		done <- err
	}()
	out2 := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, br)
		out2 <- err
	}()
	select {
	case err := <-out2:
		// The service closed the session (client gone, or service stopping).
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("relay service connection: %w", err)
		}
		return nil
	case <-ctx.Done():
		_ = conn.Close()
		<-out2
		return nil
	}
}

// forwardEnv returns the variables of the front's environment that its
// project's config names (see forwardedEnvNames); TASK_RELAY_* paths are
// made absolute against the front's working directory.
func forwardEnv(cfg *config.Config, getenv func(string) (string, bool)) map[string]string {
	out := map[string]string{}
	cwd, _ := os.Getwd()
	for _, name := range forwardedEnvNames(cfg) {
		v, ok := getenv(name)
		if !ok {
			continue
		}
		switch name {
		case config.EnvPromptsDir, config.EnvSchemataDir, config.EnvPolicyFile:
			if v != "" && !filepath.IsAbs(v) && !strings.HasPrefix(v, "~") {
				v = filepath.Join(cwd, v)
			}
		}
		out[name] = v
	}
	if cfg.Profile != "" {
		// --profile given to serve reaches the project as the service
		// loads it.
		out[config.EnvProfile] = cfg.Profile
	}
	return out
}

// StartService starts the relay service of dataDir as a detached process
// (its own session, stdio to the service log) and waits until it accepts
// connections. Another front starting one at the same moment is no
// error: one of them takes the lock, and both connect to it.
func StartService(ctx context.Context, dataDir, binary string, timeout time.Duration) error {
	if err := serviceSupported(); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	logPath := filepath.Join(dataDir, ServiceLogFile)
	rotateLog(logPath, maxServiceLog)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open service log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(binary, "daemon", "run", "--data-dir", dataDir)
	cmd.Dir = dataDir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detachedProcAttr()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); serviceEnvAllowed(name) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the relay service: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := Control(cctx, dataDir, &Hello{Op: OpStatus})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-exited:
			// Lost the race to another front's service? Then that one
			// answers soon; otherwise the log says why it failed.
			if Locked(dataDir) {
				exited = nil
				continue
			}
			return fmt.Errorf("the relay service exited at start (%v): %s", err, lastLogLines(logPath, 5))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the relay service did not start within %s; see %s", timeout, logPath)
		}
	}
}

// maxServiceLog is the size past which a service start moves the log to
// service.log.1 (replacing an older one), so that it cannot grow forever.
const maxServiceLog = 16 << 20

// rotateLog renames path to path.1 when it is larger than limit.
func rotateLog(path string, limit int64) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > limit {
		_ = os.Rename(path, path+".1")
	}
}

// waitStopped waits until no service holds the lock of dataDir.
func waitStopped(ctx context.Context, dataDir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for Locked(dataDir) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the relay service of %s did not stop within %s", dataDir, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// WaitStopped waits until the service of dataDir has stopped.
func WaitStopped(ctx context.Context, dataDir string, timeout time.Duration) error {
	return waitStopped(ctx, dataDir, timeout)
}

// lastLogLines returns the last n lines of a log file, for errors.
func lastLogLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
