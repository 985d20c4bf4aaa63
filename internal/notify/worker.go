// Package notify delivers the relay's outbox: the messages the store
// enqueues with a job's terminal transition (see store's The outbox), and
// those a Planner enqueues for a project's ntfy topic and Slack webhook
// (job ends, asks that wait) and for ask.waiting webhooks. Chat messages
// are POSTed as JSON as they are. Webhooks are POSTed as JSON and signed in the Standard Webhooks scheme
// (webhook-id, webhook-timestamp, webhook-signature) with the secret of the
// job's project.
//
// A Worker claims due messages under a lease, so two workers never send
// the same message at once, acknowledges those its target answered with a
// 2xx status, and retries the others with exponential backoff and jitter
// until they are MaxAge old, when it gives up on them (logged). Delivery
// is at least once: a worker that dies after sending and before
// acknowledging leaves the message to be sent again once its lease
// lapses, with the same webhook-id, by which receivers deduplicate.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

// SecretFunc returns the webhook signing key of a project.
type SecretFunc func(ctx context.Context, project string) ([]byte, error)

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxAge       = 24 * time.Hour
	DefaultRetryMin     = 5 * time.Second
	DefaultRetryMax     = time.Hour
	DefaultPollInterval = 30 * time.Second
	DefaultBatch        = 8
	// leaseMargin is added to Timeout for a claim's lease, so that a
	// lease never lapses while its attempt may still be under way. A
	// worker killed mid-attempt leaves its claims to the next one after
	// Timeout plus this margin.
	leaseMargin = 5 * time.Second
)

// Config configures a Worker.
type Config struct {
	// Store holds the outbox. Required.
	Store store.Store
	// Secret returns the signing key of a project. Required.
	Secret SecretFunc
	// Projects, when set, limits the worker to the messages of these
	// projects (a standalone relay). Defaults to every project.
	Projects func() []string
	// Client sends the webhooks; redirects are never followed. Defaults
	// to a client with no other settings.
	Client *http.Client
	// Timeout bounds one delivery attempt. Defaults to 10 s.
	Timeout time.Duration
	// MaxAge is how long after it was enqueued a message is given up on.
	// Defaults to 24 h.
	MaxAge time.Duration
	// RetryMin and RetryMax bound the backoff between attempts: RetryMin
	// after the first failure, doubling up to RetryMax, each with jitter.
	// Default to 5 s and 1 h.
	RetryMin, RetryMax time.Duration
	// PollInterval is the longest the worker sleeps when it knows of no
	// due message (others may enqueue into a shared database). Defaults
	// to 30 s.
	PollInterval time.Duration
	// Batch is how many messages are claimed and sent at once. Defaults
	// to 8.
	Batch int
	// Owner names this worker's leases. Defaults to a unique name.
	Owner string
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
	// Jitter returns a random duration in [0, d). Defaults to a uniform
	// random choice.
	Jitter func(d time.Duration) time.Duration
}

// Worker delivers outbox messages.
type Worker struct {
	cfg  Config
	wake chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Worker; call Start to run it.
func New(cfg Config) (*Worker, error) {
	if cfg.Store == nil {
		return nil, errors.New("notify: Store is required")
	}
	if cfg.Secret == nil {
		return nil, errors.New("notify: Secret is required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	// A redirect would resend a signed body to a target nobody
	// configured; the 3xx is an answer like any other non-2xx.
	client := *cfg.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.Client = &client
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Owner == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("notify:%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return time.Duration(mrand.Int64N(int64(d)))
		}
	}
	return &Worker{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Start runs the worker until Stop or until ctx ends. Messages left by an
// earlier process are due at once.
func (w *Worker) Start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		w.loop(ctx)
	}()
}

// Stop ends the worker and waits for it: attempts under way are cut, and
// their messages are sent again by the next worker.
func (w *Worker) Stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Wake makes a running worker look for due messages now (a job just
// ended).
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Worker) loop(ctx context.Context) {
	for {
		n, err := w.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.cfg.Logger.Warn("outbox delivery", "err", err)
		}
		if n == w.cfg.Batch {
			continue // maybe more due
		}
		wait := w.cfg.PollInterval
		if next, err := w.cfg.Store.OutboxNextDue(ctx); err == nil && !next.IsZero() {
			// Messages another worker holds, or of projects this one does
			// not serve, may be due and still not claimable: never spin.
			wait = min(wait, max(next.Sub(w.cfg.Now()), time.Second))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// RunOnce claims the messages due now (up to Batch), delivers them
// concurrently and records each outcome. It returns how many it claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	p := &store.OutboxClaimParams{Owner: w.cfg.Owner, Now: w.cfg.Now(), LeaseTTL: w.cfg.Timeout + leaseMargin,
		Limit: w.cfg.Batch, Kinds: []string{store.OutboxKindWebhook, KindNtfy, KindSlack}}
	if w.cfg.Projects != nil {
		p.Projects = w.cfg.Projects()
		if p.Projects == nil {
			p.Projects = []string{}
		}
	}
	msgs, err := w.cfg.Store.OutboxClaim(ctx, p)
	if err != nil {
		return 0, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.deliver(ctx, m); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(msgs), errors.Join(errs...)
}

// deliver makes one attempt at m, which this worker holds, and records
// the outcome.
func (w *Worker) deliver(ctx context.Context, m *store.OutboxMessage) error {
	log := w.cfg.Logger.With("message_id", m.ID, "job_id", m.JobID, "attempt", m.Attempts)
	// The outcome is recorded even when the worker is stopping.
	settle := context.WithoutCancel(ctx)
	if age := w.cfg.Now().Sub(m.CreatedAt); age >= w.cfg.MaxAge {
		return w.giveUp(settle, log, m, fmt.Sprintf("not delivered within %s (last error: %s)", w.cfg.MaxAge, m.LastError))
	}
	attemptErr := w.send(ctx, m)
	now := w.cfg.Now()
	if attemptErr == nil {
		if err := w.cfg.Store.OutboxAck(settle, &store.OutboxAckParams{ID: m.ID, Owner: w.cfg.Owner, Now: now}); err != nil {
			return fmt.Errorf("acknowledge %s: %w", m.ID, err)
		}
		log.Info("webhook delivered", "target_host", hostOf(m.Target))
		return nil
	}
	if ctx.Err() != nil {
		// Stopping: the message is due again at once for the next worker.
		next := now
		why := "interrupted: the relay stopped"
		switch {
		case strings.HasPrefix(m.LastError, why):
			why = m.LastError
		case m.LastError != "":
			why += " (last error: " + m.LastError + ")"
		}
		return w.retry(settle, m, now, next, why)
	}
	next := now.Add(w.backoff(m.Attempts))
	if next.Sub(m.CreatedAt) >= w.cfg.MaxAge {
		return w.giveUp(settle, log, m, fmt.Sprintf("not delivered within %s after %d attempts: %v", w.cfg.MaxAge, m.Attempts, attemptErr))
	}
	log.Warn("webhook delivery failed, will retry", "target_host", hostOf(m.Target), "err", attemptErr,
		"next_attempt_at", next)
	return w.retry(settle, m, now, next, attemptErr.Error())
}

func (w *Worker) retry(ctx context.Context, m *store.OutboxMessage, now, next time.Time, why string) error {
	if err := w.cfg.Store.OutboxRetry(ctx, &store.OutboxRetryParams{ID: m.ID, Owner: w.cfg.Owner, Now: now,
		NextAttemptAt: next, Error: why}); err != nil {
		return fmt.Errorf("reschedule %s: %w", m.ID, err)
	}
	return nil
}

func (w *Worker) giveUp(ctx context.Context, log *slog.Logger, m *store.OutboxMessage, why string) error {
	log.Error("webhook given up", "target_host", hostOf(m.Target), "reason", why)
	if err := w.cfg.Store.OutboxGiveUp(ctx, &store.OutboxGiveUpParams{ID: m.ID, Owner: w.cfg.Owner, Now: w.cfg.Now(),
		Error: why}); err != nil {
		return fmt.Errorf("give up %s: %w", m.ID, err)
	}
	return nil
}

// backoff returns the wait after the attempt-th failed attempt:
// RetryMin·2^(attempt-1), at most RetryMax, of which a random half is
// taken off (so that retries of many messages spread out).
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.cfg.RetryMin
	for i := 1; i < attempt && d < w.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, w.cfg.RetryMax)
	return d - w.cfg.Jitter(d/2)
}

// send POSTs a webhook once; a nil error means the target answered 2xx.
func (w *Worker) send(ctx context.Context, m *store.OutboxMessage) error {
	switch m.Kind {
	case store.OutboxKindWebhook, KindNtfy, KindSlack:
	default:
		return fmt.Errorf("unknown message kind %q", m.Kind)
	}
	// The whole attempt, the secret's lookup included, fits in the lease.
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Target, bytes.NewReader(m.Payload))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mcp-task-relay")
	if m.Kind == store.OutboxKindWebhook {
		key, err := w.cfg.Secret(ctx, m.Project)
		if err != nil {
			return fmt.Errorf("webhook secret of project %s: %w", m.Project, err)
		}
		ts := w.cfg.Now()
		req.Header.Set(HeaderID, m.ID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(HeaderSignature, Sign(key, m.ID, ts, m.Payload))
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("POST: %w", redact(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST: HTTP %d", resp.StatusCode)
	}
	return nil
}
