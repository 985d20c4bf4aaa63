package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// submitTo queues a job of project.
func (b *bundle) submitTo(t *testing.T, project, title string) *relaytype.Job {
	t.Helper()
	j, created, err := b.relay.SubmitTo(context.Background(), project, &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: t.TempDir()},
		Task:           relaytype.Task{Title: title, Description: "d"},
		IdempotencyKey: uuid.NewString(),
	})
	require.NoError(t, err)
	require.True(t, created)
	return j
}

// finish ends a running job with the given artifacts stored.
func (b *bundle) finish(t *testing.T, id string, arts map[relaytype.ArtifactKind]string) *relaytype.Job {
	t.Helper()
	out := relay.Outcome{State: relaytype.StateSucceeded, Summary: "done"}
	for kind, data := range arts {
		a, err := b.arts.Write(id, kind, []byte(data), time.Now())
		require.NoError(t, err)
		out.Artifacts = append(out.Artifacts, a)
	}
	b.handler.ch(id) <- out
	return b.waitState(t, id, relaytype.StateSucceeded)
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestListJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, relayStopped())
	op := b.operator()
	var a []*relaytype.Job
	for i := range 3 {
		a = append(a, b.submitTo(t, "/p/a", "a"+strconv.Itoa(i)))
	}
	for i := range 2 {
		b.submitTo(t, "/p/b", "b"+strconv.Itoa(i))
	}
	_, err := b.relay.Cancel(context.Background(), a[1].ID)
	require.NoError(t, err)

	list := func(query string) httpapi.JobList {
		t.Helper()
		r := b.do(t, http.MethodGet, "/jobs"+query, op, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		var l httpapi.JobList
		r.decode(t, &l)
		return l
	}
	all := list("")
	require.Equal(t, 5, all.Total)
	require.False(t, all.HasMore)
	require.Len(t, all.Items, 5)
	require.Equal(t, "b1", all.Items[0].Spec.Task.Title, "newest first")

	pa := list("?project=" + url.QueryEscape("/p/a"))
	require.Equal(t, 3, pa.Total)
	for _, j := range pa.Items {
		require.Equal(t, "/p/a", j.Project)
	}
	require.Equal(t, 0, list("?project=/nowhere").Total)
	require.NotNil(t, list("?project=/nowhere").Items, "an empty page is [], not null")

	canceled := list("?state=canceled")
	require.Equal(t, 1, canceled.Total)
	require.Equal(t, a[1].ID, canceled.Items[0].ID)
	require.Equal(t, 2, list("?state=QUEUED&project=/p/a").Total)

	page := list("?limit=2")
	require.Len(t, page.Items, 2)
	require.Equal(t, 5, page.Total)
	require.True(t, page.HasMore)
	page = list("?limit=2&offset=4")
	require.Len(t, page.Items, 1)
	require.False(t, page.HasMore)
	require.Len(t, list("?limit=100").Items, 5)

	for query, field := range map[string]string{
		"?state=DONE": "state", "?limit=0": "limit", "?limit=101": "limit", "?limit=ten": "limit",
		"?offset=-1": "offset", "?offset=x": "offset",
	} {
		e := b.do(t, http.MethodGet, "/jobs"+query, op, nil).requireError(t, 400, relaytype.CodeInvalidRequest, field)
		require.Contains(t, e.Message, field+":", query)
	}

	b.do(t, http.MethodGet, "/jobs", b.tokens.Mint(a[0].ID), nil).requireError(t, 403, relaytype.CodeForbidden, "")
	b.do(t, http.MethodGet, "/jobs", "", nil).requireError(t, 401, relaytype.CodeUnauthorized, "")
}

func TestGetJobAndArtifacts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()
	job := b.running(t)
	other := b.running(t)

	// Running, nothing stored yet: an empty list.
	r := b.do(t, http.MethodGet, "/jobs/"+job.ID, op, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var raw map[string]json.RawMessage
	r.decode(t, &raw)
	require.JSONEq(t, `[]`, string(raw["artifacts"]))
	b.do(t, http.MethodGet, "/jobs/"+job.ID+"/artifacts/patch.diff", op, nil).
		requireError(t, 404, relaytype.CodeArtifactNotFound, "")

	files := map[relaytype.ArtifactKind]string{
		relaytype.ArtifactPatch: "diff --git a/f b/f\n",
		relaytype.ArtifactOut:   "### NOTES\n\ndone\n",
		relaytype.ArtifactLogs:  "working\n",
	}
	b.finish(t, job.ID, files)

	r = b.do(t, http.MethodGet, "/jobs/"+job.ID, op, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var d httpapi.JobDetail
	r.decode(t, &d)
	require.Equal(t, job.ID, d.Job.ID)
	require.Equal(t, relaytype.StateSucceeded, d.Job.State)
	require.Len(t, d.Artifacts, 3)
	for _, a := range d.Artifacts {
		require.Equal(t, sha(files[a.Kind]), a.Digest, a.Kind)
		require.Equal(t, int64(len(files[a.Kind])), a.Size, a.Kind)
	}

	for kind, ct := range map[relaytype.ArtifactKind]string{
		relaytype.ArtifactPatch: "text/x-diff; charset=utf-8",
		relaytype.ArtifactOut:   "text/markdown; charset=utf-8",
		relaytype.ArtifactLogs:  "text/plain; charset=utf-8",
	} {
		r := b.do(t, http.MethodGet, "/jobs/"+job.ID+"/artifacts/"+string(kind), op, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, files[kind], string(r.body))
		require.Equal(t, ct, r.header.Get("Content-Type"))
		require.Equal(t, sha(files[kind]), r.header.Get(httpapi.HeaderContentSHA256))
	}
	b.do(t, http.MethodGet, "/jobs/"+job.ID+"/artifacts/pr.json", op, nil).
		requireError(t, 404, relaytype.CodeArtifactNotFound, "")
	e := b.do(t, http.MethodGet, "/jobs/"+job.ID+"/artifacts/secrets.txt", op, nil).
		requireError(t, 404, relaytype.CodeArtifactNotFound, "kind")
	require.Contains(t, e.Message, "patch.diff")
	b.do(t, http.MethodGet, "/jobs/job_NOPE", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")
	b.do(t, http.MethodGet, "/jobs/job_NOPE/artifacts/patch.diff", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")

	// A job token reads its own job, and nothing of another's.
	own := b.tokens.Mint(job.ID)
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/jobs/"+job.ID, own, nil).status)
	r = b.do(t, http.MethodGet, "/jobs/"+job.ID+"/artifacts/patch.diff", own, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, files[relaytype.ArtifactPatch], string(r.body))
	foreign := b.tokens.Mint(other.ID)
	b.do(t, http.MethodGet, "/jobs/"+job.ID, foreign, nil).requireError(t, 403, relaytype.CodeForbidden, "")
	b.do(t, http.MethodGet, "/jobs/"+job.ID+"/artifacts/patch.diff", foreign, nil).requireError(t, 403, relaytype.CodeForbidden, "")
	b.do(t, http.MethodGet, "/jobs/"+job.ID, "", nil).requireError(t, 401, relaytype.CodeUnauthorized, "")
}

func TestCancelJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()
	job := b.running(t)

	b.do(t, http.MethodPost, "/jobs/"+job.ID+"/cancel", b.tokens.Mint(job.ID), nil).
		requireError(t, 403, relaytype.CodeForbidden, "")
	require.Equal(t, relaytype.StateRunning, b.state(t, job.ID).State)

	r := b.do(t, http.MethodPost, "/jobs/"+job.ID+"/cancel", op, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"ok":true,"jobId":"`+job.ID+`","state":"CANCELED"}`, string(r.body))
	require.Equal(t, relaytype.StateCanceled, b.state(t, job.ID).State)

	b.do(t, http.MethodPost, "/jobs/"+job.ID+"/cancel", op, nil).requireError(t, 409, relaytype.CodeIllegalTransition, "")
	b.do(t, http.MethodPost, "/jobs/job_NOPE/cancel", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")
	r = b.do(t, http.MethodGet, "/jobs/"+job.ID+"/cancel", op, nil)
	r.requireError(t, 405, relaytype.CodeMethodNotAllowed, "")
	require.Equal(t, "POST", r.header.Get("Allow"))
}

func TestListAllAsks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()
	j1, j2 := b.running(t), b.running(t)
	a1, a2 := newAsk(t, j1.ID), newAsk(t, j2.ID)
	b.postAsk(t, b.tokens.Mint(j1.ID), a1)
	b.postAsk(t, b.tokens.Mint(j2.ID), a2)
	b.postAnswer(t, answered(a1.AskID))

	list := func(query string) []*relaytype.AskRecord {
		t.Helper()
		r := b.do(t, http.MethodGet, "/asks"+query, op, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var l struct {
			Items []*relaytype.AskRecord `json:"items"`
		}
		r.decode(t, &l)
		require.NotNil(t, l.Items)
		return l.Items
	}
	require.Len(t, list(""), 2)
	pending := list("?status=pending")
	require.Len(t, pending, 1)
	require.Equal(t, a2.AskID, pending[0].AskID)
	require.Len(t, list("?status=ANSWERED&jobId="+j1.ID), 1)
	require.Empty(t, list("?status=PENDING&jobId="+j1.ID))
	byJob := list("?jobId=" + j2.ID)
	require.Len(t, byJob, 1)
	require.Equal(t, j2.ID, byJob[0].JobID)

	b.do(t, http.MethodGet, "/asks?status=maybe", op, nil).requireError(t, 400, relaytype.CodeInvalidRequest, "status")
	b.do(t, http.MethodGet, "/asks?jobId=job_NOPE", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")
	b.do(t, http.MethodGet, "/asks", b.tokens.Mint(j1.ID), nil).requireError(t, 403, relaytype.CodeForbidden, "")
}

func TestJobLogThenFollow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()
	job := b.running(t)
	ctx := context.Background()
	require.NoError(t, b.relay.AppendLog(ctx, job.ID, []byte("hello ")))
	require.NoError(t, b.relay.AppendLog(ctx, job.ID, []byte("world\n")))

	get := func(query, token string) httpapi.JobLog {
		t.Helper()
		r := b.do(t, http.MethodGet, "/jobs/"+job.ID+"/log"+query, token, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var l httpapi.JobLog
		r.decode(t, &l)
		return l
	}
	l := get("", op)
	require.Equal(t, "hello world\n", l.Text)
	require.Equal(t, relaytype.StateRunning, l.State)
	require.Positive(t, l.LastEventID)
	require.Equal(t, l, get("", b.tokens.Mint(job.ID)), "the job's own token reads it")
	rest := get("?after="+strconv.FormatInt(l.LastEventID, 10), op)
	require.Empty(t, rest.Text)
	require.Equal(t, l.LastEventID, rest.LastEventID)

	// Resuming the stream after LastEventID gives the later events only.
	require.NoError(t, b.relay.AppendLog(ctx, job.ID, []byte("more\n")))
	b.finish(t, job.ID, nil)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, events := b.openSSE(t, sctx, job.ID, op, map[string]string{"Last-Event-ID": strconv.FormatInt(l.LastEventID, 10)})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "connected", nextEvent(t, events).event)
	ev := nextEvent(t, events)
	require.Equal(t, "log", ev.event)
	require.Contains(t, ev.data, `more\n`)
	ev = nextEvent(t, events)
	require.Equal(t, "status", ev.event)
	require.Contains(t, ev.data, `"to":"SUCCEEDED"`)

	b.do(t, http.MethodGet, "/jobs/"+job.ID+"/log?after=-1", op, nil).requireError(t, 400, relaytype.CodeInvalidRequest, "after")
	b.do(t, http.MethodGet, "/jobs/job_NOPE/log", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")
	other := b.running(t)
	b.do(t, http.MethodGet, "/jobs/"+job.ID+"/log", b.tokens.Mint(other.ID), nil).requireError(t, 403, relaytype.CodeForbidden, "")
}
