package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Progress reading bounds.
const (
	// progressLineMax is the number of runes of an output line Progress
	// shows; longer lines end in "…".
	progressLineMax = 200
	// progressPartMax is the number of bytes kept of an output line that
	// has not ended yet (the latest ones).
	progressPartMax = 4 << 10
	// eventPage is the page size of event scans.
	eventPage = 500
	// progressScanMax bounds the events one Progress call reads for a job
	// another process runs; the next call goes on from there.
	progressScanMax = 20 * eventPage
	// partialScanMax bounds the events read to assemble partial logs.
	partialScanMax = 200 * eventPage
	// partialLogsMax bounds partial logs; the executor's live output is
	// bounded well below it (logStreamMax).
	partialLogsMax = 4 << 20
	// derivedMax bounds the jobs whose derived progress is remembered.
	derivedMax = 64
)

// trackerKey is the context key of the tracker of the job run a context
// belongs to.
type trackerKey struct{}

// tracker is the in-memory progress of one attempt of a job this relay
// runs. The worker puts it in the context it hands the Handler, so that
// ReportPhase and ReportOutput can find it.
type tracker struct {
	r       *Relay
	jobID   string
	attempt int

	mu    sync.Mutex
	phase relaytype.Phase
	since time.Time
	tail  lineTail
}

func (r *Relay) newTracker(job *relaytype.Job) *tracker {
	return &tracker{r: r, jobID: job.ID, attempt: job.Attempt}
}

// withTracker returns ctx carrying t.
func withTracker(ctx context.Context, t *tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

func trackerOf(ctx context.Context) *tracker {
	t, _ := ctx.Value(trackerKey{}).(*tracker)
	return t
}

// ReportPhase records that the job a Handler runs under ctx entered
// phase: the relay keeps it for Progress, appends a "phase" event
// (relaytype.PhasePayload) to the job's audit log, so that every process
// sharing the store sees it, and publishes the job's state so that
// subscribers re-read it. Reporting the phase the job is in already does
// nothing, and so does a ctx that no Relay handed to a Handler.
func ReportPhase(ctx context.Context, phase relaytype.Phase) {
	if t := trackerOf(ctx); t != nil {
		t.setPhase(ctx, phase)
	}
}

// ReportOutput returns a writer that passes what is written to it on to
// w and makes it the executor output whose last lines Progress shows, for
// the job a Handler runs under ctx. It returns w itself when no Relay
// handed ctx to a Handler, and a writer that only reports when w is nil.
// Its writes never fail.
func ReportOutput(ctx context.Context, w io.Writer) io.Writer {
	t := trackerOf(ctx)
	switch {
	case t == nil:
		return w
	case w == nil:
		return t
	}
	return io.MultiWriter(w, t)
}

func (t *tracker) setPhase(ctx context.Context, phase relaytype.Phase) {
	now := t.r.cfg.Now()
	t.mu.Lock()
	if t.phase == phase {
		t.mu.Unlock()
		return
	}
	t.phase, t.since = phase, now
	t.mu.Unlock()
	t.r.log.Debug("job phase", "job_id", t.jobID, "attempt", t.attempt, "phase", phase)
	payload, err := json.Marshal(relaytype.PhasePayload{Phase: phase, Attempt: t.attempt})
	if err == nil {
		_, err = t.r.store.EventAppend(ctx, &store.EventAppendParams{
			JobID: t.jobID, Type: relaytype.EventPhase, Payload: payload, Now: now,
			Owner: t.r.cfg.InstanceID, Attempt: t.attempt,
		})
	}
	if err != nil {
		if ctx.Err() == nil {
			t.r.log.Warn("record job phase", "job_id", t.jobID, "phase", phase, "err", err)
		}
		return
	}
	// A Change names what to re-read: the job's status (which shows the
	// phase) and its events. Its state has not changed, so a state
	// version waiter is not woken.
	if j, err := t.r.Get(ctx, t.jobID); err == nil {
		t.r.publishJob(j)
	}
}

// Write implements io.Writer for ReportOutput.
func (t *tracker) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.tail.Write(p)
	t.mu.Unlock()
	return len(p), nil
}

func (t *tracker) progress(job *relaytype.Job, now time.Time) *relaytype.Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return newProgress(job, t.phase, t.since, t.tail.Lines(), now)
}

func newProgress(job *relaytype.Job, phase relaytype.Phase, since time.Time, lines []string, now time.Time) *relaytype.Progress {
	p := &relaytype.Progress{Phase: phase, PhaseSince: since, Attempt: job.Attempt, LastLines: lines}
	if job.StartedAt != nil && !job.StartedAt.IsZero() {
		p.ElapsedS = max(0, math.Round(now.Sub(*job.StartedAt).Seconds()*10)/10)
	}
	return p
}

// Progress returns what a job is doing while it runs (RUNNING or
// WAITING_ON_ANSWER): its phase and since when, the seconds since it
// started, and the last lines of its executor's output. It is nil for a
// job that is not running: queued, stale, or ended. For a job this relay
// runs it is read from memory; for one another process runs it is derived
// from the job's stored "phase" and "log" events, reading only the events
// added since the previous call (a bounded number of them per call).
func (r *Relay) Progress(ctx context.Context, jobID string) (*relaytype.Progress, error) {
	job, err := r.Get(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if !job.State.Active() {
		forgetDerived(r, jobID)
		return nil, nil
	}
	r.mu.Lock()
	w := r.running[jobID]
	r.mu.Unlock()
	if w != nil && w.progress != nil && w.job.Attempt == job.Attempt {
		return w.progress.progress(job, r.cfg.Now()), nil
	}
	return r.derivedProgress(ctx, job)
}

// derived is progress derived from a job's stored events, up to lastID.
type derived struct {
	mu      sync.Mutex
	used    uint64 // derivedCache.clock when last used
	lastID  int64
	attempt int
	phase   relaytype.Phase
	since   time.Time
	tail    lineTail
}

type derivedKey struct {
	r     *Relay
	jobID string
}

// derivedCache remembers derived progress of the jobs other processes run,
// so that repeated reads (jobs_wait's progress ticks, status re-reads)
// only read the events added since. It holds at most derivedMax jobs.
var derivedCache = struct {
	mu    sync.Mutex
	clock uint64
	m     map[derivedKey]*derived
}{m: map[derivedKey]*derived{}}

func cachedDerived(r *Relay, jobID string) *derived {
	c := &derivedCache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	k := derivedKey{r, jobID}
	d := c.m[k]
	if d == nil {
		if len(c.m) >= derivedMax {
			var oldest derivedKey
			first := true
			for k, e := range c.m {
				if first || e.used < c.m[oldest].used {
					oldest, first = k, false
				}
			}
			delete(c.m, oldest)
		}
		d = &derived{}
		c.m[k] = d
	}
	d.used = c.clock
	return d
}

func forgetDerived(r *Relay, jobID string) {
	derivedCache.mu.Lock()
	delete(derivedCache.m, derivedKey{r, jobID})
	derivedCache.mu.Unlock()
}

func (r *Relay) derivedProgress(ctx context.Context, job *relaytype.Job) (*relaytype.Progress, error) {
	d := cachedDerived(r, job.ID)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := r.scanEvents(ctx, job.ID, &d.lastID, progressScanMax, d.apply); err != nil {
		return nil, err
	}
	if d.attempt != job.Attempt {
		// The attempt has left no event yet.
		return newProgress(job, "", time.Time{}, []string{}, r.cfg.Now()), nil
	}
	return newProgress(job, d.phase, d.since, d.tail.Lines(), r.cfg.Now()), nil
}

// apply folds one event into d.
func (d *derived) apply(ev *relaytype.Event) {
	if attempt, ok := eventAttempt(ev); ok && attempt != d.attempt {
		d.attempt, d.phase, d.since, d.tail = attempt, "", time.Time{}, lineTail{}
	}
	switch ev.Type {
	case relaytype.EventPhase:
		var p relaytype.PhasePayload
		if json.Unmarshal(ev.Payload, &p) == nil {
			d.phase, d.since = p.Phase, ev.Time
		}
	case relaytype.EventLog:
		if text, ok := logText(ev); ok {
			d.tail.Write([]byte(text))
		}
	}
}

// eventAttempt returns the attempt an event starts or belongs to: the
// attempt of a transition to RUNNING (a claim starts a new one), or of a
// phase event.
func eventAttempt(ev *relaytype.Event) (int, bool) {
	switch ev.Type {
	case relaytype.EventTransition:
		var p relaytype.TransitionPayload
		if json.Unmarshal(ev.Payload, &p) == nil && p.To == relaytype.StateRunning && p.Attempt > 0 {
			return p.Attempt, true
		}
	case relaytype.EventPhase:
		var p relaytype.PhasePayload
		if json.Unmarshal(ev.Payload, &p) == nil && p.Attempt > 0 {
			return p.Attempt, true
		}
	}
	return 0, false
}

// logText returns the text of a "log" event (see Relay.AppendLog).
func logText(ev *relaytype.Event) (string, bool) {
	var p struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(ev.Payload, &p) != nil {
		return "", false
	}
	return p.Text, true
}

// scanEvents calls fn on the job's events after *after, in order, reading
// at most limit of them, and moves *after past those read. It reports
// whether it stopped at the limit, with events possibly left.
func (r *Relay) scanEvents(ctx context.Context, jobID string, after *int64, limit int, fn func(*relaytype.Event)) (bool, error) {
	for read := 0; read < limit; {
		n := min(eventPage, limit-read)
		evs, err := r.store.EventList(ctx, &store.EventListParams{JobID: jobID, AfterID: *after, Limit: n})
		if err != nil {
			return false, fmt.Errorf("events of %s: %w", jobID, err)
		}
		for _, ev := range evs {
			fn(ev)
			*after = ev.ID
		}
		read += len(evs)
		if len(evs) < n {
			return false, nil
		}
	}
	return true, nil
}

// PartialLogsHeader is the first line of the partial logs.txt of a job
// that is still running (see Relay.ReadLogs); %s is the job's state.
const PartialLogsHeader = "[partial: job %s, output so far]\n"

// ReadLogs returns a job's logs.txt. Once the job has one stored, it is
// exactly what ReadArtifact returns (its digest checked) and partial is
// false. While the job runs (RUNNING or WAITING_ON_ANSWER) and has none
// yet, it is the output the executor has written so far in this attempt,
// assembled from the job's "log" events, under a first line
// PartialLogsHeader; partial is true then, and the Artifact describes
// these bytes (digest and size) but is not a stored artifact. Otherwise
// the error is relaytype.ErrArtifactNotFound.
func (r *Relay) ReadLogs(ctx context.Context, jobID string) (data []byte, a *relaytype.Artifact, partial bool, err error) {
	data, a, err = r.ReadArtifact(ctx, jobID, relaytype.ArtifactLogs)
	if err == nil || !errors.Is(err, relaytype.ErrArtifactNotFound) {
		return data, a, false, err
	}
	job, jerr := r.Get(ctx, jobID)
	if jerr != nil {
		return nil, nil, false, jerr
	}
	if !job.State.Active() {
		// It may have ended (storing its logs) since the read above.
		data, a, err = r.ReadArtifact(ctx, jobID, relaytype.ArtifactLogs)
		return data, a, false, err
	}
	var (
		attempt int
		buf     bytes.Buffer
		cut     bool
		after   int64
	)
	more, err := r.scanEvents(ctx, jobID, &after, partialScanMax, func(ev *relaytype.Event) {
		if n, ok := eventAttempt(ev); ok && n != attempt {
			attempt, cut = n, false
			buf.Reset()
		}
		if ev.Type != relaytype.EventLog || cut {
			return
		}
		if text, ok := logText(ev); ok {
			if buf.Len()+len(text) > partialLogsMax {
				buf.WriteString("\n[partial logs truncated]\n")
				cut = true
				return
			}
			buf.WriteString(text)
		}
	})
	if err != nil {
		return nil, nil, false, err
	}
	if more && !cut {
		buf.WriteString("\n[partial logs cut short: too many events to read]\n")
	}
	data = append([]byte(fmt.Sprintf(PartialLogsHeader, job.State)), buf.Bytes()...)
	return data, describeArtifact(jobID, relaytype.ArtifactLogs, data, r.cfg.Now()), true, nil
}

// lineTail keeps the last lines of a stream of output for a person to
// read: blank lines are skipped, a carriage return starts the line over
// (progress bars), terminal escape sequences are dropped and long lines
// are shortened.
type lineTail struct {
	lines []string // last complete lines, rendered, oldest first
	cur   []byte   // the line not ended yet (its last progressPartMax bytes)
}

// Write adds output.
func (t *lineTail) Write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.cur = appendKeepLast(t.cur, p, progressPartMax)
			return
		}
		t.cur = appendKeepLast(t.cur, p[:i], progressPartMax)
		if l := renderLine(t.cur); l != "" {
			if len(t.lines) == relaytype.ProgressLines {
				t.lines = append(t.lines[:0], t.lines[1:]...)
			}
			t.lines = append(t.lines, l)
		}
		t.cur = t.cur[:0]
		p = p[i+1:]
	}
}

// Lines returns a copy of the last lines, the unfinished one included.
func (t *lineTail) Lines() []string {
	out := make([]string, 0, relaytype.ProgressLines)
	out = append(out, t.lines...)
	if l := renderLine(t.cur); l != "" {
		out = append(out, l)
	}
	if n := len(out) - relaytype.ProgressLines; n > 0 {
		out = out[n:]
	}
	return out
}

// appendKeepLast appends p to b and keeps the last limit bytes.
func appendKeepLast(b, p []byte, limit int) []byte {
	if len(p) >= limit {
		return append(b[:0], p[len(p)-limit:]...)
	}
	b = append(b, p...)
	if len(b) > limit {
		b = b[:copy(b, b[len(b)-limit:])]
	}
	return b
}

// ansiEscape matches terminal escape sequences: CSI (colors, cursor
// movement), OSC (titles, links) and two-character ones.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]`)

// renderLine returns an output line as a person should see it, or "" if
// nothing of it is visible.
func renderLine(b []byte) string {
	b = bytes.TrimRight(b, "\r")
	if i := bytes.LastIndexByte(b, '\r'); i >= 0 {
		b = b[i+1:]
	}
	s := string(b)
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = ansiEscape.ReplaceAllString(s, "")
	}
	s = strings.TrimRightFunc(strings.ToValidUTF8(s, "\uFFFD"), unicode.IsSpace)
	if strings.TrimSpace(s) == "" {
		return ""
	}
	if utf8.RuneCountInString(s) > progressLineMax {
		s = string([]rune(s)[:progressLineMax-1]) + "…"
	}
	return s
}
