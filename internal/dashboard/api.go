package dashboard

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// maxBody caps the JSON bodies the dashboard reads.
const maxBody = 1 << 20

// maxDiffBytes caps the patch shown on a job page.
const maxDiffBytes = 2 << 20

// logTail is how many bytes of executor output a job page starts with.
const logTail = 64 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiErr is the error body of the /ui/ endpoints, in the shape of the
// HTTP API's errors.
type apiErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]apiErr{"error": {Code: code, Message: msg}})
}

// fail answers err with the status its kind calls for.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		spec *relaytype.SpecError
		req  *relaytype.RequestError
		tr   *relaytype.TransitionError
		over *store.AttemptOverError
	)
	switch {
	case errors.Is(err, relaytype.ErrJobNotFound), errors.Is(err, relaytype.ErrAskNotFound), errors.Is(err, relaytype.ErrArtifactNotFound):
		writeErr(w, http.StatusNotFound, "NOT_FOUND", err.Error())
	case errors.As(err, &spec), errors.As(err, &req):
		writeErr(w, http.StatusBadRequest, "INVALID_REQUEST", err.Error())
	case errors.As(err, &tr), errors.As(err, &over), errors.Is(err, relaytype.ErrIllegalTransition),
		errors.Is(err, relaytype.ErrAnswerConflict), errors.Is(err, relaytype.ErrJobNotActive):
		writeErr(w, http.StatusConflict, "CONFLICT", err.Error())
	default:
		d.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeErr(w, http.StatusInternalServerError, "INTERNAL", err.Error())
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "INVALID_REQUEST", "body: "+err.Error())
		return false
	}
	return true
}

// SessionInfo is the body of GET /ui/session.
type SessionInfo struct {
	// CSRF is the token state-changing requests of this session send in
	// X-CSRF-Token; empty for the operator token.
	CSRF string `json:"csrf"`
}

func (d *Dashboard) sessionInfo(w http.ResponseWriter, _ *http.Request, c caller) {
	writeJSON(w, http.StatusOK, SessionInfo{CSRF: c.csrf})
}

// JobRow is one job in the list.
type JobRow struct {
	ID          string             `json:"id"`
	Title       string             `json:"title"`
	State       relaytype.JobState `json:"state"`
	Executor    string             `json:"executor"`
	Project     string             `json:"project"`
	ProjectName string             `json:"projectName"`
	Attempt     int                `json:"attempt"`
	MaxAttempts int                `json:"maxAttempts"`
	CreatedAt   time.Time          `json:"createdAt"`
	UpdatedAt   time.Time          `json:"updatedAt"`
	Summary     string             `json:"summary,omitempty"`
	Usage       relaytype.Usage    `json:"usage"`
}

// JobList is the body of GET /ui/jobs.
type JobList struct {
	Items []JobRow `json:"items"`
	// Projects, Executors and States are the values the filters offer.
	Projects  []string `json:"projects"`
	Executors []string `json:"executors"`
	States    []string `json:"states"`
}

func rowOf(j *relaytype.Job) JobRow {
	return JobRow{ID: j.ID, Title: j.Spec.Task.Title, State: j.State, Executor: j.Executor, Project: j.Project,
		ProjectName: projectName(j.Project), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, CreatedAt: j.CreatedAt,
		UpdatedAt: j.UpdatedAt, Summary: j.Summary, Usage: j.Usage}
}

// projectName names a project by its config dir: the repository folder
// that holds .mcp-task-relay, else the dir itself.
func projectName(dir string) string {
	if dir == "" {
		return ""
	}
	if base := filepath.Base(dir); base == ".mcp-task-relay" || base == "config" {
		return filepath.Base(filepath.Dir(dir))
	}
	return filepath.Base(dir)
}

// listJobs is GET /ui/jobs?project=&state=&executor=&limit=.
func (d *Dashboard) listJobs(w http.ResponseWriter, r *http.Request, _ caller) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 200
	}
	jobs, _, err := d.cfg.Jobs.ListJobs(r.Context(), relay.ListParams{})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	out := JobList{Items: []JobRow{}, Projects: []string{}, Executors: []string{}, States: []string{}}
	for _, s := range relaytype.AllStates {
		out.States = append(out.States, string(s))
	}
	for _, j := range jobs {
		if j.Project != "" && !slices.Contains(out.Projects, j.Project) {
			out.Projects = append(out.Projects, j.Project)
		}
		if j.Executor != "" && !slices.Contains(out.Executors, j.Executor) {
			out.Executors = append(out.Executors, j.Executor)
		}
		if (q.Get("project") != "" && j.Project != q.Get("project")) ||
			(q.Get("state") != "" && string(j.State) != q.Get("state")) ||
			(q.Get("executor") != "" && j.Executor != q.Get("executor")) || len(out.Items) >= limit {
			continue
		}
		out.Items = append(out.Items, rowOf(j))
	}
	sort.Strings(out.Projects)
	sort.Strings(out.Executors)
	writeJSON(w, http.StatusOK, out)
}

// EventRow is one entry of a job's timeline.
type EventRow struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"ts"`
	Type string    `json:"type"`
	// Text says what happened, in words.
	Text string `json:"text"`
}

// AttemptRow is one attempt of a job, as its transitions tell it.
type AttemptRow struct {
	N         int                `json:"n"`
	StartedAt time.Time          `json:"startedAt"`
	EndedAt   *time.Time         `json:"endedAt,omitempty"`
	Outcome   relaytype.JobState `json:"outcome,omitempty"`
	Reason    string             `json:"reason,omitempty"`
}

// JobPage is the body of GET /ui/jobs/{jobId}.
type JobPage struct {
	Job       JobRow                 `json:"job"`
	Spec      relaytype.JobSpec      `json:"spec"`
	ParentID  string                 `json:"parentJobId,omitempty"`
	Events    []EventRow             `json:"events"`
	Attempts  []AttemptRow           `json:"attempts"`
	Artifacts []*relaytype.Artifact  `json:"artifacts"`
	Asks      []*relaytype.AskRecord `json:"asks"`
	// Diff is the patch, parsed; nil when the job has none.
	Diff *Diff `json:"diff,omitempty"`
	// OutHTML is out.md rendered as HTML (everything of the file
	// escaped); empty when there is none.
	OutHTML string `json:"outHtml,omitempty"`
	// Log is the tail of the executor's output, and LogAfter the event
	// id to read more after.
	Log      string `json:"log"`
	LogAfter int64  `json:"logAfter"`
	// ApplyCommand applies the patch to a checkout.
	ApplyCommand string `json:"applyCommand,omitempty"`
}

// getJob is GET /ui/jobs/{jobId}.
func (d *Dashboard) getJob(w http.ResponseWriter, r *http.Request, _ caller) {
	ctx := r.Context()
	j, err := d.cfg.Jobs.Get(ctx, r.PathValue("jobId"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	events, err := d.cfg.Jobs.Events(ctx, j.ID, 0, 0)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	arts, err := d.cfg.Jobs.Artifacts(ctx, j.ID)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	asks, err := d.cfg.Asks.List(ctx, j.ID, "")
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := JobPage{Job: rowOf(j), Spec: j.Spec, ParentID: j.ParentJobID, Events: []EventRow{}, Attempts: []AttemptRow{},
		Artifacts: arts, Asks: asks}
	if page.Artifacts == nil {
		page.Artifacts = []*relaytype.Artifact{}
	}
	if page.Asks == nil {
		page.Asks = []*relaytype.AskRecord{}
	}
	var log bytes.Buffer
	for _, e := range events {
		if e.Type == relaytype.EventLog {
			var p struct {
				Text string `json:"text"`
			}
			_ = json.Unmarshal(e.Payload, &p)
			log.WriteString(p.Text)
			page.LogAfter = e.ID
			continue
		}
		page.Events = append(page.Events, EventRow{ID: e.ID, Time: e.Time, Type: e.Type, Text: describe(e)})
		if e.Type == relaytype.EventTransition {
			var p relaytype.TransitionPayload
			if json.Unmarshal(e.Payload, &p) == nil {
				page.Attempts = attempts(page.Attempts, e.Time, p)
			}
		}
	}
	page.Log = tailOf(log.String(), logTail)
	for _, a := range arts {
		switch a.Kind {
		case relaytype.ArtifactPatch:
			if b, _, err := d.cfg.Jobs.ReadArtifact(ctx, j.ID, a.Kind); err == nil {
				page.Diff = ParseDiff(b, maxDiffBytes)
			}
		case relaytype.ArtifactOut:
			if b, _, err := d.cfg.Jobs.ReadArtifact(ctx, j.ID, a.Kind); err == nil {
				page.OutHTML = RenderMarkdown(string(b))
			}
		}
	}
	if page.Diff != nil && len(page.Diff.Files) > 0 {
		page.ApplyCommand = applyCommand(j)
	}
	writeJSON(w, http.StatusOK, page)
}

// attempts folds one transition into the attempt rows.
func attempts(rows []AttemptRow, at time.Time, p relaytype.TransitionPayload) []AttemptRow {
	if p.To == relaytype.StateRunning && (p.From == relaytype.StateQueued || p.From == relaytype.StateStale) {
		return append(rows, AttemptRow{N: p.Attempt, StartedAt: at})
	}
	if len(rows) == 0 {
		return rows
	}
	last := &rows[len(rows)-1]
	if last.EndedAt == nil && (p.To.Terminal() || p.To == relaytype.StateQueued || p.To == relaytype.StateStale) {
		t := at
		last.EndedAt, last.Outcome, last.Reason = &t, p.To, strings.TrimSpace(string(p.Reason)+" "+p.Summary)
	}
	return rows
}

// describe says what an event records, in words.
func describe(e *relaytype.Event) string {
	switch e.Type {
	case relaytype.EventTransition:
		var p relaytype.TransitionPayload
		if json.Unmarshal(e.Payload, &p) != nil {
			break
		}
		s := fmt.Sprintf("%s → %s", p.From, p.To)
		if p.Attempt > 0 {
			s += fmt.Sprintf(" (attempt %d)", p.Attempt)
		}
		if p.Reason != "" {
			s += " · " + string(p.Reason)
		}
		if p.Summary != "" {
			s += " · " + p.Summary
		}
		return s
	case relaytype.EventPhase:
		var p relaytype.PhasePayload
		if json.Unmarshal(e.Payload, &p) == nil {
			return fmt.Sprintf("%s (attempt %d)", p.Phase, p.Attempt)
		}
	case relaytype.EventArtifact:
		var p struct {
			Kind string `json:"kind"`
			Size int64  `json:"size"`
		}
		if json.Unmarshal(e.Payload, &p) == nil && p.Kind != "" {
			return fmt.Sprintf("%s stored (%d bytes)", p.Kind, p.Size)
		}
	case relaytype.EventAsk:
		var p struct {
			AskType string `json:"ask_type"`
			Prompt  string `json:"prompt"`
		}
		if json.Unmarshal(e.Payload, &p) == nil && p.Prompt != "" {
			return fmt.Sprintf("%s asked: %s", p.AskType, oneLine(p.Prompt, 200))
		}
	case relaytype.EventAnswer:
		var p struct {
			Status     string `json:"status"`
			AnswerText string `json:"answer_text"`
		}
		if json.Unmarshal(e.Payload, &p) == nil && p.Status != "" {
			return strings.TrimSpace(fmt.Sprintf("answered %s %s", p.Status, oneLine(p.AnswerText, 200)))
		}
	case relaytype.EventSubmitted:
		return "submitted"
	}
	return oneLine(string(e.Payload), 200)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// tailOf returns the last n bytes of s, from a line start where it can.
func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return s
}

// applyCommand is the command that applies a job's patch to a checkout.
func applyCommand(j *relaytype.Job) string {
	cmd := "mcp-task-relay jobs apply " + j.ID
	if j.Project != "" {
		cmd += " --config-dir " + shellQuote(j.Project)
	}
	if j.Spec.Repo.Type == "local" && j.Spec.Repo.Path != "" {
		cmd += " --dir " + shellQuote(j.Spec.Repo.Path)
	}
	return cmd
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// LogChunk is the body of GET /ui/jobs/{jobId}/log?after=.
type LogChunk struct {
	Text  string `json:"text"`
	After int64  `json:"after"`
}

// getLog is GET /ui/jobs/{jobId}/log?after=ID: executor output logged
// after event ID.
func (d *Dashboard) getLog(w http.ResponseWriter, r *http.Request, _ caller) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	events, err := d.cfg.Jobs.Events(r.Context(), r.PathValue("jobId"), after, 0)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	out := LogChunk{After: after}
	var b strings.Builder
	for _, e := range events {
		if e.Type != relaytype.EventLog {
			continue
		}
		var p struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		b.WriteString(p.Text)
		out.After = e.ID
	}
	out.Text = tailOf(b.String(), logTail)
	writeJSON(w, http.StatusOK, out)
}

// cancel is POST /ui/jobs/{jobId}/cancel.
func (d *Dashboard) cancel(w http.ResponseWriter, r *http.Request, _ caller) {
	j, err := d.cfg.Jobs.Cancel(r.Context(), r.PathValue("jobId"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rowOf(j))
}

// FollowupRequest is the body of POST /ui/jobs/{jobId}/followup.
type FollowupRequest struct {
	Instruction string `json:"instruction"`
}

// followup is POST /ui/jobs/{jobId}/followup.
func (d *Dashboard) followup(w http.ResponseWriter, r *http.Request, _ caller) {
	var req FollowupRequest
	if !decode(w, r, &req) {
		return
	}
	j, err := d.cfg.Jobs.Followup(r.Context(), r.PathValue("jobId"), req.Instruction)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, rowOf(j))
}

// AskRow is one pending ask in the inbox.
type AskRow struct {
	*relaytype.AskRecord
	JobTitle string  `json:"jobTitle"`
	AgeS     float64 `json:"ageS"`
}

// listAsks is GET /ui/asks: the pending asks, oldest first.
func (d *Dashboard) listAsks(w http.ResponseWriter, r *http.Request, _ caller) {
	asks, err := d.cfg.Asks.List(r.Context(), "", relaytype.StatusPending)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	now := d.cfg.Now()
	out := struct {
		Items []AskRow `json:"items"`
	}{Items: []AskRow{}}
	titles := map[string]string{}
	for _, a := range asks {
		t, ok := titles[a.JobID]
		if !ok {
			if j, err := d.cfg.Jobs.Get(r.Context(), a.JobID); err == nil {
				t = j.Spec.Task.Title
			}
			titles[a.JobID] = t
		}
		out.Items = append(out.Items, AskRow{AskRecord: a, JobTitle: t, AgeS: now.Sub(a.CreatedAt).Seconds()})
	}
	writeJSON(w, http.StatusOK, out)
}

// AnswerRequest is the body of POST /ui/asks/{askId}/answer: exactly one
// of Approve, Reject, Text and JSON.
type AnswerRequest struct {
	// Approve answers {"approved": true}, as approving through MCP
	// elicitation does.
	Approve bool `json:"approve,omitempty"`
	// Reject rejects the ask (the job fails); Text, when set, says why.
	Reject bool `json:"reject,omitempty"`
	// Text answers with this text.
	Text string `json:"text,omitempty"`
	// JSON answers with this JSON value.
	JSON json.RawMessage `json:"json,omitempty"`
}

// answerOf turns a dashboard answer into the protocol's.
func answerOf(askID string, req AnswerRequest) (*relaytype.Answer, error) {
	a := &relaytype.Answer{Type: "Answer", AskID: askID, Status: relaytype.StatusAnswered,
		Attestation: &relaytype.Attestation{AnsweredBy: relaytype.AnsweredByHuman}}
	n := 0
	for _, on := range []bool{req.Approve, req.Reject, !req.Reject && strings.TrimSpace(req.Text) != "", len(req.JSON) > 0} {
		if on {
			n++
		}
	}
	if n != 1 {
		return nil, &relaytype.RequestError{Field: "body", Message: "give exactly one of approve, reject, text and json"}
	}
	switch {
	case req.Approve:
		a.AnswerText = "approved"
		a.AnswerJSON = json.RawMessage(`{"approved":true}`)
	case req.Reject:
		a.Status = relaytype.StatusRejected
		a.AnswerText = strings.TrimSpace(req.Text)
		if a.AnswerText == "" {
			a.AnswerText = "rejected from the dashboard"
		}
	case len(req.JSON) > 0:
		raw := bytes.TrimSpace(req.JSON)
		if !json.Valid(raw) {
			return nil, &relaytype.RequestError{Field: "json", Message: "not valid JSON"}
		}
		a.AnswerJSON = raw
	default:
		a.AnswerText = req.Text
	}
	return a, nil
}

// answer is POST /ui/asks/{askId}/answer.
func (d *Dashboard) answer(w http.ResponseWriter, r *http.Request, _ caller) {
	var req AnswerRequest
	if !decode(w, r, &req) {
		return
	}
	d.record(w, r, r.PathValue("askId"), req, "the dashboard")
}

// record answers an ask as req says and replies with the answer's record;
// via names where the answer came from, for the log.
func (d *Dashboard) record(w http.ResponseWriter, r *http.Request, askID string, req AnswerRequest, via string) {
	a, err := answerOf(askID, req)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	rec, _, err := d.cfg.Asks.Answer(r.Context(), a)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.log.Info("ask answered from "+via, "ask_id", rec.AskID, "job_id", rec.JobID, "status", rec.Status)
	writeJSON(w, http.StatusOK, rec)
}

// action is POST /ui/asks/{askId}/action?decision=&exp=&sig=: a signed
// one-tap approve or reject from a notification.
func (d *Dashboard) action(w http.ResponseWriter, r *http.Request) {
	askID := strings.ToLower(r.PathValue("askId"))
	q := r.URL.Query()
	decision, exp, sig := q.Get("decision"), q.Get("exp"), q.Get("sig")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !hmacEqual(sig, d.sign(askID, decision, exp)) {
		writeErr(w, http.StatusForbidden, "FORBIDDEN", "this action link is not signed by this relay")
		return
	}
	if !d.cfg.Now().Before(time.Unix(unix, 0)) {
		writeErr(w, http.StatusGone, "EXPIRED", "this action link has expired; answer in the dashboard")
		return
	}
	var req AnswerRequest
	switch ActionDecision(decision) {
	case ActionApprove:
		req.Approve = true
	case ActionReject:
		req.Reject, req.Text = true, "rejected from a notification"
	default:
		writeErr(w, http.StatusBadRequest, "INVALID_REQUEST", "decision must be approve or reject")
		return
	}
	d.record(w, r, askID, req, "a notification")
}

func hmacEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// UsageRow is tokens and money of one day, project or executor.
type UsageRow struct {
	Key          string  `json:"key"`
	Jobs         int     `json:"jobs"`
	InputTokens  int     `json:"inputTokens"`
	OutputTokens int     `json:"outputTokens"`
	CostUSD      float64 `json:"costUsd"`
}

// Usage is the body of GET /ui/usage.
type Usage struct {
	// Days are the last days (UTC), oldest first, with every day present.
	Days       []UsageRow `json:"days"`
	ByProject  []UsageRow `json:"byProject"`
	ByExecutor []UsageRow `json:"byExecutor"`
	Total      UsageRow   `json:"total"`
}

// usageDays is how many days the usage page shows.
const usageDays = 14

// usage is GET /ui/usage: tokens and USD of the jobs, by the day they
// were submitted, by project and by executor.
func (d *Dashboard) usage(w http.ResponseWriter, r *http.Request, _ caller) {
	jobs, _, err := d.cfg.Jobs.ListJobs(r.Context(), relay.ListParams{})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	today := d.cfg.Now().UTC().Truncate(24 * time.Hour)
	out := Usage{Total: UsageRow{Key: "total"}}
	days := map[string]*UsageRow{}
	for i := usageDays - 1; i >= 0; i-- {
		k := today.AddDate(0, 0, -i).Format("2006-01-02")
		out.Days = append(out.Days, UsageRow{Key: k})
	}
	for i := range out.Days {
		days[out.Days[i].Key] = &out.Days[i]
	}
	projects, executors := map[string]*UsageRow{}, map[string]*UsageRow{}
	add := func(row *UsageRow, u relaytype.Usage) {
		row.Jobs++
		row.InputTokens += u.InputTokens
		row.OutputTokens += u.OutputTokens
		row.CostUSD += u.CostUSD
	}
	get := func(m map[string]*UsageRow, k string) *UsageRow {
		if m[k] == nil {
			m[k] = &UsageRow{Key: k}
		}
		return m[k]
	}
	for _, j := range jobs {
		add(&out.Total, j.Usage)
		add(get(projects, projectName(j.Project)), j.Usage)
		add(get(executors, j.Executor), j.Usage)
		if row := days[j.CreatedAt.UTC().Format("2006-01-02")]; row != nil {
			add(row, j.Usage)
		}
	}
	sorted := func(m map[string]*UsageRow) []UsageRow {
		rows := make([]UsageRow, 0, len(m))
		for _, v := range m {
			rows = append(rows, *v)
		}
		sort.Slice(rows, func(a, b int) bool {
			if rows[a].CostUSD != rows[b].CostUSD {
				return rows[a].CostUSD > rows[b].CostUSD
			}
			return rows[a].Key < rows[b].Key
		})
		return rows
	}
	out.ByProject, out.ByExecutor = sorted(projects), sorted(executors)
	writeJSON(w, http.StatusOK, out)
}

// stream is GET /ui/stream: every job change as an SSE "change" event,
// with comment heartbeats, until the client leaves or the relay stops.
func (d *Dashboard) stream(w http.ResponseWriter, r *http.Request, _ caller) {
	changes, unsubscribe := d.cfg.Jobs.Subscribe()
	defer unsubscribe()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 2000\n: connected\n\n") {
		return
	}
	t := time.NewTicker(d.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			if !send(": heartbeat\n\n") {
				return
			}
		case c, ok := <-changes:
			if !ok {
				return
			}
			b, _ := json.Marshal(map[string]any{"jobId": c.JobID, "state": c.State, "asks": c.Asks, "log": c.Log, "artifact": c.Artifact})
			if !send("event: change\ndata: " + string(b) + "\n\n") {
				return
			}
		}
	}
}
