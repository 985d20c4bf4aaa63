package httpapi

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Paging of GET /jobs.
const (
	// DefaultJobsLimit is the page size of GET /jobs without ?limit=.
	DefaultJobsLimit = 20
	// MaxJobsLimit is the largest ?limit= GET /jobs accepts.
	MaxJobsLimit = 100
)

// HeaderContentSHA256 carries the lowercase hex SHA-256 digest of an
// artifact's bytes on GET /jobs/{jobId}/artifacts/{kind}.
const HeaderContentSHA256 = "X-Content-SHA256"

// JobList is the body of GET /jobs: one page of jobs, newest first, the
// number of jobs that match the filters, and whether more follow the page.
type JobList struct {
	Items   []*relaytype.Job `json:"items"`
	Total   int              `json:"total"`
	HasMore bool             `json:"hasMore"`
}

// JobDetail is the body of GET /jobs/{jobId}: the job and the metadata of
// its stored artifacts (kind, size, SHA-256 digest, MCP resource URI).
type JobDetail struct {
	Job       *relaytype.Job        `json:"job"`
	Artifacts []*relaytype.Artifact `json:"artifacts"`
}

// CancelResult is the body of POST /jobs/{jobId}/cancel.
type CancelResult struct {
	OK    bool               `json:"ok"`
	JobID string             `json:"jobId"`
	State relaytype.JobState `json:"state"`
}

// JobLog is the body of GET /jobs/{jobId}/log: the text of the job's "log"
// events after ?after= (the executor output streamed so far, across
// attempts), the job's state, and the id of the last event read. A client
// that then follows GET /jobs/{jobId}/events with Last-Event-ID set to
// LastEventID sees every later event exactly once, including the
// transition to a terminal state when State is not terminal yet.
type JobLog struct {
	JobID       string             `json:"jobId"`
	State       relaytype.JobState `json:"state"`
	Text        string             `json:"text"`
	LastEventID int64              `json:"lastEventId"`
}

// jobAccess authenticates r and requires a token that may read jobID: the
// operator's, or that job's own. On failure it has written the response
// and ok is false.
func (s *Server) jobAccess(w http.ResponseWriter, r *http.Request, jobID string) (ok bool) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return false
	}
	if !p.may(jobID) {
		writeError(w, forbidden("this token may only read job %s", p.jobID))
		return false
	}
	return true
}

// operatorFor authenticates r and requires the operator token for what
// (a description of the request, for the 403 message). On failure it has
// written the response and ok is false.
func (s *Server) operatorFor(w http.ResponseWriter, r *http.Request, what string) (ok bool) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return false
	}
	if !p.operator {
		writeError(w, forbidden("%s needs the operator token; a job token may only read its own job", what))
		return false
	}
	return true
}

// parseState reads a job state query parameter (any case); empty means
// any state.
func parseState(field, v string) (relaytype.JobState, *apiError) {
	st := relaytype.JobState(strings.ToUpper(strings.TrimSpace(v)))
	if st == "" || st.Valid() {
		return st, nil
	}
	names := make([]string, len(relaytype.AllStates))
	for i, s := range relaytype.AllStates {
		names[i] = string(s)
	}
	return "", badRequest(field, "must be one of %s, not %q", strings.Join(names, ", "), v)
}

// parseInt reads an integer query parameter in [lo, hi], or def when it
// is absent.
func parseInt(field, v string, def, lo, hi int) (int, *apiError) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt {
			return 0, badRequest(field, "must be an integer of at least %d, not %q", lo, v)
		}
		return 0, badRequest(field, "must be an integer from %d to %d, not %q", lo, hi, v)
	}
	return n, nil
}

// listJobs is GET /jobs?state=&project=&limit=&offset= (operator only):
// a JobList, newest first. state is a job state (any case); project keeps
// only the jobs of that project (the absolute path of its config
// directory) when not empty; limit is 1 to 100 (default 20); offset
// skips that many jobs. A bad value is 400 INVALID_REQUEST naming the
// parameter.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	if !s.operatorFor(w, r, "listing jobs") {
		return
	}
	q := r.URL.Query()
	state, e := parseState("state", q.Get("state"))
	if e != nil {
		writeError(w, e)
		return
	}
	limit, e := parseInt("limit", q.Get("limit"), DefaultJobsLimit, 1, MaxJobsLimit)
	if e != nil {
		writeError(w, e)
		return
	}
	offset, e := parseInt("offset", q.Get("offset"), 0, 0, math.MaxInt)
	if e != nil {
		writeError(w, e)
		return
	}
	p := relay.ListParams{State: state, Limit: limit, Offset: offset}
	if project := q.Get("project"); project != "" {
		p.Project = &project
	}
	items, total, err := s.cfg.Jobs.ListJobs(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if items == nil {
		items = []*relaytype.Job{}
	}
	writeJSON(w, http.StatusOK, JobList{Items: items, Total: total, HasMore: offset+len(items) < total})
}

// getJob is GET /jobs/{jobId} (the operator, or the job's own token): a
// JobDetail, {"job": Job, "artifacts": [Artifact]}, with an empty list
// while the job has stored no artifact. An unknown job is 404
// JOB_NOT_FOUND.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	jobID := r.PathValue("jobId")
	if !s.jobAccess(w, r, jobID) {
		return
	}
	job, err := s.cfg.Jobs.Get(r.Context(), jobID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	arts, err := s.cfg.Jobs.Artifacts(r.Context(), jobID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if arts == nil {
		arts = []*relaytype.Artifact{}
	}
	writeJSON(w, http.StatusOK, JobDetail{Job: job, Artifacts: arts})
}

// artifactType is the Content-Type an artifact kind is served with.
func artifactType(kind relaytype.ArtifactKind) string {
	switch kind {
	case relaytype.ArtifactPatch, relaytype.ArtifactIncremental:
		return "text/x-diff; charset=utf-8"
	case relaytype.ArtifactOut:
		return "text/markdown; charset=utf-8"
	case relaytype.ArtifactPR:
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// getArtifact is GET /jobs/{jobId}/artifacts/{kind} (the operator, or
// the job's own token): the artifact's bytes, checked against the stored
// digest, with the Content-Type of its kind (text/x-diff for the diffs,
// text/markdown for out.md, text/plain for logs.txt, application/json for
// pr.json) and the digest in X-Content-SHA256. A kind that is not one of
// relaytype.ArtifactKinds, or one the job has not stored, is 404
// ARTIFACT_NOT_FOUND; an unknown job is 404 JOB_NOT_FOUND.
func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	jobID := r.PathValue("jobId")
	if !s.jobAccess(w, r, jobID) {
		return
	}
	kind := relaytype.ArtifactKind(r.PathValue("kind"))
	if !kind.Valid() {
		names := make([]string, len(relaytype.ArtifactKinds))
		for i, k := range relaytype.ArtifactKinds {
			names[i] = string(k)
		}
		writeError(w, &apiError{Status: http.StatusNotFound, Code: relaytype.CodeArtifactNotFound, Field: "kind",
			Message: "kind: unknown artifact kind " + strconv.Quote(string(kind)) + " (one of " + strings.Join(names, ", ") + ")"})
		return
	}
	data, a, err := s.cfg.Jobs.ReadArtifact(r.Context(), jobID, kind)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", artifactType(kind))
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set(HeaderContentSHA256, a.Digest)
	h.Set("ETag", `"sha256:`+a.Digest+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// cancelJob is POST /jobs/{jobId}/cancel (operator only): it cancels the
// job (a running executor is killed first) and answers a CancelResult,
// {"ok": true, "jobId": …, "state": "CANCELED"}. A job that has already
// ended is 409 ILLEGAL_TRANSITION; an unknown job is 404 JOB_NOT_FOUND.
// The request body is ignored.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	if !s.operatorFor(w, r, "canceling a job") {
		return
	}
	job, err := s.cfg.Jobs.Cancel(r.Context(), r.PathValue("jobId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CancelResult{OK: true, JobID: job.ID, State: job.State})
}

// getJobLog is GET /jobs/{jobId}/log?after= (the operator, or the job's
// own token): a JobLog with the text of the job's "log" events after the
// event id ?after= (default 0, from the start).
func (s *Server) getJobLog(w http.ResponseWriter, r *http.Request) {
	jobID := r.PathValue("jobId")
	if !s.jobAccess(w, r, jobID) {
		return
	}
	after := int64(0)
	if v := strings.TrimSpace(r.URL.Query().Get("after")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, badRequest("after", "must be an event id (a non-negative integer), not %q", v))
			return
		}
		after = n
	}
	ctx := r.Context()
	// Events first, then the state: a state read as not terminal means
	// the terminal transition comes after every event read, so a client
	// resuming the stream after LastEventID cannot miss it.
	var text strings.Builder
	last := after
	for {
		evs, err := s.cfg.Jobs.Events(ctx, jobID, last, replayPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, ev := range evs {
			last = max(last, ev.ID)
			if ev.Type != relaytype.EventLog {
				continue
			}
			var p struct {
				Text string `json:"text"`
			}
			if json.Unmarshal(ev.Payload, &p) == nil {
				text.WriteString(p.Text)
			}
		}
		if len(evs) < replayPage {
			break
		}
	}
	job, err := s.cfg.Jobs.Get(ctx, jobID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, JobLog{JobID: job.ID, State: job.State, Text: text.String(), LastEventID: last})
}

// listAllAsks is GET /asks?status=&jobId= (operator only): {"items":
// [AskRecord]}, oldest first, of every job or of jobId, in any status or
// in status (PENDING, ANSWERED, REJECTED, TIMEOUT or ERROR, any case). A
// bad status is 400 naming "status"; an unknown jobId is 404
// JOB_NOT_FOUND.
func (s *Server) listAllAsks(w http.ResponseWriter, r *http.Request) {
	if !s.operatorFor(w, r, "listing asks") {
		return
	}
	q := r.URL.Query()
	s.writeAsks(w, r, strings.TrimSpace(q.Get("jobId")), q.Get("status"))
}
