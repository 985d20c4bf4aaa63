package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// blockingRunner is an executor that writes before, tells started, waits
// for release and writes after.
type blockingRunner struct {
	before, after string
	started       chan struct{}
	release       chan struct{}
}

func (b *blockingRunner) Run(ctx context.Context, req *executor.Request) (*executor.Result, error) {
	_, _ = io.WriteString(req.Output, b.before)
	close(b.started)
	select {
	case <-ctx.Done():
		return &executor.Result{ExitCode: 143, Output: []byte(b.before), Canceled: true}, nil
	case <-b.release:
	}
	_, _ = io.WriteString(req.Output, b.after)
	out := []byte(b.before + b.after)
	return &executor.Result{Output: out, Stdout: out}, nil
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 2*time.Millisecond, what)
}

// phases returns the phase events of a job, in order.
func phases(t *testing.T, r *relay.Relay, id string) []relaytype.PhasePayload {
	t.Helper()
	evs, err := r.Events(context.Background(), id, 0, 0)
	require.NoError(t, err)
	var out []relaytype.PhasePayload
	for _, ev := range evs {
		if ev.Type == relaytype.EventPhase {
			var p relaytype.PhasePayload
			require.NoError(t, json.Unmarshal(ev.Payload, &p))
			out = append(out, p)
		}
	}
	return out
}

// TestPipelineProgress runs a job through the real relay, SQLite store and
// Pipeline, with an executor that blocks mid-run, and watches its
// progress: phases, last lines, partial logs, from this relay's memory and
// from the store as another process sees it.
func TestPipelineProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, base := gitRepo(t)
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	run := &blockingRunner{
		before:  "compiling\n\n\x1b[32mok\x1b[0m  ./internal/relay\t0.4s\n" + strings.Repeat("x", 300) + "\nprogress 10%\rprogress 60%",
		after:   "\rprogress 100%\ndone\n",
		started: make(chan struct{}), release: make(chan struct{}),
	}
	arts := relay.ArtifactDir{Root: t.TempDir()}
	var r *relay.Relay
	p, err := relay.NewPipeline(relay.PipelineConfig{
		Workspaces: wm, Artifacts: arts, Executors: map[string]executor.Runner{"block": run}, Logger: quiet,
		LogSink: func(ctx context.Context, jobID string, chunk []byte) error { return r.AppendLog(ctx, jobID, chunk) },
	})
	require.NoError(t, err)
	b := setup(t, p, func(c *relay.Config) { c.Artifacts = arts })
	r = b.relay
	// other shares the store but runs nothing: it sees the job as a relay
	// in another process would.
	other, err := relay.New(relay.Config{Store: b.store, Handler: p, Artifacts: arts, Logger: quiet})
	require.NoError(t, err)
	changes, unsubscribe := r.Subscribe()
	defer unsubscribe()
	b.start(t)

	job, _, err := r.Submit(ctx, &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: repo},
		Task:           relaytype.Task{Title: "t", Description: "d"},
		Execution:      relaytype.Execution{Executor: "block"},
		IdempotencyKey: "progress",
	})
	require.NoError(t, err)
	require.Equal(t, base, job.BaselineCommit)
	pr, err := r.Progress(ctx, job.ID)
	require.NoError(t, err)
	if pr != nil {
		// Claimed already; whatever it shows, it is the first attempt.
		require.Equal(t, 1, pr.Attempt)
	}
	select {
	case <-run.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the executor did not start")
	}

	// The phases so far are stored, in order, and each was published.
	require.Equal(t, []relaytype.PhasePayload{
		{Phase: relaytype.PhasePreparing, Attempt: 1}, {Phase: relaytype.PhaseRunning, Attempt: 1},
	}, phases(t, r, job.ID))
	running := 0
	for drained := false; !drained; {
		select {
		case c := <-changes:
			if c.JobID == job.ID && c.State == relaytype.StateRunning {
				running++
			}
		default:
			drained = true
		}
	}
	require.GreaterOrEqual(t, running, 3, "RUNNING published at the claim and at each phase")

	// This relay knows the progress from memory at once.
	wantLines := []string{"compiling", "ok  ./internal/relay\t0.4s", strings.Repeat("x", 199) + "…", "progress 60%"}
	pr, err = r.Progress(ctx, job.ID)
	require.NoError(t, err)
	require.NotNil(t, pr)
	require.Equal(t, relaytype.PhaseRunning, pr.Phase)
	require.Equal(t, 1, pr.Attempt)
	require.Equal(t, wantLines, pr.LastLines)
	require.False(t, pr.PhaseSince.IsZero())
	require.GreaterOrEqual(t, pr.ElapsedS, 0.0)

	// Another process derives the same from the stored events, once the
	// live log has been flushed to them.
	var derived *relaytype.Progress
	eventually(t, "derived progress catches up", func() bool {
		derived, err = other.Progress(ctx, job.ID)
		require.NoError(t, err)
		return derived != nil && len(derived.LastLines) == len(wantLines)
	})
	require.Equal(t, relaytype.PhaseRunning, derived.Phase)
	require.Equal(t, 1, derived.Attempt)
	require.Equal(t, wantLines, derived.LastLines)
	require.WithinDuration(t, pr.PhaseSince, derived.PhaseSince, time.Millisecond)

	// logs.txt is not stored yet: its partial form is the output so far.
	_, _, err = r.ReadArtifact(ctx, job.ID, relaytype.ArtifactLogs)
	require.ErrorIs(t, err, relaytype.ErrArtifactNotFound)
	data, a, partial, err := r.ReadLogs(ctx, job.ID)
	require.NoError(t, err)
	require.True(t, partial)
	require.Equal(t, "[partial: job RUNNING, output so far]\n"+run.before, string(data))
	require.Equal(t, int64(len(data)), a.Size)
	require.Equal(t, relaytype.ArtifactLogs, a.Kind)

	// The executor finishes; the phase moves on and the job ends.
	close(run.release)
	final := waitState(t, r, job.ID, relaytype.StateSucceeded)
	require.Equal(t, []relaytype.PhasePayload{
		{Phase: relaytype.PhasePreparing, Attempt: 1}, {Phase: relaytype.PhaseRunning, Attempt: 1},
		{Phase: relaytype.PhaseCollecting, Attempt: 1},
	}, phases(t, r, job.ID))
	for _, rl := range []*relay.Relay{r, other} {
		pr, err = rl.Progress(ctx, final.ID)
		require.NoError(t, err)
		require.Nil(t, pr, "an ended job has no progress")
	}

	// Now logs.txt is the stored artifact, unchanged.
	stored, sa, err := r.ReadArtifact(ctx, job.ID, relaytype.ArtifactLogs)
	require.NoError(t, err)
	data, a, partial, err = r.ReadLogs(ctx, job.ID)
	require.NoError(t, err)
	require.False(t, partial)
	require.Equal(t, stored, data)
	require.Equal(t, run.before+run.after, string(data))
	require.Equal(t, sa, a)
	sum := sha256.Sum256(data)
	require.Equal(t, hex.EncodeToString(sum[:]), a.Digest)
}

// TestProgressLastLines checks what Progress makes of raw output: the
// last ProgressLines visible lines, and the unfinished one.
func TestProgressLastLines(t *testing.T) {
	t.Parallel()
	wrote := make(chan string, 1)
	release := make(chan struct{})
	var out bytes.Buffer
	h := &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		relay.ReportPhase(ctx, "thinking")
		relay.ReportPhase(ctx, "thinking") // already in it: not recorded again
		w := relay.ReportOutput(ctx, &out)
		for i := range 15 {
			fmt.Fprintf(w, "line %d\r\n", i)
		}
		// A character split across writes, blank and escape-only lines.
		_, _ = w.Write([]byte("caf\xc3"))
		_, _ = w.Write([]byte("\xa9\n   \n\x1b[2K\n\tindented  \nno newline yet"))
		wrote <- j.ID
		<-release
		return relay.Outcome{State: relaytype.StateSucceeded}
	}}
	b := setup(t, h, nil)
	b.start(t)
	j, _, err := b.relay.Submit(context.Background(), spec("lines", ""))
	require.NoError(t, err)
	require.Equal(t, j.ID, <-wrote)
	pr, err := b.relay.Progress(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, relaytype.Phase("thinking"), pr.Phase)
	require.Equal(t, []string{
		"line 8", "line 9", "line 10", "line 11", "line 12", "line 13", "line 14", "café", "\tindented", "no newline yet",
	}, pr.LastLines)
	require.Contains(t, out.String(), "line 0\r\n", "ReportOutput passes everything on")
	require.Equal(t, []relaytype.PhasePayload{{Phase: "thinking", Attempt: 1}}, phases(t, b.relay, j.ID))
	close(release)
	waitState(t, b.relay, j.ID, relaytype.StateSucceeded)

	// Logs of a job that never wrote any, once it ended: not found.
	_, _, _, err = b.relay.ReadLogs(context.Background(), j.ID)
	require.ErrorIs(t, err, relaytype.ErrArtifactNotFound)
}

// TestReportOutsideRelay checks that the reporting helpers do nothing
// when no relay runs the handler.
func TestReportOutsideRelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	relay.ReportPhase(ctx, relaytype.PhaseRunning) // no panic, no effect
	var buf bytes.Buffer
	require.Same(t, io.Writer(&buf), relay.ReportOutput(ctx, &buf))
	require.Nil(t, relay.ReportOutput(ctx, nil))
}

// TestProgressNotRunning checks that queued jobs have no progress and
// unknown jobs are errors.
func TestProgressNotRunning(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{HandleFunc: succeed}, nil)
	j, _, err := b.relay.Submit(context.Background(), spec("queued", ""))
	require.NoError(t, err)
	pr, err := b.relay.Progress(context.Background(), j.ID)
	require.NoError(t, err)
	require.Nil(t, pr)
	_, err = b.relay.Progress(context.Background(), relay.NewJobID())
	require.ErrorIs(t, err, relaytype.ErrJobNotFound)
	_, _, _, err = b.relay.ReadLogs(context.Background(), j.ID)
	require.ErrorIs(t, err, relaytype.ErrArtifactNotFound, "a queued job has no logs yet")
}

// TestDerivedProgressAttempts checks progress derived from the store for a
// job another process runs: it follows the events as they are added, and
// a new attempt starts it over, as it does the partial logs.
func TestDerivedProgressAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{HandleFunc: succeed}, nil) // never started
	ctx := context.Background()
	s := spec("elsewhere", "")
	s.ApplyDefaults()
	j, _, err := b.store.JobInsert(ctx, &store.JobInsertParams{ID: relay.NewJobID(), Spec: s, Executor: "test", Now: time.Now()})
	require.NoError(t, err)
	claim := func(attempt int) {
		t.Helper()
		claimed, err := b.store.JobClaim(ctx, &store.JobClaimParams{Owner: "elsewhere", Now: time.Now(), LeaseTTL: time.Minute, Limit: 1})
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.Equal(t, attempt, claimed[0].Attempt)
	}
	phase := func(p relaytype.Phase, attempt int) {
		t.Helper()
		payload, err := json.Marshal(relaytype.PhasePayload{Phase: p, Attempt: attempt})
		require.NoError(t, err)
		_, err = b.store.EventAppend(ctx, &store.EventAppendParams{JobID: j.ID, Type: relaytype.EventPhase, Payload: payload, Now: time.Now()})
		require.NoError(t, err)
	}
	progress := func() *relaytype.Progress {
		t.Helper()
		pr, err := b.relay.Progress(ctx, j.ID)
		require.NoError(t, err)
		require.NotNil(t, pr)
		require.GreaterOrEqual(t, pr.ElapsedS, 0.0)
		pr.ElapsedS = 0 // depends on the clock
		return pr
	}

	claim(1)
	require.Equal(t, &relaytype.Progress{Attempt: 1, LastLines: []string{}}, progress())
	phase(relaytype.PhaseRunning, 1)
	require.NoError(t, b.relay.AppendLog(ctx, j.ID, []byte("first try\nhalf")))
	pr := progress()
	require.Equal(t, relaytype.PhaseRunning, pr.Phase)
	require.Equal(t, []string{"first try", "half"}, pr.LastLines)
	require.NoError(t, b.relay.AppendLog(ctx, j.ID, []byte(" a line\n")))
	require.Equal(t, []string{"first try", "half a line"}, progress().LastLines, "read on from where it was")

	// The worker is lost; the job runs again.
	_, err = b.store.JobTransition(ctx, &store.JobTransitionParams{ID: j.ID, To: relaytype.StateStale, Now: time.Now()})
	require.NoError(t, err)
	pr, err = b.relay.Progress(ctx, j.ID)
	require.NoError(t, err)
	require.Nil(t, pr, "a stale job is not running")
	_, err = b.store.JobTransition(ctx, &store.JobTransitionParams{ID: j.ID, To: relaytype.StateQueued, Now: time.Now()})
	require.NoError(t, err)
	claim(2)
	require.Equal(t, &relaytype.Progress{Attempt: 2, LastLines: []string{}}, progress())
	phase(relaytype.PhasePreparing, 2)
	require.NoError(t, b.relay.AppendLog(ctx, j.ID, []byte("second try\n")))
	pr = progress()
	require.Equal(t, relaytype.PhasePreparing, pr.Phase)
	require.Equal(t, 2, pr.Attempt)
	require.Equal(t, []string{"second try"}, pr.LastLines)

	data, _, partial, err := b.relay.ReadLogs(ctx, j.ID)
	require.NoError(t, err)
	require.True(t, partial)
	require.Equal(t, "[partial: job RUNNING, output so far]\nsecond try\n", string(data))
}
