// Package bench measures the relay against the relay's speed targets
// (docs/BENCHMARKS.md): cold start to the MCP initialize reply, submit
// latency, submit → handler start (a no-op handler: the queue alone),
// the ask API, no-op jobs per second through the SQLite queue, and real
// jobs through the full pipeline: submit → executor process start and the
// time of each phase; and a relay process's idle memory, fresh and after
// real jobs (RunSoak). The `mcp-task-relay bench` command and the
// package's Go benchmarks share it.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Result is one measured figure.
type Result struct {
	Name string
	N    int
	P50  time.Duration
	P99  time.Duration
	// PerSec is a throughput, when the figure is one.
	PerSec float64
	// Commits is the number of write transactions a throughput run's
	// store began (0 where not counted).
	Commits int64
}

func (r Result) String() string {
	if r.PerSec > 0 {
		return fmt.Sprintf("%-34s n=%-6d %10.0f jobs/s", r.Name, r.N, r.PerSec)
	}
	return fmt.Sprintf("%-34s n=%-6d p50 %-12s p99 %s", r.Name, r.N, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
}

// Summarize returns the p50 and p99 of durations d under a name.
func Summarize(name string, d []time.Duration) Result {
	slices.Sort(d)
	r := Result{Name: name, N: len(d)}
	if len(d) > 0 {
		r.P50 = d[len(d)/2]
		r.P99 = d[min(len(d)-1, len(d)*99/100)]
	}
	return r
}

// Memory is what an idle process holds, in bytes (0 where /proc is not
// available).
type Memory struct {
	// RSS is the resident set size (VmRSS): private pages plus the pages
	// of the executable and libraries mapped in, which the kernel may map
	// in 2 MiB blocks (large page-cache folios) and which other processes
	// running the same binary share.
	RSS int64
	// Private is the process's own memory (RssAnon): heap, stacks and
	// runtime data, which no other process shares.
	Private int64
}

// ColdStart starts `binary serve --standalone` (the whole relay in one
// process) n times with in-memory storage and times each from exec to the
// initialize reply. It also returns the median memory of the idle server
// right after initialize.
func ColdStart(ctx context.Context, binary, dir string, n int) (Result, Memory, error) {
	return starts(ctx, "cold start → initialize reply", binary, n, func(i int) []string {
		return []string{"serve", "--standalone", "--storage", "memory", "--config-dir", filepath.Join(dir, fmt.Sprint("cold", i))}
	}, filepath.Join(dir, "cold-data"))
}

// FrontStart starts a relay service for a data dir under dir, then `binary
// serve` n times as a thin front of it (what an MCP client launches), and
// times each from exec to the initialize reply, which has crossed the
// front and the service's socket. It also returns the median resident set
// size and private memory of an idle front. The service is stopped at the end.
func FrontStart(ctx context.Context, binary, dir string, n int) (Result, Memory, error) {
	data := filepath.Join(dir, "front-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return Result{}, Memory{}, err
	}
	// A free port: the default may be taken by the user's own service.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, Memory{}, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	if err := os.WriteFile(filepath.Join(data, "service.yaml"), []byte(fmt.Sprintf("askAnswer:\n  port: %d\n", port)), 0o600); err != nil {
		return Result{}, Memory{}, err
	}
	daemon := func(args ...string) error {
		cmd := exec.CommandContext(ctx, binary, append([]string{"daemon"}, append(args, "--data-dir", data)...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("daemon %s: %w: %s", args[0], err, out)
		}
		return nil
	}
	if err := daemon("start"); err != nil {
		return Result{}, Memory{}, err
	}
	defer func() { _ = daemon("stop", "--grace", "1s") }()
	return starts(ctx, "front start → initialize reply", binary, n, func(i int) []string {
		return []string{"serve", "--config-dir", filepath.Join(dir, fmt.Sprint("front", i))}
	}, data)
}

// starts runs binary with args(i) n times as an MCP server on stdio and
// times exec → initialize reply; it returns the median RSS and private
// memory of the idle process.
func starts(ctx context.Context, name, binary string, n int, args func(i int) []string, dataDir string) (Result, Memory, error) {
	var (
		d            []time.Duration
		rss, private []int64
	)
	for i := range n {
		t0 := time.Now()
		s, pid, err := connectRelay(ctx, binary, dataDir, args(i))
		if err != nil {
			return Result{}, Memory{}, fmt.Errorf("%s %d: %w", name, i, err)
		}
		d = append(d, time.Since(t0))
		m := memoryOf(pid)
		rss, private = append(rss, m.RSS), append(private, m.Private)
		_ = s.Close()
	}
	slices.Sort(rss)
	slices.Sort(private)
	return Summarize(name, d), Memory{RSS: rss[len(rss)/2], Private: private[len(private)/2]}, nil
}

// connectRelay starts binary with args as an MCP server on stdio, with its
// data in dataDir, its log quiet and env added, and returns the client
// session once the initialize handshake is done, with the server's pid.
func connectRelay(ctx context.Context, binary, dataDir string, args []string, env ...string) (*mcp.ClientSession, int, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(cmd.Environ(), "TASK_RELAY_DATA_DIR="+dataDir, "TASK_RELAY_LOG_LEVEL=error"), env...)
	cmd.Stderr = io.Discard
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "0"}, nil)
	s, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, 0, err
	}
	return s, cmd.Process.Pid, nil
}

// memoryOf reads VmRSS and RssAnon of a process from /proc.
func memoryOf(pid int) Memory {
	var m Memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	kb := func(s string) int64 {
		var v int64
		fmt.Sscanf(strings.TrimSpace(s), "%d", &v)
		return v * 1024
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			m.RSS = kb(rest)
		} else if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			m.Private = kb(rest)
		}
	}
	return m
}

// noop is a Handler that does nothing, so the queue alone is measured.
type noop struct {
	started func(*relaytype.Job)
}

func (noop) Admit(context.Context, *relaytype.JobSpec) (string, string, error) {
	return "noop", "0000000000000000000000000000000000000000", nil
}

func (h noop) Handle(_ context.Context, j *relaytype.Job) relay.Outcome {
	if h.started != nil {
		h.started(j)
	}
	return relay.Outcome{State: relaytype.StateSucceeded}
}

func spec(i int) *relaytype.JobSpec {
	return &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: "/nonexistent"},
		Task:           relaytype.Task{Title: "noop", Description: "benchmark job"},
		IdempotencyKey: fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i),
	}
}

// Queue bundles a relay on a SQLite file with a no-op handler.
type Queue struct {
	Relay   *relay.Relay
	store   *sqlite.Store
	started chan time.Time
}

// NewQueue opens a SQLite file under dir and starts a relay on it.
func NewQueue(ctx context.Context, dir string, concurrency int) (*Queue, error) {
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "bench.db")})
	if err != nil {
		return nil, err
	}
	q := &Queue{store: st, started: make(chan time.Time, 1)}
	r, err := relay.New(relay.Config{
		Store:          st,
		Handler:        noop{started: func(*relaytype.Job) { q.started <- time.Now() }},
		Artifacts:      relay.ArtifactDir{Root: filepath.Join(dir, "artifacts")},
		Logger:         slog.New(slog.DiscardHandler),
		MaxConcurrency: concurrency,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	q.Relay = r
	return q, nil
}

// Close stops the relay and closes the store.
func (q *Queue) Close() error {
	q.Relay.Stop()
	return q.store.Close()
}

// Dispatch submits n jobs one at a time to an idle relay and measures the
// Submit call and the time from before Submit to the handler starting.
func (q *Queue) Dispatch(ctx context.Context, n int) (submit, dispatch Result, err error) {
	sd, dd, err := measureDispatch(ctx, n, q.Relay, q.started)
	if err != nil {
		return submit, dispatch, err
	}
	return Summarize("submit (SQLite file, WAL)", sd), Summarize("submit → handler start (no-op handler)", dd), nil
}

// measureDispatch submits n jobs one at a time through r and returns the
// durations of the Submit calls and, for each job, the time from before
// its Submit to the handler reporting its start on started.
func measureDispatch(ctx context.Context, n int, r *relay.Relay, started <-chan time.Time) (submit, dispatch []time.Duration, err error) {
	for i := range n {
		t0 := time.Now()
		if _, _, err := r.Submit(ctx, spec(i)); err != nil {
			return nil, nil, err
		}
		submit = append(submit, time.Since(t0))
		select {
		case s := <-started:
			dispatch = append(dispatch, s.Sub(t0))
		case <-time.After(10 * time.Second):
			return nil, nil, fmt.Errorf("job %d never started", i)
		}
	}
	return submit, dispatch, nil
}

// Throughput pushes n no-op jobs through a fresh relay on a SQLite file and
// returns jobs per second from the first submit to the last SUCCEEDED.
func Throughput(ctx context.Context, dir string, n, concurrency int) (Result, error) {
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, fmt.Sprintf("tp-%d.db", time.Now().UnixNano()))})
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	r, err := relay.New(relay.Config{
		Store: st, Handler: noop{}, Logger: slog.New(slog.DiscardHandler),
		Artifacts: relay.ArtifactDir{Root: filepath.Join(dir, "artifacts")}, MaxConcurrency: concurrency,
	})
	if err != nil {
		return Result{}, err
	}
	before := st.WriteStats()
	el, err := drive(ctx, []*relay.Relay{r}, n, 4, spec, 2*time.Minute)
	if err != nil {
		return Result{}, err
	}
	return Result{Name: "no-op jobs through SQLite queue", N: n, PerSec: float64(n) / el.Seconds(),
		Commits: st.WriteStats().Transactions - before.Transactions}, nil
}

// drive starts the relays rs (sharing one store), submits n jobs made by
// mk round robin through them from the given number of goroutines, and
// waits until all n have finished. It returns the time from the first
// submit to the last finish, or an error if a job ended in another state
// than SUCCEEDED. A job's end is counted once, whichever relay reports it.
func drive(ctx context.Context, rs []*relay.Relay, n, submitters int, mk func(int) *relaytype.JobSpec, timeout time.Duration) (time.Duration, error) {
	var mu sync.Mutex
	ended := make(map[string]bool, n)
	var failed atomic.Int64
	all := make(chan struct{})
	for _, r := range rs {
		changes, unsub := r.Subscribe()
		defer unsub()
		go func() {
			for c := range changes {
				if !c.State.Terminal() {
					continue
				}
				mu.Lock()
				if !ended[c.JobID] {
					ended[c.JobID] = true
					if c.State != relaytype.StateSucceeded {
						failed.Add(1)
					}
					if len(ended) == n {
						close(all)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, r := range rs {
		if err := r.Start(ctx); err != nil {
			return 0, err
		}
		defer r.Stop()
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, submitters)
	for w := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += submitters {
				if _, _, err := rs[i%len(rs)].Submit(ctx, mk(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	select {
	case <-all:
	case <-time.After(timeout):
		mu.Lock()
		defer mu.Unlock()
		return 0, fmt.Errorf("only %d of %d jobs finished", len(ended), n)
	}
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d jobs did not succeed", f, n)
	}
	return time.Since(t0), nil
}
