package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// PipelineConfig configures a run of real jobs through the production
// pipeline.
type PipelineConfig struct {
	// Dir is a scratch directory (the repository, store, workspaces and
	// artifacts go there). Required.
	Dir string
	// Shim is the relay binary that executors run under, as in
	// production; empty runs them directly.
	Shim string
	// Jobs is the number of jobs. Required.
	Jobs int
	// Concurrency is the number of workers. At 1 the jobs run one at a
	// time, each submitted once the one before it has ended: its phases
	// then add up to its latency, on an otherwise idle relay. Defaults to 1.
	Concurrency int
}

// PipelineRun is what a run of real jobs measured.
type PipelineRun struct {
	// Throughput is jobs per second from the first submit to the last
	// end.
	Throughput Result
	// ExecStart holds, for each job submitted on an idle relay
	// (Concurrency 1), the time from before its Submit to its executor
	// process signaling its start (empty otherwise).
	ExecStart []time.Duration
	// Phases is the wall-clock time of each phase of each job, in
	// pipeline order (PipelinePhases).
	Phases []PhaseTimes
}

// PhaseTimes is one phase of the pipeline and how long it took in each
// job.
type PhaseTimes struct {
	Name string
	Key  string
	D    []time.Duration
}

// stamp is an instant in a job's way through the pipeline.
type stamp int

const (
	stSubmit      stamp = iota // before Relay.Submit
	stHandle                   // the relay called the Handler: job claimed
	stPrepStart                // workspace.Prepare began
	stPrepEnd                  // the worktree exists
	stRunStart                 // the executor Runner was called
	stExec                     // the executor process signaled its start
	stRunEnd                   // the Runner returned: executor exited
	stDiffStart                // Workspace.Diff began
	stDiffEnd                  //
	stCheckStart               // Workspace.CheckApplies began
	stCheckEnd                 //
	stRemoveStart              // Workspace.Remove began
	stRemoveEnd                //
	stEnd                      // the job's terminal state reached a subscriber
	nStamps
)

// PipelinePhases are the phases of a full-pipeline job in order: what
// happens between two instants the bench observes. Each names the
// relay's work in between (see relay.Pipeline.Handle).
var PipelinePhases = []struct {
	Name string
	// Key is a short name, as in the Go benchmark's metrics.
	Key      string
	from, to stamp
}{
	{"submit → handler start (insert, admit, claim)", "claim", stSubmit, stHandle},
	{"phase event (preparing workspace)", "event-prep", stHandle, stPrepStart},
	{"worktree create (git worktree add)", "worktree-add", stPrepStart, stPrepEnd},
	{"prompt write + phase event (running)", "prompt-event-run", stPrepEnd, stRunStart},
	{"executor start (exec shim → sh, signal)", "exec-start", stRunStart, stExec},
	{"executor run + exit (shim teardown)", "exec-run", stExec, stRunEnd},
	{"phase event (collecting) + logs.txt fsync", "event-collect-logs", stRunEnd, stDiffStart},
	{"diff (git add --all, git diff)", "diff", stDiffStart, stDiffEnd},
	{"scope check + patch.diff fsync", "patch", stDiffEnd, stCheckStart},
	{"apply-check (git read-tree, git apply --check)", "apply-check", stCheckStart, stCheckEnd},
	{"out.md fsync + output contract", "out", stCheckEnd, stRemoveStart},
	{"worktree removal", "worktree-remove", stRemoveStart, stRemoveEnd},
	{"finish transition (SUCCEEDED) → subscriber", "finish", stRemoveEnd, stEnd},
	{"total: submit → SUCCEEDED", "total", stSubmit, stEnd},
}

// recorder keeps the stamps of every job.
type recorder struct {
	mu   sync.Mutex
	jobs map[string]*[nStamps]time.Time
	// waiting holds, by job and stamp, a channel closed when the stamp is
	// marked (see marked).
	waiting map[stampKey]chan struct{}
}

type stampKey struct {
	jobID string
	s     stamp
}

func (r *recorder) mark(jobID string, s stamp, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[jobID]
	if j == nil {
		j = new([nStamps]time.Time)
		r.jobs[jobID] = j
	}
	if j[s].IsZero() { // the first: a state published twice ended once
		j[s] = at
	}
	if ch, ok := r.waiting[stampKey{jobID, s}]; ok {
		close(ch)
		delete(r.waiting, stampKey{jobID, s})
	}
}

// marked returns a channel that is closed once stamp s of the job is
// marked (at once if it is).
func (r *recorder) marked(jobID string, s stamp) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	if j := r.jobs[jobID]; j != nil && !j[s].IsZero() {
		close(ch)
		return ch
	}
	k := stampKey{jobID, s}
	if old, ok := r.waiting[k]; ok {
		return old
	}
	if r.waiting == nil {
		r.waiting = map[stampKey]chan struct{}{}
	}
	r.waiting[k] = ch
	return ch
}

// phases returns, for each of PipelinePhases, the durations of the jobs
// that have both of its stamps.
func (r *recorder) phases() []PhaseTimes {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PhaseTimes, len(PipelinePhases))
	for i, p := range PipelinePhases {
		out[i].Name, out[i].Key = p.Name, p.Key
		for _, j := range r.jobs {
			if !j[p.from].IsZero() && !j[p.to].IsZero() {
				out[i].D = append(out[i].D, j[p.to].Sub(j[p.from]))
			}
		}
	}
	return out
}

// timedHandler stamps a Handler's start and end.
type timedHandler struct {
	relay.Handler
	rec *recorder
}

func (h timedHandler) Handle(ctx context.Context, j *relaytype.Job) relay.Outcome {
	h.rec.mark(j.ID, stHandle, time.Now())
	return h.Handler.Handle(ctx, j)
}

// timedRunner stamps an executor Runner's call and return.
type timedRunner struct {
	executor.Runner
	rec *recorder
}

func (r timedRunner) Run(ctx context.Context, req *executor.Request) (*executor.Result, error) {
	r.rec.mark(req.JobID, stRunStart, time.Now())
	res, err := r.Runner.Run(ctx, req)
	// The executor wrote its start line before it exited, but the bench's
	// reader of the FIFO can get to it only now (a goroutine scheduled
	// late on a busy machine): the Runner returns once the line is stamped,
	// so that the executor's start comes before its end and no phase is
	// negative. The wait, if any, is in the job's total.
	select {
	case <-r.rec.marked(req.JobID, stExec):
	case <-time.After(startLineWait):
	case <-ctx.Done():
	}
	r.rec.mark(req.JobID, stRunEnd, time.Now())
	return res, err
}

// startLineWait bounds the wait for an executor's start line (an executor
// that failed before writing it has none).
const startLineWait = 2 * time.Second

// traceStamps maps workspace operations to their start and end stamps.
var traceStamps = map[workspace.Op][2]stamp{
	workspace.OpPrepare:      {stPrepStart, stPrepEnd},
	workspace.OpDiff:         {stDiffStart, stDiffEnd},
	workspace.OpCheckApplies: {stCheckStart, stCheckEnd},
	workspace.OpRemove:       {stRemoveStart, stRemoveEnd},
}

// makeRepo creates a git repository with one commit under dir.
func makeRepo(ctx context.Context, dir string) (string, error) {
	repo := filepath.Join(dir, "pipeline-repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(repo, "a.txt"), []byte("a\n"), 0o644); err != nil {
		return "", err
	}
	for _, args := range [][]string{
		{"init", "--quiet"}, {"add", "."},
		{"-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "--quiet", "-m", "init"},
	} {
		c := exec.CommandContext(ctx, "git", args...)
		c.Dir = repo
		if out, err := c.CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %w: %s", args, err, out)
		}
	}
	return repo, nil
}

// Pipeline pushes real jobs through the production pipeline: a git
// worktree per job, a shell executor (run through the shim, when given)
// that signals its start on a FIFO and edits a file, patch, apply-check,
// three artifacts written and fsynced, worktree removed. It stamps each
// job's way through it (the relay's Handler, the executor Runner and the
// workspace operations are wrapped or traced; the executor process itself
// signals its start) and returns throughput, submit → executor process
// start and the time of each phase. Unix only.
func Pipeline(ctx context.Context, cfg PipelineConfig) (_ *PipelineRun, err error) {
	if cfg.Jobs < 1 {
		return nil, errors.New("bench pipeline: Jobs must be at least 1")
	}
	conc := max(cfg.Concurrency, 1)
	dir, err := os.MkdirTemp(cfg.Dir, "pipeline-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	rec := &recorder{jobs: map[string]*[nStamps]time.Time{}}
	sig, err := newStartSignal(dir, func(id string, at time.Time) { rec.mark(id, stExec, at) })
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sig.close()) }()
	repo, err := makeRepo(ctx, dir)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "pipeline.db")})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(dir, "ws"), Trace: func(op workspace.Op, id string, start, end time.Time) {
		if s, ok := traceStamps[op]; ok {
			rec.mark(id, s[0], start)
			rec.mark(id, s[1], end)
		}
	}})
	if err != nil {
		return nil, err
	}
	cmd, err := executor.NewCommand(executor.CommandConfig{
		Name: "edit", Argv: []string{"/bin/sh", "-c", sig.command("echo x >> a.txt")}, Shim: cfg.Shim,
	})
	if err != nil {
		return nil, err
	}
	arts := relay.ArtifactDir{Root: filepath.Join(dir, "artifacts")}
	log := slog.New(slog.DiscardHandler)
	pipe, err := relay.NewPipeline(relay.PipelineConfig{
		Workspaces: wm, Artifacts: arts, Executors: map[string]executor.Runner{"edit": timedRunner{cmd, rec}}, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	r, err := relay.New(relay.Config{Store: st, Handler: timedHandler{pipe, rec}, Artifacts: arts, Logger: log, MaxConcurrency: conc})
	if err != nil {
		return nil, err
	}
	mk := func(i int) *relaytype.JobSpec {
		s := spec(i)
		s.Repo = relaytype.Repo{Type: "local", Path: repo}
		return s
	}
	run := &PipelineRun{}
	var el time.Duration
	if conc == 1 {
		el, err = oneAtATime(ctx, r, cfg.Jobs, mk, rec)
	} else {
		el, err = drive(ctx, []*relay.Relay{r}, cfg.Jobs, 1, mk, 5*time.Minute)
	}
	if err != nil {
		return nil, fmt.Errorf("bench pipeline: %w", err)
	}
	run.Throughput = Result{Name: fmt.Sprintf("full pipeline jobs (git worktree, %d worker(s))", conc), N: cfg.Jobs,
		PerSec: float64(cfg.Jobs) / el.Seconds()}
	run.Phases = rec.phases()
	if conc == 1 {
		rec.mu.Lock()
		for _, j := range rec.jobs {
			if !j[stSubmit].IsZero() && !j[stExec].IsZero() {
				run.ExecStart = append(run.ExecStart, j[stExec].Sub(j[stSubmit]))
			}
		}
		rec.mu.Unlock()
		if len(run.ExecStart) != cfg.Jobs {
			return nil, fmt.Errorf("bench pipeline: %d of %d executors signaled their start", len(run.ExecStart), cfg.Jobs)
		}
	}
	return run, nil
}

// oneAtATime starts r, submits n jobs made by mk one at a time, each once
// the one before it has ended, stamps their submits and ends on rec, and
// returns the time from the first submit to the last end. A job that does
// not succeed is an error.
func oneAtATime(ctx context.Context, r *relay.Relay, n int, mk func(int) *relaytype.JobSpec, rec *recorder) (time.Duration, error) {
	changes, unsub := r.Subscribe()
	defer unsub()
	ended := make(chan relay.Change, 1024)
	go func() {
		for c := range changes {
			if c.State.Terminal() && c.Artifact == "" && !c.Asks && !c.Log {
				rec.mark(c.JobID, stEnd, time.Now())
				select {
				case ended <- c:
				default:
				}
			}
		}
	}()
	if err := r.Start(ctx); err != nil {
		return 0, err
	}
	defer r.Stop()
	first := time.Now()
	for i := range n {
		t0 := time.Now()
		job, _, err := r.Submit(ctx, mk(i))
		if err != nil {
			return 0, err
		}
		rec.mark(job.ID, stSubmit, t0)
		timeout := time.NewTimer(time.Minute)
		for done := false; !done; {
			select {
			case c := <-ended:
				if c.JobID != job.ID {
					continue
				}
				if c.State != relaytype.StateSucceeded {
					timeout.Stop()
					j, _ := r.Get(ctx, job.ID)
					why := ""
					if j != nil {
						why = j.Summary
					}
					return 0, fmt.Errorf("job %d ended %s: %s", i, c.State, why)
				}
				done = true
			case <-timeout.C:
				return 0, fmt.Errorf("job %d did not end within a minute", i)
			case <-ctx.Done():
				timeout.Stop()
				return 0, ctx.Err()
			}
		}
		timeout.Stop()
	}
	return time.Since(first), nil
}
