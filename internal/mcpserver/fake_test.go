package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// The real relay and ask service must satisfy the interfaces the server
// is written against.
var (
	_ Jobs = (*relay.Relay)(nil)
	_ Asks = (*ask.Service)(nil)
)

// fakeJobs is an in-memory Jobs. Submit admits any valid spec except for
// executor "none" (NO_EXECUTOR) and "bogus" (INVALID_SPEC naming
// execution.executor), as the relay's Handler would.
type fakeJobs struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	jobs   map[string]*relaytype.Job
	order  []string // submission order
	events map[string][]*relaytype.Event
	arts   map[string]map[relaytype.ArtifactKind]fakeArtifact
	subs   map[chan relay.Change]struct{}
	// subscribed receives a value on every Subscribe call.
	subscribed chan struct{}
	// gets receives the id of every Get call that found its job, when
	// there is room in its buffer.
	gets chan string
}

type fakeArtifact struct {
	meta *relaytype.Artifact
	data []byte
}

func newFakeJobs() *fakeJobs {
	return &fakeJobs{
		now:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		jobs:   map[string]*relaytype.Job{},
		events: map[string][]*relaytype.Event{},
		arts:   map[string]map[relaytype.ArtifactKind]fakeArtifact{},
		subs:   map[chan relay.Change]struct{}{},

		subscribed: make(chan struct{}, 100),
		gets:       make(chan string, 100),
	}
}

// clock returns the fake's current time without advancing it.
func (f *fakeJobs) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// drainGets forgets the Get calls made so far.
func (f *fakeJobs) drainGets() {
	for {
		select {
		case <-f.gets:
		default:
			return
		}
	}
}

func (f *fakeJobs) tick() time.Time {
	f.now = f.now.Add(time.Second)
	return f.now
}

func (f *fakeJobs) appendEvent(id, typ string, payload string) {
	evs := f.events[id]
	ev := &relaytype.Event{ID: int64(len(evs) + 1), JobID: id, Time: f.now, Type: typ}
	if payload != "" {
		ev.Payload = []byte(payload)
	}
	f.events[id] = append(evs, ev)
}

func (f *fakeJobs) Submit(_ context.Context, spec *relaytype.JobSpec) (*relaytype.Job, bool, error) {
	switch spec.Execution.Executor {
	case "none":
		return nil, false, relaytype.ErrNoExecutor
	case "bogus":
		return nil, false, &relaytype.SpecError{Field: "execution.executor", Message: `unknown executor "bogus"`}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.order {
		if j := f.jobs[id]; j.IdempotencyKey == spec.IdempotencyKey && !j.State.Terminal() {
			c := *j
			return &c, false, nil
		}
	}
	f.seq++
	now := f.tick()
	baseline := spec.Repo.BaselineCommit
	if baseline == "" {
		baseline = strings.Repeat("b", 40)
	}
	executor := spec.Execution.Executor
	if executor == "" {
		executor = "codex"
	}
	j := &relaytype.Job{
		ID:             fmt.Sprintf("job_%026d", f.seq),
		IdempotencyKey: spec.IdempotencyKey,
		State:          relaytype.StateQueued,
		StateVersion:   1,
		Priority:       spec.Execution.Priority,
		MaxAttempts:    spec.Execution.MaxAttempts,
		Executor:       executor,
		BaselineCommit: baseline,
		CreatedAt:      now,
		UpdatedAt:      now,
		Spec:           *spec,
	}
	f.jobs[j.ID] = j
	f.order = append(f.order, j.ID)
	f.appendEvent(j.ID, relaytype.EventSubmitted, "")
	f.publishLocked(relay.Change{JobID: j.ID, State: j.State, StateVersion: j.StateVersion})
	c := *j
	return &c, true, nil
}

func (f *fakeJobs) Get(_ context.Context, id string) (*relaytype.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, relaytype.ErrJobNotFound)
	}
	c := *j
	select {
	case f.gets <- id:
	default:
	}
	return &c, nil
}

func (f *fakeJobs) List(_ context.Context, state relaytype.JobState, limit, offset int) ([]*relaytype.Job, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*relaytype.Job
	for _, id := range slices.Backward(f.order) {
		if j := f.jobs[id]; state == "" || j.State == state {
			c := *j
			all = append(all, &c)
		}
	}
	total := len(all)
	all = all[min(offset, total):]
	return all[:min(limit, len(all))], total, nil
}

func (f *fakeJobs) Cancel(ctx context.Context, id string) (*relaytype.Job, error) {
	f.mu.Lock()
	j, ok := f.jobs[id]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, relaytype.ErrJobNotFound)
	}
	return f.transition(ctx, j.ID, relaytype.StateCanceled, "", "canceled by request")
}

// transition moves a job to state to, as a worker of the relay would, and
// publishes the change.
func (f *fakeJobs) transition(_ context.Context, id string, to relaytype.JobState, reason relaytype.FailReason, summary string) (*relaytype.Job, error) {
	return f.move(id, to, reason, summary, false)
}

// move is transition, publishing a change with Asks set to asks, as the
// relay does for transitions made by the ask service.
func (f *fakeJobs) move(id string, to relaytype.JobState, reason relaytype.FailReason, summary string, asks bool) (*relaytype.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	if !relaytype.CanTransition(j.State, to) {
		return nil, &relaytype.TransitionError{JobID: id, From: j.State, To: to}
	}
	now := f.tick()
	from := j.State
	j.State, j.ReasonCode, j.Summary, j.UpdatedAt = to, reason, summary, now
	j.StateVersion++
	if to == relaytype.StateRunning && j.StartedAt == nil {
		j.StartedAt, j.Attempt = &now, 1
	}
	if to.Terminal() {
		j.FinishedAt = &now
	}
	f.appendEvent(id, relaytype.EventTransition, fmt.Sprintf(`{"from":%q,"to":%q,"stateVersion":%d}`, from, to, j.StateVersion))
	f.publishLocked(relay.Change{JobID: id, State: j.State, StateVersion: j.StateVersion, Asks: asks})
	c := *j
	return &c, nil
}

// putArtifact stores an artifact and publishes the change.
func (f *fakeJobs) putArtifact(id string, kind relaytype.ArtifactKind, data string) *relaytype.Artifact {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := sha256.Sum256([]byte(data))
	a := &relaytype.Artifact{
		JobID: id, Kind: kind, URI: relaytype.ArtifactURI(id, kind),
		Digest: hex.EncodeToString(sum[:]), Size: int64(len(data)), CreatedAt: f.tick(),
	}
	if f.arts[id] == nil {
		f.arts[id] = map[relaytype.ArtifactKind]fakeArtifact{}
	}
	f.arts[id][kind] = fakeArtifact{meta: a, data: []byte(data)}
	f.appendEvent(id, relaytype.EventArtifact, fmt.Sprintf(`{"kind":%q}`, kind))
	f.publishLocked(relay.Change{JobID: id, Artifact: kind})
	return a
}

func (f *fakeJobs) Events(_ context.Context, id string, afterID int64, limit int) ([]*relaytype.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[id]; !ok {
		return nil, fmt.Errorf("job %s: %w", id, relaytype.ErrJobNotFound)
	}
	var out []*relaytype.Event
	for _, e := range f.events[id] {
		if e.ID > afterID && (limit == 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeJobs) Artifacts(_ context.Context, id string) ([]*relaytype.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*relaytype.Artifact
	for _, k := range relaytype.ArtifactKinds {
		if a, ok := f.arts[id][k]; ok {
			out = append(out, a.meta)
		}
	}
	return out, nil
}

func (f *fakeJobs) ReadArtifact(_ context.Context, id string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[id]; !ok {
		return nil, nil, fmt.Errorf("job %s: %w", id, relaytype.ErrJobNotFound)
	}
	a, ok := f.arts[id][kind]
	if !ok {
		return nil, nil, fmt.Errorf("artifact %s of job %s: %w", kind, id, relaytype.ErrArtifactNotFound)
	}
	return a.data, a.meta, nil
}

func (f *fakeJobs) Subscribe() (<-chan relay.Change, func()) {
	ch := make(chan relay.Change, 256)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	f.subscribed <- struct{}{}
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// subscribers returns the number of live relay subscriptions.
func (f *fakeJobs) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// emit publishes a change without touching any job.
func (f *fakeJobs) emit(c relay.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publishLocked(c)
}

func (f *fakeJobs) publishLocked(c relay.Change) {
	for ch := range f.subs {
		select {
		case ch <- c:
		default:
			panic("fakeJobs: subscriber buffer full")
		}
	}
}

// fakeAsks is an in-memory Asks over a fakeJobs, with the ask service's
// rules: an ask moves a RUNNING job to WAITING_ON_ANSWER; an answer moves
// it back to RUNNING once none is pending, or fails it unless ANSWERED; a
// different second answer is a conflict, the same one is not created.
type fakeAsks struct {
	jobs *fakeJobs

	mu      sync.Mutex
	seq     int
	asks    []*relaytype.AskRecord // oldest first
	answers map[string]*relaytype.AnswerRecord
}

func newFakeAsks(jobs *fakeJobs) *fakeAsks {
	return &fakeAsks{jobs: jobs, answers: map[string]*relaytype.AnswerRecord{}}
}

// create adds a PENDING ask to a job and publishes the change.
func (f *fakeAsks) create(jobID, prompt string) *relaytype.AskRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	now := f.jobs.clock()
	a := &relaytype.AskRecord{
		AskID:           fmt.Sprintf("00000000-0000-4000-8000-%012d", f.seq),
		JobID:           jobID,
		StepID:          "step-1",
		AskType:         relaytype.AskClarification,
		Prompt:          prompt,
		ContextHash:     strings.Repeat("c", 64),
		ContextEnvelope: []byte(`{"job_snapshot":{"repo":"github.com/test/repo"},"role":"clarifier"}`),
		Constraints:     &relaytype.AskConstraints{TimeoutS: 600, AllowedTools: []string{"grep"}},
		Status:          relaytype.StatusPending,
		Route:           "orchestrator",
		CreatedAt:       now,
		DeadlineAt:      now.Add(10 * time.Minute),
	}
	f.asks = append(f.asks, a)
	if j, _ := f.jobs.Get(context.Background(), jobID); j.State == relaytype.StateRunning {
		if _, err := f.jobs.move(jobID, relaytype.StateWaitingOnAnswer, "", "waiting", true); err != nil {
			panic(err)
		}
	} else {
		f.jobs.emit(relay.Change{JobID: jobID, State: j.State, StateVersion: j.StateVersion, Asks: true})
	}
	c := *a
	return &c
}

func (f *fakeAsks) find(askID string) (*relaytype.AskRecord, error) {
	for _, a := range f.asks {
		if a.AskID == askID {
			return a, nil
		}
	}
	return nil, fmt.Errorf("ask %s: %w", askID, relaytype.ErrAskNotFound)
}

func (f *fakeAsks) List(_ context.Context, jobID string, status relaytype.AnswerStatus) ([]*relaytype.AskRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*relaytype.AskRecord
	for _, a := range f.asks {
		if (jobID == "" || a.JobID == jobID) && (status == "" || a.Status == status) {
			c := *a
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *fakeAsks) Get(_ context.Context, askID string) (*relaytype.AskRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.find(askID)
	if err != nil {
		return nil, err
	}
	c := *a
	return &c, nil
}

func (f *fakeAsks) AnswerOf(_ context.Context, askID string) (*relaytype.AnswerRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(askID); err != nil {
		return nil, err
	}
	return f.answers[askID], nil
}

func (f *fakeAsks) Answer(ctx context.Context, in *relaytype.Answer) (*relaytype.AnswerRecord, bool, error) {
	switch {
	case !in.Status.ValidAnswer():
		return nil, false, &relaytype.RequestError{Field: "status", Message: "invalid"}
	case in.Status == relaytype.StatusAnswered && in.AnswerText == "" && len(in.AnswerJSON) == 0:
		return nil, false, &relaytype.RequestError{Field: "answer_text", Message: "an ANSWERED answer needs answer_text or answer_json"}
	case len(in.AnswerJSON) > 0 && !json.Valid(in.AnswerJSON):
		return nil, false, &relaytype.RequestError{Field: "answer_json", Message: "is not valid JSON"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.find(in.AskID)
	if err != nil {
		return nil, false, err
	}
	if prev := f.answers[a.AskID]; prev != nil {
		if prev.Status != in.Status || prev.AnswerText != in.AnswerText || string(prev.AnswerJSON) != string(in.AnswerJSON) || prev.Error != in.Error {
			return nil, false, fmt.Errorf("ask %s was answered %s: %w", a.AskID, prev.Status, relaytype.ErrAnswerConflict)
		}
		return prev, false, nil
	}
	rec := &relaytype.AnswerRecord{
		AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: in.Status, AnswerText: in.AnswerText,
		AnswerJSON: in.AnswerJSON, Attestation: in.Attestation, Error: in.Error, CreatedAt: f.jobs.clock(),
	}
	f.answers[a.AskID] = rec
	a.Status = in.Status
	pending := 0
	for _, o := range f.asks {
		if o.JobID == a.JobID && o.Status == relaytype.StatusPending {
			pending++
		}
	}
	j, err := f.jobs.Get(ctx, a.JobID)
	if err != nil {
		return nil, false, err
	}
	switch {
	case in.Status.FailReason() != "" && j.State.Active():
		_, err = f.jobs.move(j.ID, relaytype.StateFailed, in.Status.FailReason(), "ask "+a.AskID+" was answered "+string(in.Status), true)
	case j.State == relaytype.StateWaitingOnAnswer && pending == 0:
		_, err = f.jobs.move(j.ID, relaytype.StateRunning, "", "all asks answered", true)
	default:
		f.jobs.emit(relay.Change{JobID: j.ID, State: j.State, StateVersion: j.StateVersion, Asks: true})
	}
	return rec, true, err
}
