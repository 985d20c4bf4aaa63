package relay

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Defaults of Config.
const (
	DefaultMaxConcurrency    = 3
	DefaultLeaseTTL          = 60 * time.Second
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultIdempotencyWindow = 24 * time.Hour
	DefaultPollInterval      = 2 * time.Second
	DefaultCancelWait        = 10 * time.Second
	DefaultMaxArtifactBytes  = 64 << 20
	maxSweepSleep            = 5 * time.Second
)

// Handler admits and runs jobs. The relay owns the queue and the state
// machine; the Handler owns what a job does. Pipeline is the production
// Handler; benchmarks and tests plug in others.
type Handler interface {
	// Admit checks a validated spec before it is queued and returns the
	// executor name and the pinned baseline commit to record with the job.
	Admit(ctx context.Context, spec *relaytype.JobSpec) (executor, baseline string, err error)
	// Handle runs a claimed job until it finishes or ctx ends.
	Handle(ctx context.Context, job *relaytype.Job) Outcome
}

// ProjectAdmitter is the optional part of a Handler that serves several
// projects: the relay admits a submit through AdmitIn, with the project it
// was submitted from, instead of Admit.
type ProjectAdmitter interface {
	AdmitIn(ctx context.Context, project string, spec *relaytype.JobSpec) (executor, baseline string, err error)
}

// Outcome is what a Handler reports for one attempt of a job.
type Outcome struct {
	// State is SUCCEEDED or FAILED, or empty when the run was interrupted
	// by its context before it could finish.
	State     relaytype.JobState
	Reason    relaytype.FailReason
	Summary   string
	Artifacts []*relaytype.Artifact
	// Usage is what the run spent, when the executor reports it.
	Usage *relaytype.Usage
	// SessionID is the coding agent's session, for follow-ups.
	SessionID string
}

// Config configures a Relay. Zero values take the documented defaults.
type Config struct {
	// Store persists jobs. Required.
	Store store.Store
	// Handler admits and runs jobs. Required.
	Handler Handler
	// Artifacts is where artifact files live; ReadArtifact reads from it.
	Artifacts ArtifactDir
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// MaxConcurrency is the number of jobs run at once. Defaults to 3.
	MaxConcurrency int
	// LeaseTTL is how long a claim lasts without a heartbeat. Defaults to 60s.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often a worker renews its lease. Defaults to 15s.
	HeartbeatInterval time.Duration
	// IdempotencyWindow is how long a SUCCEEDED job answers for its
	// idempotency key. Defaults to 24h.
	IdempotencyWindow time.Duration
	// PollInterval is the safety-net claim poll for jobs queued by other
	// processes; local submits wake a worker at once. Defaults to 2s.
	PollInterval time.Duration
	// CancelWait bounds how long Cancel waits for a local executor to die.
	// Defaults to 10s.
	CancelWait time.Duration
	// Projects, when set, returns the projects whose jobs this relay may
	// claim; jobs of other projects are left to relays that serve them.
	// Defaults to none (every project's jobs).
	Projects func() []string
	// Executors, when set, returns the executors this relay can run; jobs
	// of other executors are left to relays that have them. Defaults to
	// none (every executor).
	Executors func() []string
	// Host is this relay's host name: it binds the jobs submitted here
	// whose repository is a local path, and only jobs bound to it (or to
	// no host) are claimed. Defaults to os.Hostname().
	Host string
	// MaxArtifactBytes caps the bytes of one artifact handed to a store
	// that keeps artifact contents (store.ArtifactContents), so that
	// every relay sharing it can serve them; a larger artifact is kept
	// only in this relay's Artifacts directory. Defaults to 64 MiB.
	MaxArtifactBytes int64
	// OnRemote, when set, hears every change another process sharing the
	// store committed (see store.Notifier), after the relay acted on it:
	// the ask service wakes the waiters of an ask, the webhook worker
	// looks at the outbox, and a NotifyResync means anything may have
	// changed.
	OnRemote func(store.Notification)
	// InstanceID names this process as lease owner. Defaults to
	// host:pid:random.
	InstanceID string
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with zero fields set to defaults.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.CancelWait == 0 {
		c.CancelWait = DefaultCancelWait
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.MaxArtifactBytes == 0 {
		c.MaxArtifactBytes = DefaultMaxArtifactBytes
	}
	if c.InstanceID == "" {
		c.InstanceID = fmt.Sprintf("%s:%d:%s", c.Host, os.Getpid(), rand.Text()[:8])
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("relay: Store is required")
	case c.Handler == nil:
		return errors.New("relay: Handler is required")
	case c.MaxConcurrency < 1:
		return fmt.Errorf("relay: MaxConcurrency must be ≥ 1, got %d", c.MaxConcurrency)
	case c.HeartbeatInterval >= c.LeaseTTL:
		return fmt.Errorf("relay: HeartbeatInterval (%s) must be shorter than LeaseTTL (%s)", c.HeartbeatInterval, c.LeaseTTL)
	}
	return nil
}

// Relay runs the job lifecycle.
type Relay struct {
	cfg   Config
	store store.Store
	log   *slog.Logger

	wake      chan struct{} // a job may be claimable
	sweepWake chan struct{}
	slotFreed chan struct{}
	// sweepDue is the store deadline (unix ns) the sweeper sleeps until;
	// 0 while it sweeps. A submit wakes it only for an earlier deadline,
	// so a stream of submits does not make it re-read the next deadline
	// for every job.
	sweepDue atomic.Int64

	mu      sync.Mutex
	running map[string]*worker
	subs    map[chan Change]struct{}
	// subsClosed is set once Stop has closed every subscription: later
	// ones are closed from the start.
	subsClosed bool

	// draining stops claims (Drain).
	draining atomic.Bool

	startStop sync.Mutex
	cancel    context.CancelFunc
	done      chan struct{}
	wg        sync.WaitGroup
}

// New returns a Relay; call Start to begin running jobs.
func New(cfg Config) (*Relay, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Relay{
		cfg:       cfg,
		store:     cfg.Store,
		log:       cfg.Logger,
		wake:      make(chan struct{}, 1),
		sweepWake: make(chan struct{}, 1),
		slotFreed: make(chan struct{}, 1),
		running:   map[string]*worker{},
		subs:      map[chan Change]struct{}{},
	}, nil
}

// InstanceID returns the lease owner name of this relay.
func (r *Relay) InstanceID() string { return r.cfg.InstanceID }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Start launches the dispatcher and the sweeper. It returns at once.
func (r *Relay) Start(ctx context.Context) error {
	r.startStop.Lock()
	defer r.startStop.Unlock()
	if r.cancel != nil {
		return errors.New("relay: already started")
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.done = make(chan struct{})
	r.reclaimDead(ctx)
	// Listening starts first: a relay that cannot hear the others does
	// not start at all (and leaves nothing running).
	var remote <-chan store.Notification
	if n, ok := store.As[store.Notifier](r.store); ok {
		ch, err := n.Listen(ctx)
		if err != nil {
			cancel()
			r.cancel = nil
			return fmt.Errorf("relay: listen for changes of other relays: %w", err)
		}
		remote = ch
	}
	loops := sync.WaitGroup{}
	loops.Add(2)
	go func() { defer loops.Done(); r.dispatchLoop(ctx) }()
	go func() { defer loops.Done(); r.sweepLoop(ctx) }()
	if remote != nil {
		loops.Add(1)
		go func() { defer loops.Done(); r.listenLoop(ctx, remote) }()
	}
	go func() {
		loops.Wait()
		r.wg.Wait()
		close(r.done)
	}()
	return nil
}

// Stop stops claiming, stops running executors (their jobs go STALE and
// are retried by the next relay to run), waits for the workers and closes
// every subscription's channel. It is safe to call more than once.
func (r *Relay) Stop() {
	r.startStop.Lock()
	cancel, done := r.cancel, r.done
	r.startStop.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	r.closeSubscriptions()
}

// closeSubscriptions closes the channel of every subscription, so that
// their readers return: a stopped relay publishes nothing more.
func (r *Relay) closeSubscriptions() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subsClosed {
		return
	}
	r.subsClosed = true
	for ch := range r.subs {
		close(ch)
		delete(r.subs, ch)
	}
}

// Drain stops claiming jobs, waits up to grace for the running ones to
// finish, then stops the relay: jobs still running are released to STALE
// and retried by the next relay to run. It is safe to call more than once
// and together with Stop.
func (r *Relay) Drain(grace time.Duration) {
	r.draining.Store(true)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.runningCount() > 0 {
		select {
		case <-deadline.C:
			r.log.Info("drain grace over, releasing running jobs", "running", r.runningCount(), "grace", grace)
			r.Stop()
			return
		case <-tick.C:
		}
	}
	r.Stop()
}

// Wake makes the dispatcher try to claim at once: something it may now
// claim appeared (a project it can run was opened).
func (r *Relay) Wake() { signal(r.wake) }

// Draining reports whether Drain has been called.
func (r *Relay) Draining() bool { return r.draining.Load() }

// Running returns how many jobs this relay runs now.
func (r *Relay) Running() int { return r.runningCount() }

// Submit validates spec, admits it through the Handler and queues it in
// the empty project. It returns the existing job with created=false when
// the idempotency key is still live.
func (r *Relay) Submit(ctx context.Context, spec *relaytype.JobSpec) (*relaytype.Job, bool, error) {
	return r.enqueue(ctx, spec, "", "")
}

// SubmitTo is Submit for a job of project: the job runs only with that
// project's executors, and its idempotency key is scoped to the project.
func (r *Relay) SubmitTo(ctx context.Context, project string, spec *relaytype.JobSpec) (*relaytype.Job, bool, error) {
	return r.enqueue(ctx, spec, "", project)
}

// enqueue validates spec, admits it through the Handler, pins its
// baseline, inserts it into project (a follow-up of parentID when set)
// and wakes the dispatcher for a new job.
func (r *Relay) enqueue(ctx context.Context, spec *relaytype.JobSpec, parentID, project string) (*relaytype.Job, bool, error) {
	spec.ApplyDefaults()
	if err := spec.Validate(); err != nil {
		return nil, false, err
	}
	var executor, baseline string
	var err error
	if pa, ok := r.cfg.Handler.(ProjectAdmitter); ok {
		executor, baseline, err = pa.AdmitIn(ctx, project, spec)
	} else {
		executor, baseline, err = r.cfg.Handler.Admit(ctx, spec)
	}
	if err != nil {
		return nil, false, err
	}
	spec.Repo.BaselineCommit = baseline
	host := ""
	if spec.Repo.Type == relaytype.RepoLocal {
		// The path exists on this machine only.
		host = r.cfg.Host
	}
	job, created, err := r.store.JobInsert(ctx, &store.JobInsertParams{
		Host:              host,
		ID:                NewJobID(),
		Spec:              spec,
		Executor:          executor,
		BaselineCommit:    baseline,
		Now:               r.cfg.Now(),
		IdempotencyWindow: r.cfg.IdempotencyWindow,
		ParentJobID:       parentID,
		Project:           project,
	})
	if err != nil {
		return nil, false, fmt.Errorf("submit: %w", err)
	}
	if created {
		r.log.Info("job submitted", "job_id", job.ID, "priority", job.Priority, "executor", executor, "parent", parentID, "project", project)
		r.publishJob(job)
		signal(r.wake)
		if job.ExpiresAt.UnixNano() < r.sweepDue.Load() || r.sweepDue.Load() == 0 {
			signal(r.sweepWake)
		}
	}
	return job, created, nil
}

// Followup starts a job that continues a finished one: same repository,
// baseline and executor, the parent's patch applied first and the
// parent's agent session resumed where the executor records one. Its
// patch.diff is against the original baseline; incremental.diff holds its
// own change.
func (r *Relay) Followup(ctx context.Context, parentID, instruction string) (*relaytype.Job, error) {
	if strings.TrimSpace(instruction) == "" {
		return nil, &relaytype.RequestError{Field: "instruction", Message: "required"}
	}
	if n := len([]rune(instruction)); n > relaytype.MaxDescriptionLen {
		return nil, &relaytype.RequestError{Field: "instruction", Message: fmt.Sprintf("is %d characters, at most %d allowed", n, relaytype.MaxDescriptionLen)}
	}
	parent, err := r.Get(ctx, parentID)
	if err != nil {
		return nil, err
	}
	if !parent.State.Terminal() {
		return nil, fmt.Errorf("job %s is %s; follow up once it has finished: %w", parent.ID, parent.State, relaytype.ErrIllegalTransition)
	}
	spec := parent.Spec
	title := "Follow-up: " + parent.Spec.Task.Title
	if rs := []rune(title); len(rs) > relaytype.MaxTitleLen {
		title = string(rs[:relaytype.MaxTitleLen-1]) + "…"
	}
	spec.Task = relaytype.Task{
		Title: title,
		Description: instruction + fmt.Sprintf("\n\nThis continues job %s (%q). Its changes are already in the working tree; build on them.",
			parent.ID, parent.Spec.Task.Title),
	}
	spec.Execution.Executor = parent.Executor
	spec.IdempotencyKey = fmt.Sprintf("%s/followup/%s", parent.ID, NewJobID())
	spec.Repo.BaselineCommit = parent.BaselineCommit
	job, _, err := r.enqueue(ctx, &spec, parent.ID, parent.Project)
	if err != nil {
		return nil, err
	}
	r.log.Info("follow-up submitted", "job_id", job.ID, "parent", parent.ID, "session", parent.SessionID)
	return job, nil
}

// Get returns one job.
func (r *Relay) Get(ctx context.Context, id string) (*relaytype.Job, error) {
	return r.store.JobGet(ctx, &store.JobGetParams{ID: id})
}

// List returns a page of the jobs of every project, newest first, and
// the total.
func (r *Relay) List(ctx context.Context, state relaytype.JobState, limit, offset int) ([]*relaytype.Job, int, error) {
	return r.ListJobs(ctx, ListParams{State: state, Limit: limit, Offset: offset})
}

// ListParams filter and page Relay.ListJobs.
type ListParams struct {
	// State keeps only jobs in this state when not empty.
	State relaytype.JobState
	// Project, when not nil, keeps only the jobs of that project.
	Project *string
	// Limit caps the page; zero or less means no cap.
	Limit int
	// Offset skips that many jobs.
	Offset int
}

// ListJobs returns a page of jobs, newest first, and the total.
func (r *Relay) ListJobs(ctx context.Context, p ListParams) ([]*relaytype.Job, int, error) {
	return r.store.JobList(ctx, &store.JobListParams{State: p.State, Project: p.Project, Limit: p.Limit, Offset: p.Offset})
}

// Events returns a job's audit log after afterID.
func (r *Relay) Events(ctx context.Context, id string, afterID int64, limit int) ([]*relaytype.Event, error) {
	if _, err := r.Get(ctx, id); err != nil {
		return nil, err
	}
	return r.store.EventList(ctx, &store.EventListParams{JobID: id, AfterID: afterID, Limit: limit})
}

// Artifacts returns a job's artifact metadata.
func (r *Relay) Artifacts(ctx context.Context, id string) ([]*relaytype.Artifact, error) {
	return r.store.ArtifactList(ctx, &store.ArtifactListParams{JobID: id})
}

// Cancel stops a job: a queued job never runs, a running one has its
// executor's process group killed. It waits (up to CancelWait) for a local
// executor to exit so that no process of the job is left when it returns.
func (r *Relay) Cancel(ctx context.Context, id string) (*relaytype.Job, error) {
	job, err := r.store.JobTransition(ctx, &store.JobTransitionParams{
		ID: id, To: relaytype.StateCanceled, Now: r.cfg.Now(), Summary: "canceled by request",
	})
	if err != nil {
		return nil, err
	}
	r.log.Info("job canceled", "job_id", id)
	r.publish(Change{JobID: id, State: job.State, StateVersion: job.StateVersion})
	r.mu.Lock()
	w := r.running[id]
	r.mu.Unlock()
	if w != nil {
		w.cancel(errCanceled)
		select {
		case <-w.done:
		case <-time.After(r.cfg.CancelWait):
			r.log.Warn("executor still running after cancel", "job_id", id, "waited", r.cfg.CancelWait)
		case <-ctx.Done():
		}
	}
	return job, nil
}

// Subscribe returns a channel of job changes and a function that ends the
// subscription. A subscriber that falls more than its buffer behind misses
// changes rather than stalling the relay. The channel is closed when the
// relay stops (at once if it has stopped already); ending the
// subscription does not close it.
func (r *Relay) Subscribe() (<-chan Change, func()) {
	ch := make(chan Change, 1024)
	r.mu.Lock()
	if r.subsClosed {
		close(ch)
	} else {
		r.subs[ch] = struct{}{}
	}
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, ch)
			r.mu.Unlock()
		})
	}
}

func (r *Relay) publish(c Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- c:
		default:
			r.log.Warn("subscriber too slow, change dropped", "job_id", c.JobID)
		}
	}
}

// Notify tells the relay and its subscribers about a change made outside
// it (an ask created or answered): the job's new state is published, and
// if the job ended while this relay runs it, its executor is stopped.
func (r *Relay) Notify(job *relaytype.Job, asks bool) {
	r.publish(Change{JobID: job.ID, State: job.State, StateVersion: job.StateVersion, Asks: asks})
	if !job.State.Terminal() {
		return
	}
	r.mu.Lock()
	w := r.running[job.ID]
	r.mu.Unlock()
	if w != nil {
		w.cancel(errEnded)
	}
}

// AppendLog stores a chunk of executor output as a "log" event of the job
// and tells subscribers (SSE streams, resource subscriptions).
// Called with the context of a run, the write is fenced by the run's
// lease and attempt.
func (r *Relay) AppendLog(ctx context.Context, jobID string, chunk []byte) error {
	payload, err := json.Marshal(map[string]string{"text": string(chunk)})
	if err != nil {
		return err
	}
	p := &store.EventAppendParams{JobID: jobID, Type: relaytype.EventLog, Payload: payload, Now: r.cfg.Now()}
	if t := trackerOf(ctx); t != nil && t.jobID == jobID {
		p.Owner, p.Attempt = r.cfg.InstanceID, t.attempt
	}
	if _, err := r.store.EventAppend(ctx, p); err != nil {
		return err
	}
	r.publish(Change{JobID: jobID, Log: true})
	return nil
}

func (r *Relay) publishJob(j *relaytype.Job) {
	r.publish(Change{JobID: j.ID, State: j.State, StateVersion: j.StateVersion})
}

// NewJobID returns a new time-ordered job id: "job_" and 26 Crockford
// base32 characters (48 bits of milliseconds, 80 random bits).
func NewJobID() string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	out := make([]byte, 26)
	// 128 bits → 26 base32 digits, most significant first.
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[i+8])
	}
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return "job_" + string(out)
}
