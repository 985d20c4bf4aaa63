package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// The real relay serves progress and live logs.
var (
	_ ProgressReader = (*relay.Relay)(nil)
	_ LogsReader     = (*relay.Relay)(nil)
)

// progressHandler runs each job as the pipeline does, as far as progress
// goes: it reports phases, writes output (stored as log events as it is
// written), tells started, waits for release, and stores the output as
// logs.txt.
type progressHandler struct {
	r       *relay.Relay
	arts    relay.ArtifactDir
	output  string
	started chan string
	release chan struct{}
}

func (h *progressHandler) Admit(context.Context, *relaytype.JobSpec) (string, string, error) {
	return "test", strings.Repeat("a", 40), nil
}

func (h *progressHandler) Handle(ctx context.Context, job *relaytype.Job) relay.Outcome {
	relay.ReportPhase(ctx, relaytype.PhasePreparing)
	relay.ReportPhase(ctx, relaytype.PhaseRunning)
	w := relay.ReportOutput(ctx, &logWriter{ctx: ctx, r: h.r, jobID: job.ID})
	_, _ = io.WriteString(w, h.output)
	h.started <- job.ID
	select {
	case <-ctx.Done():
		return relay.Outcome{}
	case <-h.release:
	}
	relay.ReportPhase(ctx, relaytype.PhaseCollecting)
	a, err := h.arts.Write(job.ID, relaytype.ArtifactLogs, []byte(h.output), time.Now())
	if err != nil {
		return relay.Outcome{State: relaytype.StateFailed, Reason: relaytype.ReasonInternalError, Summary: err.Error()}
	}
	return relay.Outcome{State: relaytype.StateSucceeded, Summary: "done", Artifacts: []*relaytype.Artifact{a}}
}

// logWriter stores what is written as log events of a job, at once.
type logWriter struct {
	ctx   context.Context
	r     *relay.Relay
	jobID string
}

func (w *logWriter) Write(p []byte) (int, error) {
	if err := w.r.AppendLog(w.ctx, w.jobID, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// TestRunningJobProgress watches a running job over MCP, on the real
// relay and SQLite store: jobs_get, the status resource and jobs_wait's
// progress notifications show its phase and last output, and logs.txt is
// the output so far until the job ends, then the stored artifact.
func TestRunningJobProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	arts := relay.ArtifactDir{Root: t.TempDir()}
	h := &progressHandler{
		arts:    arts,
		output:  "building\n\ngo vet ./...\ngo test ./... ok\n",
		started: make(chan string, 1), release: make(chan struct{}),
	}
	r, err := relay.New(relay.Config{Store: st, Handler: h, Artifacts: arts, Logger: quiet})
	require.NoError(t, err)
	h.r = r
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)
	srv, err := New(Config{Jobs: r, Logger: quiet, Version: "test"})
	require.NoError(t, err)
	srv.progressEvery = testProgressEvery
	b := setupWith(t, nil, srv, "")

	id := b.submit(t, "progress").JobID
	select {
	case got := <-h.started:
		require.Equal(t, id, got)
	case <-time.After(waitTimeout):
		t.Fatal("the job did not start")
	}
	logsURI := relaytype.ArtifactURI(id, relaytype.ArtifactLogs)
	wantLines := []string{"building", "go vet ./...", "go test ./... ok"}

	// jobs_get and the status resource show the progress.
	var got jobStatus
	b.ok(t, "jobs_get", map[string]any{"jobId": id}, &got)
	require.Equal(t, relaytype.StateRunning, got.State)
	require.NotNil(t, got.Progress)
	require.Equal(t, relaytype.PhaseRunning, got.Progress.Phase)
	require.Equal(t, wantLines, got.Progress.LastLines)
	require.Equal(t, 1, got.Progress.Attempt)
	require.Equal(t, logsURI, got.Progress.LogsURI)
	require.NotEmpty(t, got.Progress.PhaseSince)
	require.Empty(t, got.Artifacts)
	c := b.read(t, statusURI(id))
	requireValid(t, b.outputSchema(t, "jobs_get"), c.Text)
	var fromResource jobStatus
	require.NoError(t, json.Unmarshal([]byte(c.Text), &fromResource))
	require.NotNil(t, fromResource.Progress)
	require.Equal(t, relaytype.PhaseRunning, fromResource.Progress.Phase)
	require.Equal(t, wantLines, fromResource.Progress.LastLines)

	// logs.txt is the output so far, marked partial.
	c = b.read(t, logsURI)
	require.Equal(t, "[partial: job RUNNING, output so far]\n"+h.output, c.Text)
	require.Equal(t, "text/plain", c.MIMEType)
	require.Equal(t, true, c.Meta["partial"])
	require.NotContains(t, c.Meta, "digest")

	// jobs_wait's progress notifications carry the phase and last line.
	done := b.start(ctx, "jobs_wait", map[string]any{"jobId": id, "timeoutS": 20}, "tok-progress")
	msg := regexp.MustCompile(`^RUNNING · running · \d+s · last: go test \./\.\.\. ok$`)
	select {
	case p := <-b.progress:
		require.Equal(t, "tok-progress", p.ProgressToken)
		require.Regexp(t, msg, p.Message)
	case <-time.After(waitTimeout):
		t.Fatal("no notifications/progress")
	}

	// The job ends: no progress, and logs.txt is the stored artifact.
	close(h.release)
	var waited waitResult
	b.await(t, "jobs_wait", done, &waited)
	require.True(t, waited.Changed)
	require.Equal(t, relaytype.StateSucceeded, waited.State)
	require.Nil(t, waited.Progress)
	var ended jobStatus
	b.ok(t, "jobs_get", map[string]any{"jobId": id}, &ended)
	require.Nil(t, ended.Progress)
	require.Len(t, ended.Artifacts, 1)
	c = b.read(t, logsURI)
	require.Equal(t, h.output, c.Text)
	sum := sha256.Sum256([]byte(c.Text))
	require.Equal(t, hex.EncodeToString(sum[:]), ended.Artifacts[0].Digest)
	require.Equal(t, ended.Artifacts[0].Digest, c.Meta["digest"])
	require.NotContains(t, c.Meta, "partial")

	evs, err := r.Events(ctx, id, 0, 0)
	require.NoError(t, err)
	var phases []relaytype.Phase
	for _, ev := range evs {
		if ev.Type == relaytype.EventPhase {
			var p relaytype.PhasePayload
			require.NoError(t, json.Unmarshal(ev.Payload, &p))
			phases = append(phases, p.Phase)
		}
	}
	require.Equal(t, []relaytype.Phase{relaytype.PhasePreparing, relaytype.PhaseRunning, relaytype.PhaseCollecting}, phases)
}

func TestProgressMessage(t *testing.T) {
	t.Parallel()
	running := &relaytype.Job{State: relaytype.StateRunning}
	for _, tc := range []struct {
		job  *relaytype.Job
		p    *relaytype.Progress
		want string
	}{
		{&relaytype.Job{State: relaytype.StateQueued}, nil, "QUEUED"},
		{running, &relaytype.Progress{ElapsedS: 0.2, LastLines: []string{}}, "RUNNING · 0s"},
		{running, &relaytype.Progress{Phase: relaytype.PhaseRunning, ElapsedS: 134.4, LastLines: []string{"a", "  go test ./... ok  "}},
			"RUNNING · running · 2m14s · last: go test ./... ok"},
		{&relaytype.Job{State: relaytype.StateWaitingOnAnswer}, &relaytype.Progress{Phase: relaytype.PhaseCollecting, ElapsedS: 3600,
			LastLines: []string{strings.Repeat("é", 300)}},
			"WAITING_ON_ANSWER · collecting artifacts · 1h0m0s · last: " + strings.Repeat("é", progressMessageLine-1) + "…"},
	} {
		require.Equal(t, tc.want, progressMessage(tc.job, tc.p))
	}
}
