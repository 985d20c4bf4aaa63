package ask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Minute
	DefaultRunnerTimeout = 60 * time.Second
	// safetyRecheck bounds how long a waiter goes without looking at the
	// store, for answers written by another process.
	safetyRecheck = 2 * time.Second
	maxSweepSleep = 5 * time.Second
	// DefaultStopGrace is how long Stop waits by default for answerers
	// in flight once their context is canceled.
	DefaultStopGrace = 5 * time.Second
)

// Answerer answers asks routed to it (the Answer Runner, a human
// channel). The orchestrator has none: it answers through Service.Answer.
type Answerer interface {
	Answer(ctx context.Context, ask *relaytype.AskRecord) (*relaytype.Answer, error)
}

// Decider decides asks deterministically before they are routed (the
// policy). It may answer an ask outright, or send it to another route.
type Decider interface {
	// Decide returns an answer to record at once, or a route to use
	// instead of the router's, or neither.
	Decide(a *relaytype.AskRecord) (answer *relaytype.Answer, route Route)
}

// ErrDeferred is returned by an Answerer that cannot answer now (no person
// is reachable, the runner's provider failed): the ask stays pending for
// asks_answer or POST /answers, with the orchestrator's deadline (see
// deferAsk), instead of being answered ERROR.
var ErrDeferred = errors.New("answer deferred to the orchestrator")

// Config configures a Service.
type Config struct {
	// Store persists asks and answers. Required.
	Store store.Store
	// Routing maps asks to routes. Defaults to everything to the
	// orchestrator.
	Routing Routing
	// Answerers answer the routes they are registered for; a route with
	// none falls back to the orchestrator. Defaults to none.
	Answerers map[Route]Answerer
	// Decider is consulted before routing. Defaults to none.
	Decider Decider
	// Timeout is the deadline of an ask that sets no constraints.timeout_s
	// and is not routed to the runner. Defaults to 10 min.
	Timeout time.Duration
	// RunnerTimeout is that deadline for asks routed to the runner.
	// Defaults to 60 s.
	RunnerTimeout time.Duration
	// RulesFor, when set, returns the rules of the project a job belongs
	// to; they replace Routing, Answerers, Decider, Timeout and
	// RunnerTimeout for that job's asks. An error fails the ask's
	// creation. Defaults to none (the rules above apply to every job).
	RulesFor func(ctx context.Context, jobID string) (*RuleSet, error)
	// OnChange is called after an ask is created or answered, with the job
	// as it is afterwards. Defaults to nothing.
	OnChange func(job *relaytype.Job)
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
	// StopGrace bounds how long Stop waits for answerers in flight after
	// canceling their context. Defaults to DefaultStopGrace.
	StopGrace time.Duration
}

// Service runs the relay side of the Ask/Answer protocol.
type Service struct {
	cfg   Config
	store store.Store
	rules *RuleSet // the rules of jobs RulesFor does not cover
	log   *slog.Logger

	mu      sync.Mutex
	waiters map[string]*waitEntry

	sweepWake chan struct{}
	// parked, when set (tests), is called each time a waiter parks.
	parked    func(askID string)
	startStop sync.Mutex
	cancel    context.CancelFunc
	done      chan struct{}
	inflight  sync.WaitGroup
	// life is the context of every answerer: canceled by Stop, so that
	// none outlives the service.
	life    context.Context
	endLife context.CancelFunc
}

type waitEntry struct {
	ch   chan struct{}
	refs int
}

// New returns a Service; call Start to run its deadline loop.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("ask: Store is required")
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(*relaytype.Job) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	rules, err := NewRuleSet(Rules{Routing: cfg.Routing, Answerers: cfg.Answerers, Decider: cfg.Decider,
		Timeout: cfg.Timeout, RunnerTimeout: cfg.RunnerTimeout})
	if err != nil {
		return nil, err
	}
	life, endLife := context.WithCancel(context.Background())
	return &Service{
		cfg: cfg, store: cfg.Store, rules: rules, log: cfg.Logger,
		waiters: map[string]*waitEntry{}, sweepWake: make(chan struct{}, 1),
		life: life, endLife: endLife,
	}, nil
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func bad(field, format string, a ...any) error {
	return &relaytype.RequestError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// validateAsk checks an ask and its envelope hash.
func validateAsk(a *relaytype.Ask) error {
	switch {
	case a.Type != "" && a.Type != "Ask":
		return bad("type", `must be "Ask", not %q`, a.Type)
	case !uuidRE.MatchString(a.AskID):
		return bad("ask_id", "must be a UUID")
	case a.JobID == "":
		return bad("job_id", "required")
	case !relaytype.ValidJobID(a.JobID):
		return bad("job_id", "%q is not a job id", a.JobID)
	case strings.TrimSpace(a.StepID) == "":
		return bad("step_id", "required")
	case len(a.StepID) > 200:
		return bad("step_id", "longer than 200 bytes")
	case !a.AskType.Valid():
		return bad("ask_type", "must be one of %v, not %q", relaytype.AskTypes, a.AskType)
	case strings.TrimSpace(a.Prompt) == "":
		return bad("prompt", "required")
	case len(a.Prompt) > relaytype.MaxAskPromptLen:
		return bad("prompt", "is %d bytes, at most %d allowed", len(a.Prompt), relaytype.MaxAskPromptLen)
	case len(a.RoleID) > 200:
		return bad("role_id", "longer than 200 bytes")
	}
	if c := a.Constraints; c != nil {
		if c.TimeoutS < 0 || c.TimeoutS > relaytype.MaxAskTimeoutS {
			return bad("constraints.timeout_s", "must be between 1 and %d", relaytype.MaxAskTimeoutS)
		}
		if c.MaxTokens < 0 {
			return bad("constraints.max_tokens", "must be positive")
		}
		for i, t := range c.AllowedTools {
			if strings.TrimSpace(t) == "" {
				return bad(fmt.Sprintf("constraints.allowed_tools[%d]", i), "must not be empty")
			}
		}
	}
	env := strings.TrimSpace(string(a.ContextEnvelope))
	if env == "" || env == "null" {
		return fmt.Errorf("context_envelope: %w", relaytype.ErrNoContextEnvelope)
	}
	// Size, depth and JavaScript-incompatible keys, in one linear pass
	// over the raw bytes before anything parses or canonicalises them.
	if err := relaytype.CheckEnvelope(a.ContextEnvelope); err != nil {
		var ee *relaytype.EnvelopeError
		if errors.As(err, &ee) {
			return bad(ee.Field(), "%s", ee.Message)
		}
		return bad("context_envelope", "%v", err)
	}
	var shape map[string]json.RawMessage
	if err := json.Unmarshal(a.ContextEnvelope, &shape); err != nil {
		return bad("context_envelope", "must be a JSON object")
	}
	if _, ok := shape["job_snapshot"]; !ok {
		return bad("context_envelope.job_snapshot", "required")
	}
	if !hashRE.MatchString(a.ContextHash) {
		return bad("context_hash", "must be 64 lowercase hex characters (SHA-256 of the canonical envelope)")
	}
	got, err := relaytype.ContextHash(a.ContextEnvelope)
	if err != nil {
		return bad("context_envelope", "%v", err)
	}
	if got != a.ContextHash {
		return fmt.Errorf("context_hash %s, but the envelope hashes to %s: %w", a.ContextHash, got, relaytype.ErrContextMismatch)
	}
	return nil
}

// payloadHash identifies a request body by the SHA-256 of its canonical
// JSON, so that a repeat is recognised whatever its formatting.
func payloadHash(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return relaytype.ContextHash(raw)
}

// roleOf returns the role of an ask: role_id, else the envelope's role.
func roleOf(a *relaytype.Ask) string {
	if a.RoleID != "" {
		return a.RoleID
	}
	var e struct {
		Role string `json:"role"`
	}
	_ = json.Unmarshal(a.ContextEnvelope, &e)
	return e.Role
}

// Create validates an ask, verifies its envelope hash, stores it (the job
// goes to WAITING_ON_ANSWER) and routes it. created is false when the same
// ask was posted before.
func (s *Service) Create(ctx context.Context, a *relaytype.Ask) (*relaytype.AskRecord, bool, error) {
	if err := validateAsk(a); err != nil {
		return nil, false, err
	}
	if err := s.checkAskPolicy(ctx, a.JobID); err != nil {
		return nil, false, err
	}
	a.Type = "Ask"
	a.AskID = strings.ToLower(a.AskID)
	hash, err := payloadHash(a)
	if err != nil {
		return nil, false, fmt.Errorf("hash ask: %w", err)
	}
	rules := s.rules
	if s.cfg.RulesFor != nil {
		if rules, err = s.cfg.RulesFor(ctx, a.JobID); err != nil {
			return nil, false, err
		}
	}
	route, fellBack := rules.router.Route(a.AskType, roleOf(a))
	if fellBack {
		s.log.Warn("ask routed to the orchestrator: its configured answerer is not available", "ask_id", a.AskID, "ask_type", a.AskType)
	}
	timeout := rules.r.Timeout
	if route == RouteRunner {
		timeout = rules.r.RunnerTimeout
	}
	if a.Constraints != nil && a.Constraints.TimeoutS > 0 {
		timeout = time.Duration(a.Constraints.TimeoutS) * time.Second
	}
	now := s.cfg.Now()
	rec := &relaytype.AskRecord{
		AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, AskType: a.AskType, Prompt: a.Prompt,
		ContextHash: a.ContextHash, ContextEnvelope: a.ContextEnvelope, Constraints: a.Constraints,
		RoleID: a.RoleID, Meta: a.Meta, Status: relaytype.StatusPending, Route: string(route),
		CreatedAt: now, DeadlineAt: now.Add(timeout),
	}
	var decided *relaytype.Answer
	if rules.r.Decider != nil {
		var r Route
		decided, r = rules.r.Decider.Decide(rec)
		if r != "" && decided == nil {
			switch {
			case r.Valid() && (r == RouteOrchestrator || rules.r.Answerers[r] != nil):
				route = r
			case r == RouteRunner && rules.r.Answerers[RouteHuman] != nil:
				// An escalation with no runner goes to a person.
				route = RouteHuman
			default:
				route = RouteOrchestrator
			}
			rec.Route = string(route)
		}
		if decided != nil {
			rec.Route = "policy"
		}
		if route == RouteRunner && (a.Constraints == nil || a.Constraints.TimeoutS == 0) {
			rec.DeadlineAt = now.Add(rules.r.RunnerTimeout)
		}
	}
	stored, created, job, err := s.store.AskInsert(ctx, &store.AskInsertParams{Ask: rec, PayloadHash: hash, Now: now, Attempt: attemptOf(ctx)})
	if err != nil {
		return nil, false, err
	}
	if !created {
		return stored, false, nil
	}
	s.log.Info("ask created", "ask_id", stored.AskID, "job_id", stored.JobID, "ask_type", stored.AskType, "route", stored.Route)
	s.cfg.OnChange(job)
	select {
	case s.sweepWake <- struct{}{}:
	default:
	}
	if decided != nil {
		decided.AskID, decided.JobID, decided.StepID = stored.AskID, stored.JobID, stored.StepID
		if _, _, err := s.Answer(ctx, decided); err != nil {
			return nil, false, fmt.Errorf("record policy answer: %w", err)
		}
		return stored, true, nil
	}
	if ans := rules.r.Answerers[route]; ans != nil {
		s.dispatch(ans, stored)
	}
	return stored, true, nil
}

// checkAskPolicy refuses, before anything is stored, an ask of a job
// whose execution.askPolicy is never, with an error wrapping
// relaytype.ErrAskPolicy. A job that cannot be read is left to the
// insert, which reports it.
func (s *Service) checkAskPolicy(ctx context.Context, jobID string) error {
	job, err := s.store.JobGet(ctx, &store.JobGetParams{ID: jobID})
	if err != nil {
		if errors.Is(err, relaytype.ErrJobNotFound) {
			return nil
		}
		return fmt.Errorf("read job %s: %w", jobID, err)
	}
	if job.Spec.Execution.AskPolicy == relaytype.AskPolicyNever {
		s.log.Info("ask refused: the job's askPolicy is never", "job_id", jobID)
		return fmt.Errorf("%w: job %s has execution.askPolicy %q, so the relay refuses its asks; decide without asking",
			relaytype.ErrAskPolicy, jobID, relaytype.AskPolicyNever)
	}
	return nil
}

// dispatch hands an ask to its answerer in the background and records the
// answer it returns (or an ERROR answer if it fails). The answerer runs
// under the service's lifetime: Stop cancels it, and an answerer that
// fails because the service is stopping leaves its ask pending in the
// store, unanswered, for the next relay or the orchestrator.
func (s *Service) dispatch(ans Answerer, a *relaytype.AskRecord) {
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		ctx, cancel := context.WithDeadline(s.life, a.DeadlineAt)
		defer cancel()
		out, err := ans.Answer(ctx, a)
		if err != nil && s.life.Err() != nil {
			s.log.Info("ask left pending: the relay is stopping", "ask_id", a.AskID, "route", a.Route, "why", err)
			return
		}
		if errors.Is(err, ErrDeferred) {
			s.deferAsk(context.WithoutCancel(ctx), a, err)
			return
		}
		if err != nil {
			out = &relaytype.Answer{AskID: a.AskID, JobID: a.JobID, Status: relaytype.StatusError, Error: err.Error()}
		}
		_, _, err = s.Answer(context.WithoutCancel(ctx), out)
		switch {
		case errors.Is(err, store.ErrAttemptOver):
			s.log.Info("answer dropped: the attempt that asked is over", "ask_id", a.AskID, "why", err)
		case err != nil && !errors.Is(err, relaytype.ErrAnswerConflict):
			s.log.Error("record answer", "ask_id", a.AskID, "err", err)
		}
	}()
}

// validateAnswer checks an answer's fields.
func validateAnswer(a *relaytype.Answer) error {
	switch {
	case a.Type != "" && a.Type != "Answer":
		return bad("type", `must be "Answer", not %q`, a.Type)
	case !uuidRE.MatchString(a.AskID):
		return bad("ask_id", "must be a UUID")
	case a.Status == "":
		return bad("status", "required")
	case !a.Status.ValidAnswer():
		return bad("status", "must be ANSWERED, REJECTED, TIMEOUT or ERROR, not %q", a.Status)
	case a.Status == relaytype.StatusAnswered && a.AnswerText == "" && len(a.AnswerJSON) == 0:
		return bad("answer_text", "an ANSWERED answer needs answer_text or answer_json")
	case len(a.AnswerText) > 1<<20:
		return bad("answer_text", "longer than 1 MiB")
	}
	if len(a.AnswerJSON) > 0 && !json.Valid(a.AnswerJSON) {
		return bad("answer_json", "is not valid JSON")
	}
	return nil
}

// Answer records the answer to an ask and wakes everyone waiting for it.
// created is false when the same answer was recorded before. An answer to
// an ask whose attempt of its job is over (the job ended, or its relay
// stopped or died and the job went back to the queue) is refused with a
// *store.AttemptOverError (code CONFLICT), and changes no job.
func (s *Service) Answer(ctx context.Context, a *relaytype.Answer) (*relaytype.AnswerRecord, bool, error) {
	if err := validateAnswer(a); err != nil {
		return nil, false, err
	}
	a.Type = "Answer"
	a.AskID = strings.ToLower(a.AskID)
	ask, err := s.store.AskGet(ctx, &store.AskGetParams{AskID: a.AskID})
	if err != nil {
		return nil, false, err
	}
	if a.JobID == "" {
		a.JobID = ask.JobID
	}
	if a.StepID == "" {
		a.StepID = ask.StepID
	}
	if a.Attestation != nil && a.Attestation.ContextHash == "" {
		a.Attestation.ContextHash = ask.ContextHash
	}
	hash, err := payloadHash(a)
	if err != nil {
		return nil, false, fmt.Errorf("hash answer: %w", err)
	}
	rec := &relaytype.AnswerRecord{
		AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: a.Status, AnswerText: a.AnswerText,
		AnswerJSON: a.AnswerJSON, Attestation: a.Attestation, Artifacts: a.Artifacts, PolicyTrace: a.PolicyTrace,
		Cacheable: a.Cacheable, AskBack: a.AskBack, Error: a.Error, Usage: a.Usage,
	}
	stored, created, job, err := s.store.AnswerInsert(ctx, &store.AnswerInsertParams{Answer: rec, PayloadHash: hash, Now: s.cfg.Now()})
	if err != nil {
		return nil, false, err
	}
	s.wake(stored.AskID)
	if created {
		s.log.Info("ask answered", "ask_id", stored.AskID, "job_id", stored.JobID, "status", stored.Status, "job_state", job.State)
		s.cfg.OnChange(job)
	}
	return stored, created, nil
}

// Get returns one ask.
func (s *Service) Get(ctx context.Context, askID string) (*relaytype.AskRecord, error) {
	return s.store.AskGet(ctx, &store.AskGetParams{AskID: strings.ToLower(askID)})
}

// List returns asks oldest first, optionally of one job and one status.
func (s *Service) List(ctx context.Context, jobID string, status relaytype.AnswerStatus) ([]*relaytype.AskRecord, error) {
	return s.store.AskList(ctx, &store.AskListParams{JobID: jobID, Status: status})
}

// AnswerOf returns the answer to an ask, or nil if it has none yet.
func (s *Service) AnswerOf(ctx context.Context, askID string) (*relaytype.AnswerRecord, error) {
	return s.store.AnswerGet(ctx, &store.AnswerGetParams{AskID: strings.ToLower(askID)})
}

// Wait returns the answer to an ask as soon as there is one, or nil when
// timeout passes first. An answer recorded by this process wakes the
// waiter at once.
func (s *Service) Wait(ctx context.Context, askID string, timeout time.Duration) (*relaytype.AnswerRecord, error) {
	askID = strings.ToLower(askID)
	ch := s.register(askID)
	defer s.unregister(askID)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(safetyRecheck)
	defer recheck.Stop()
	for {
		// Registered before looking, so an answer stored after the look
		// still closes ch.
		rec, err := s.AnswerOf(ctx, askID)
		if err != nil || rec != nil {
			return rec, err
		}
		if s.parked != nil {
			s.parked(askID)
		}
		select {
		case <-ch:
			ch = s.register(askID)
			s.unregister(askID)
		case <-recheck.C:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Service) register(askID string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiters[askID]
	if w == nil {
		w = &waitEntry{ch: make(chan struct{})}
		s.waiters[askID] = w
	}
	w.refs++
	return w.ch
}

func (s *Service) unregister(askID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.waiters[askID]; w != nil {
		w.refs--
		if w.refs <= 0 {
			delete(s.waiters, askID)
		}
	}
}

func (s *Service) wake(askID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.waiters[askID]; w != nil {
		close(w.ch)
		// Waiters still registered re-register on a fresh channel.
		w.ch = make(chan struct{})
	}
}

// Wake wakes the waiters of one ask to look at the store again, and the
// deadline loop to look at its deadline: another relay sharing the store
// created, deferred or answered it.
func (s *Service) Wake(askID string) {
	s.wake(strings.ToLower(askID))
	select {
	case s.sweepWake <- struct{}{}:
	default:
	}
}

// WakeAll wakes every parked waiter to look at the store again. The relay
// calls it when a job ends or its attempt ends (STALE, requeued): the
// store answers the attempt's pending asks with ERROR in the same
// transaction, without passing through Answer.
func (s *Service) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waiters {
		close(w.ch)
		w.ch = make(chan struct{})
	}
}

// Start runs the loop that answers overdue asks with TIMEOUT.
func (s *Service) Start(ctx context.Context) error {
	s.startStop.Lock()
	defer s.startStop.Unlock()
	if s.cancel != nil {
		return errors.New("ask: already started")
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.deadlineLoop(ctx)
	}()
	return nil
}

// Stop ends the deadline loop, cancels the answerers in flight and waits
// for them for at most Config.StopGrace. Their asks stay pending in the
// store. Safe to call twice.
func (s *Service) Stop() {
	s.startStop.Lock()
	cancel, done := s.cancel, s.done
	s.startStop.Unlock()
	s.endLife()
	if cancel != nil {
		cancel()
		<-done
	}
	finished := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(finished)
	}()
	t := time.NewTimer(s.cfg.StopGrace)
	defer t.Stop()
	select {
	case <-finished:
	case <-t.C:
		s.log.Warn("answerers still running after the stop grace; their asks stay pending", "grace", s.cfg.StopGrace)
	}
}

func (s *Service) deadlineLoop(ctx context.Context) {
	for {
		wait := maxSweepSleep
		if next, err := s.expire(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("time out asks", "err", err)
			wait = time.Second
		} else if !next.IsZero() {
			wait = min(max(time.Until(next)+time.Millisecond, 5*time.Millisecond), maxSweepSleep)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.sweepWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// expire answers overdue asks with TIMEOUT and returns the next deadline.
// Only asks of the current attempt of an active job are pending, and the
// store refuses a TIMEOUT for an ask whose attempt ended meanwhile, so a
// deadline only ever fails the attempt that asked.
func (s *Service) expire(ctx context.Context) (time.Time, error) {
	due, err := s.store.AskDue(ctx, &store.AskDueParams{Now: s.cfg.Now()})
	if err != nil {
		return time.Time{}, err
	}
	for _, a := range due {
		waited := a.DeadlineAt.Sub(a.CreatedAt)
		if waited >= time.Second {
			waited = waited.Round(time.Second)
		} else {
			waited = waited.Round(time.Millisecond) // a runner's short deadline
		}
		_, _, err := s.Answer(ctx, &relaytype.Answer{
			AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: relaytype.StatusTimeout,
			Error:       fmt.Sprintf("no answer within %s", waited),
			Attestation: &relaytype.Attestation{ContextHash: a.ContextHash, AnsweredBy: "relay"},
		})
		if err != nil && !errors.Is(err, relaytype.ErrAnswerConflict) {
			return time.Time{}, err
		}
	}
	return s.store.AskNextDeadline(ctx)
}
