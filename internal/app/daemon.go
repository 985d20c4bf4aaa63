package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/mcpserver"
)

// ErrAlreadyRunning means another relay service holds the data dir.
var ErrAlreadyRunning = errors.New("a relay service is already running for this data dir")

// Operations a client asks of the service in its hello line.
const (
	// OpSession carries one MCP session for a project over the
	// connection, after the reply line.
	OpSession = "session"
	// OpStatus returns the service's status.
	OpStatus = "status"
	// OpStop drains and stops the service.
	OpStop = "stop"
	// OpRestartIfIdle stops the service when it runs nothing and serves
	// no other session, so that a front of another version can start its
	// own; otherwise it refuses.
	OpRestartIfIdle = "restart-if-idle"
)

// maxHello bounds the hello line a client sends.
const maxHello = 1 << 20

// Hello is the first line a client sends on the service's socket.
type Hello struct {
	// Op is what the client wants: session, status, stop or
	// restart-if-idle.
	Op string `json:"op"`
	// Version is the client's version.
	Version string `json:"version,omitempty"`
	// Project is the absolute config dir of the session's project.
	Project string `json:"project,omitempty"`
	// Env holds the variables the project's config names, from the
	// front's environment; the service keeps them in memory only.
	Env map[string]string `json:"env,omitempty"`
	// GraceS is how long a stop lets running jobs finish, in seconds.
	GraceS float64 `json:"graceS,omitempty"`
}

// Reply is the service's answer line.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Status describes the service.
	Status
	// ProjectError says why the session's project config does not load
	// (submits fail until it is fixed).
	ProjectError string `json:"projectError,omitempty"`
}

// Status is what `daemon status` shows.
type Status struct {
	Version   string    `json:"version,omitempty"`
	PID       int       `json:"pid,omitempty"`
	DataDir   string    `json:"dataDir,omitempty"`
	Origin    string    `json:"origin,omitempty"`
	Socket    string    `json:"socket,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Running is how many jobs the service runs now.
	Running int `json:"running"`
	// Sessions is how many MCP sessions are connected over the socket.
	Sessions int `json:"sessions"`
	// Projects are the projects the service has loaded.
	Projects []ProjectStatus `json:"projects,omitempty"`
	// Draining is true while the service stops.
	Draining bool `json:"draining,omitempty"`
}

// ProjectStatus describes one loaded project.
type ProjectStatus struct {
	Dir       string   `json:"dir"`
	Executors []string `json:"executors,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	// DataDir is the service's data dir, absolute. Required.
	DataDir string
	// Logger receives structured logs. Required.
	Logger *slog.Logger
	// Version is the service's version.
	Version string
	// Getenv reads the service's settings from the environment. Defaults
	// to os.LookupEnv.
	Getenv func(string) (string, bool)
	// Ready, when set, is called once the service accepts connections.
	Ready func(*ServiceInfo)
	// started, when set (tests), is called with the service once it runs.
	started func(*Service)
}

// daemon is a running relay service.
type daemon struct {
	svc     *Service
	log     *slog.Logger
	version string
	info    *ServiceInfo

	stop     chan time.Duration // a stop request with its grace
	stopOnce sync.Once

	mu    sync.Mutex
	conns map[net.Conn]bool // true for MCP sessions
}

// RunDaemon runs the relay service of a data dir until ctx ends or a
// client asks it to stop: the queue, workers, HTTP API (Ask/Answer, jobs,
// MCP at /mcp) and the unix socket that stdio fronts connect to. One
// service runs per data dir (a lock file says which); it publishes its
// address in service.json.
func RunDaemon(ctx context.Context, o DaemonOptions) error {
	if !filepath.IsAbs(o.DataDir) {
		return fmt.Errorf("data dir %q must be absolute", o.DataDir)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDataDir(o.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	cfg, err := config.LoadService(o.DataDir, o.Getenv)
	if err != nil {
		return err
	}
	svc, err := New(ctx, Options{Config: cfg, Logger: o.Logger, Version: o.Version})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close(0)
		return err
	}
	sock := SocketPath(o.DataDir)
	// The lock is ours, so a socket file left here is a dead service's.
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err == nil {
		err = os.Chmod(sock, 0o600)
	}
	if err != nil {
		_ = svc.Close(0)
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	d := &daemon{svc: svc, log: o.Logger, version: o.Version, stop: make(chan time.Duration, 1), conns: map[net.Conn]bool{}}
	d.info = &ServiceInfo{PID: os.Getpid(), Version: o.Version, DataDir: o.DataDir, Socket: sock, Origin: svc.origin,
		StartedAt: time.Now().UTC()}
	if err := writeServiceInfo(o.DataDir, d.info); err != nil {
		_ = ln.Close()
		_ = svc.Close(0)
		return err
	}
	o.Logger.Info("relay service ready", "version", o.Version, "pid", d.info.PID, "data_dir", o.DataDir,
		"socket", sock, "origin", svc.origin, "storage", cfg.Storage.Mode, "instance", svc.relay.InstanceID())
	if o.started != nil {
		o.started(svc)
	}
	if o.Ready != nil {
		o.Ready(d.info)
	}
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		d.accept(ctx, ln)
	}()
	grace := DefaultDrainGrace
	var failed error
	select {
	case <-ctx.Done():
	case grace = <-d.stop:
	case <-svc.HTTPFailed():
		failed = svc.HTTPErr()
		o.Logger.Error("relay service stopping: its HTTP API is gone", "err", failed)
	}
	o.Logger.Info("relay service stopping", "grace", grace, "running", svc.relay.Running())
	// Fronts must not reach a service that is going away: stop accepting
	// and unpublish first, then drain.
	_ = ln.Close()
	<-acceptDone
	_ = os.Remove(filepath.Join(o.DataDir, ServiceInfoFile))
	err = svc.Close(grace)
	d.closeConns()
	o.Logger.Info("relay service stopped")
	if failed != nil {
		return errors.Join(failed, err)
	}
	return err
}

func (d *daemon) accept(ctx context.Context, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				d.log.Error("accept", "err", err)
			}
			return
		}
		d.track(conn, false)
		go func() {
			defer d.untrack(conn)
			defer conn.Close()
			d.serveConn(ctx, conn)
		}()
	}
}

func (d *daemon) track(c net.Conn, session bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conns[c] = session
}

func (d *daemon) untrack(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.conns, c)
}

func (d *daemon) sessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.conns {
		if s {
			n++
		}
	}
	return n
}

func (d *daemon) closeConns() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		_ = c.Close()
	}
}

func (d *daemon) requestStop(grace time.Duration) {
	d.stopOnce.Do(func() { d.stop <- grace })
}

func (d *daemon) status(ctx context.Context) Status {
	st := Status{Version: d.version, PID: d.info.PID, DataDir: d.info.DataDir, Origin: d.info.Origin,
		Socket: d.info.Socket, StartedAt: d.info.StartedAt, Running: d.svc.relay.Running(),
		Sessions: d.sessions(), Draining: d.svc.relay.Draining()}
	ps := d.svc.projects
	ps.mu.Lock()
	dirs := make([]string, 0, len(ps.byDir))
	for dir := range ps.byDir {
		dirs = append(dirs, dir)
	}
	ps.mu.Unlock()
	sort.Strings(dirs)
	for _, dir := range dirs {
		p, err := ps.open(ctx, dir, nil)
		if err != nil {
			continue
		}
		s := ProjectStatus{Dir: dir}
		if cfg := p.Config(); cfg != nil {
			s.Executors = cfg.Executors.Names()
		}
		if err := p.Err(); err != nil {
			s.Error = err.Error()
		}
		st.Projects = append(st.Projects, s)
	}
	return st
}

// serveConn reads a client's hello line and does what it asks.
func (d *daemon) serveConn(ctx context.Context, conn net.Conn) {
	br := bufio.NewReaderSize(conn, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := readLine(br, maxHello)
	if err != nil {
		d.log.Warn("socket client sent no hello", "err", err)
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var h Hello
	if err := json.Unmarshal(line, &h); err != nil {
		writeReply(conn, &Reply{Error: "bad hello: " + err.Error()})
		return
	}
	switch h.Op {
	case OpStatus:
		writeReply(conn, &Reply{OK: true, Status: d.status(ctx)})
	case OpStop:
		grace := DefaultDrainGrace
		if h.GraceS > 0 {
			grace = time.Duration(h.GraceS * float64(time.Second))
		}
		writeReply(conn, &Reply{OK: true, Status: d.status(ctx)})
		d.log.Info("stop requested", "grace", grace, "by_version", h.Version)
		d.requestStop(grace)
	case OpRestartIfIdle:
		// A session that just ended may take a moment to be gone.
		for deadline := time.Now().Add(2 * time.Second); d.sessions() > 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if n := d.sessions(); n > 0 || !d.svc.Idle(ctx) {
			writeReply(conn, &Reply{Error: fmt.Sprintf("busy: %d job(s) running, %d session(s) connected", d.svc.relay.Running(), n),
				Status: d.status(ctx)})
			return
		}
		writeReply(conn, &Reply{OK: true, Status: d.status(ctx)})
		d.log.Info("stopping for a front of another version", "front_version", h.Version)
		d.requestStop(0)
	case OpSession:
		d.session(ctx, conn, br, &h)
	default:
		writeReply(conn, &Reply{Error: fmt.Sprintf("unknown op %q", h.Op)})
	}
}

// session runs one MCP session of a project over conn.
func (d *daemon) session(ctx context.Context, conn net.Conn, br *bufio.Reader, h *Hello) {
	if d.svc.relay.Draining() {
		writeReply(conn, &Reply{Error: "the relay service is stopping; try again in a moment"})
		return
	}
	p, err := d.svc.projects.open(ctx, h.Project, h.Env)
	if err != nil {
		writeReply(conn, &Reply{Error: err.Error()})
		return
	}
	r := &Reply{OK: true, Status: Status{Version: d.version, PID: d.info.PID, DataDir: d.info.DataDir, Origin: d.info.Origin}}
	if err := p.Err(); err != nil {
		r.ProjectError = err.Error()
	}
	if !writeReply(conn, r) {
		return
	}
	d.track(conn, true)
	d.log.Info("session connected", "project", p.Dir, "front_version", h.Version)
	t := &mcpserver.LineTransport{Reader: io.NopCloser(br), Writer: conn, Logger: d.log.With("project", p.Dir)}
	if err := p.mcp.Run(ctx, t); err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		d.log.Warn("session ended", "project", p.Dir, "err", err)
		return
	}
	d.log.Info("session ended", "project", p.Dir)
}

// readLine reads one newline-terminated line of at most limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("line longer than %d bytes", limit)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

func writeReply(w io.Writer, r *Reply) bool {
	b, err := json.Marshal(r)
	if err != nil {
		return false
	}
	_, err = w.Write(append(b, '\n'))
	return err == nil
}

// Dial connects to the service of dataDir, sends h and returns the
// connection (positioned after the reply line) and the reply. A reply
// that is not OK is returned with an error.
func Dial(ctx context.Context, dataDir string, h *Hello) (net.Conn, *bufio.Reader, *Reply, error) {
	sock := SocketPath(dataDir)
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w for data dir %s (%v)", ErrNoService, dataDir, err)
	}
	b, err := json.Marshal(h)
	if err == nil {
		_, err = conn.Write(append(b, '\n'))
	}
	if err != nil {
		_ = conn.Close()
		return nil, nil, nil, fmt.Errorf("talk to the relay service: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	line, err := readLine(br, maxHello)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		_ = conn.Close()
		return nil, nil, nil, fmt.Errorf("read the relay service's reply: %w", err)
	}
	var r Reply
	if err := json.Unmarshal(line, &r); err != nil {
		_ = conn.Close()
		return nil, nil, nil, fmt.Errorf("read the relay service's reply: %w", err)
	}
	if !r.OK {
		_ = conn.Close()
		return nil, nil, &r, fmt.Errorf("relay service: %s", r.Error)
	}
	return conn, br, &r, nil
}

// Control sends a one-shot request (status, stop, restart-if-idle) to the
// service of dataDir.
func Control(ctx context.Context, dataDir string, h *Hello) (*Reply, error) {
	conn, _, r, err := Dial(ctx, dataDir, h)
	if err != nil {
		return r, err
	}
	_ = conn.Close()
	return r, nil
}

// serviceEnvAllowed reports whether a variable of a front's environment is
// passed to a service it starts: the basics of a login session and the
// service settings, never a project's settings or secrets (each front
// forwards those for its own project).
func serviceEnvAllowed(name string) bool {
	switch name {
	case "HOME", "USER", "LOGNAME", "PATH", "SHELL", "LANG", "TZ", "TMPDIR", "GOCOVERDIR",
		config.EnvDataDir, config.EnvStorage, config.EnvSQLiteURL, config.EnvPostgresURL, config.EnvLogLevel, "TASK_RELAY_API_TOKEN":
		return true
	}
	return strings.HasPrefix(name, "LC_") || strings.HasPrefix(name, "XDG_")
}
