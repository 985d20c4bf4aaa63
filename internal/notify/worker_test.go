package notify_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/notify"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// secret is a Standard Webhooks secret: "whsec_" and the base64 key.
var secret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// receiver is a webhook endpoint that verifies every request with the
// Standard Webhooks library and answers 500 to the first failFirst
// requests.
type receiver struct {
	wh *standardwebhooks.Webhook

	mu        sync.Mutex
	failFirst int
	requests  int
	acked     map[string]int // 2xx answers by webhook-id
	bodies    map[string][]byte
	inFlight  map[string]int
	overlap   bool
	badSig    int
}

func newReceiver(t *testing.T, failFirst int) (*receiver, *httptest.Server) {
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	r := &receiver{wh: wh, failFirst: failFirst, acked: map[string]int{}, bodies: map[string][]byte{}, inFlight: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.requests++
	n := r.requests
	if r.inFlight[id] > 0 {
		r.overlap = true
	}
	r.inFlight[id]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[id]--
		r.mu.Unlock()
	}()
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if n <= r.failFirst {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	r.mu.Lock()
	r.acked[id]++
	r.bodies[id] = body
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() (requests int, acked map[string]int, badSig int, overlap bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	acked = map[string]int{}
	for k, v := range r.acked {
		acked[k] = v
	}
	return r.requests, acked, r.badSig, r.overlap
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "relay.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// endJob inserts a job that notifies target and cancels it, which
// enqueues its webhook.
func endJob(t *testing.T, s store.Store, id, target string) {
	t.Helper()
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/r"}, Task: relaytype.Task{Title: "t", Description: "d"},
		IdempotencyKey: id, Notify: &relaytype.Notify{Webhook: target}}
	spec.ApplyDefaults()
	now := time.Now()
	_, _, err := s.JobInsert(t.Context(), &store.JobInsertParams{ID: id, Spec: spec, Executor: "x", Now: now, Project: "/p"})
	require.NoError(t, err)
	_, err = s.JobTransition(t.Context(), &store.JobTransitionParams{ID: id, To: relaytype.StateCanceled, Now: now, Summary: "canceled by test"})
	require.NoError(t, err)
}

func staticSecret() notify.SecretFunc {
	return func(context.Context, string) ([]byte, error) { return notify.ParseSecret(secret) }
}

func newWorker(t *testing.T, s store.Store, mutate func(*notify.Config)) *notify.Worker {
	t.Helper()
	cfg := notify.Config{Store: s, Secret: staticSecret(), RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, Timeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	w, err := notify.New(cfg)
	require.NoError(t, err)
	return w
}

// waitFor polls cond with a generous limit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func outbox(t *testing.T, s store.Store, jobID string) *store.OutboxMessage {
	t.Helper()
	msgs, err := s.OutboxList(context.Background(), &store.OutboxListParams{JobID: jobID})
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	return msgs[0]
}

func TestRetriesThenOneAcknowledgedDelivery(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, 3)
	s := openStore(t)
	endJob(t, s, "job_retry", srv.URL+"/hook?token=abc")
	w := newWorker(t, s, nil)
	w.Start(t.Context())
	defer w.Stop()
	waitFor(t, "the delivery", func() bool { return outbox(t, s, "job_retry").Status == store.OutboxDelivered })

	requests, acked, badSig, overlap := rcv.snapshot()
	require.Equal(t, 4, requests, "three refusals, then the delivery")
	require.Zero(t, badSig, "every request carries a valid Standard Webhooks signature")
	require.False(t, overlap)
	m := outbox(t, s, "job_retry")
	require.Equal(t, map[string]int{m.ID: 1}, acked, "exactly one acknowledged delivery")
	require.Equal(t, 4, m.Attempts)
	require.NotNil(t, m.DoneAt)

	var n store.JobNotification
	require.NoError(t, json.Unmarshal(rcv.bodies[m.ID], &n))
	require.Equal(t, "job.canceled", n.Type)
	require.Equal(t, "job_retry", n.Data.JobID)
	require.Equal(t, "/p", n.Data.Project)
	require.Equal(t, relaytype.StateCanceled, n.Data.State)
	require.Equal(t, "canceled by test", n.Data.Summary)
}

func TestWrongSecretIsRejectedByReceiver(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, 0)
	s := openStore(t)
	endJob(t, s, "job_wrongkey", srv.URL)
	w := newWorker(t, s, func(c *notify.Config) {
		c.Secret = func(context.Context, string) ([]byte, error) { return []byte("another key of sixteen+ bytes"), nil }
		c.MaxAge = 300 * time.Millisecond
	})
	w.Start(t.Context())
	defer w.Stop()
	waitFor(t, "giving up", func() bool { return outbox(t, s, "job_wrongkey").Status == store.OutboxExpired })
	requests, acked, badSig, _ := rcv.snapshot()
	require.Empty(t, acked)
	require.Equal(t, requests, badSig)
	require.GreaterOrEqual(t, requests, 2, "retried before giving up")
	m := outbox(t, s, "job_wrongkey")
	require.Contains(t, m.LastError, "HTTP 401")
	require.NotContains(t, m.LastError, "token", "no URL in the recorded error")
}

func TestPendingMessagesSurviveARestart(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, 1<<30) // refuses until told otherwise
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.db")
	s1, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	require.NoError(t, err)
	endJob(t, s1, "job_restart", srv.URL)
	w1 := newWorker(t, s1, nil)
	w1.Start(t.Context())
	waitFor(t, "two refused attempts", func() bool { n, _, _, _ := rcv.snapshot(); return n >= 2 })
	w1.Stop()
	require.NoError(t, s1.Close())

	rcv.mu.Lock()
	rcv.failFirst = 0
	rcv.mu.Unlock()
	s2, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	w2 := newWorker(t, s2, nil)
	w2.Start(t.Context())
	defer w2.Stop()
	waitFor(t, "the delivery", func() bool { return outbox(t, s2, "job_restart").Status == store.OutboxDelivered })
	_, acked, badSig, _ := rcv.snapshot()
	require.Zero(t, badSig)
	require.Equal(t, map[string]int{outbox(t, s2, "job_restart").ID: 1}, acked)
}

func TestTwoWorkersNeverSendTheSameMessageAtOnce(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, 2)
	s := openStore(t)
	for _, id := range []string{"job_a", "job_b", "job_c", "job_d"} {
		endJob(t, s, id, srv.URL)
	}
	for range 2 {
		w := newWorker(t, s, func(c *notify.Config) { c.Batch = 1 })
		w.Start(t.Context())
		defer w.Stop()
	}
	waitFor(t, "all deliveries", func() bool {
		msgs, err := s.OutboxList(context.Background(), &store.OutboxListParams{Status: store.OutboxDelivered})
		require.NoError(t, err)
		return len(msgs) == 4
	})
	_, acked, badSig, overlap := rcv.snapshot()
	require.Zero(t, badSig)
	require.False(t, overlap, "a message was in flight twice at once")
	require.Len(t, acked, 4)
	for id, n := range acked {
		require.Equal(t, 1, n, "message %s acknowledged %d times", id, n)
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	var mu sync.Mutex
	var seen []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		seen = append(seen, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	endJob(t, s, "job_backoff", srv.URL)
	// No jitter: the waits are exactly min, 2·min, 4·min, then max.
	w := newWorker(t, s, func(c *notify.Config) {
		c.RetryMin, c.RetryMax = 50*time.Millisecond, 200*time.Millisecond
		c.Jitter = func(time.Duration) time.Duration { return 0 }
	})
	w.Start(t.Context())
	waitFor(t, "five attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 5 })
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	// The gaps are at least the backoff, less the store's millisecond
	// rounding (a lower bound only: scheduling can only delay an attempt).
	for i, want := range []time.Duration{50, 100, 200, 200} {
		require.GreaterOrEqual(t, seen[i+1].Sub(seen[i]), want*time.Millisecond-2*time.Millisecond, "gap %d", i)
	}
	m := outbox(t, s, "job_backoff")
	require.Equal(t, store.OutboxPending, m.Status)
	require.Contains(t, m.LastError, "HTTP 503")
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	key, err := notify.ParseSecret(secret)
	require.NoError(t, err)
	require.Equal(t, []byte("0123456789abcdef0123456789abcdef"), key)
	_, err = notify.ParseSecret("whsec_not base64!")
	require.ErrorIs(t, err, notify.ErrBadSecret)
	_, err = notify.ParseSecret("short")
	require.ErrorIs(t, err, notify.ErrBadSecret)
	_, err = notify.ParseSecret("  ")
	require.ErrorIs(t, err, notify.ErrNoSecret)

	_, err = notify.ResolveSecret(config.Notify{}, nil)
	require.ErrorIs(t, err, notify.ErrNoSecret)
	env := func(k string) (string, bool) { return map[string]string{"HOOK_SECRET": secret}[k], k == "HOOK_SECRET" }
	key, err = notify.ResolveSecret(config.Notify{WebhookSecretEnv: "HOOK_SECRET"}, env)
	require.NoError(t, err)
	require.Len(t, key, 32)
	_, err = notify.ResolveSecret(config.Notify{WebhookSecretEnv: "MISSING"}, env)
	require.ErrorIs(t, err, notify.ErrNoSecret)
	require.Contains(t, err.Error(), "MISSING")

	// The relay's signature is the library's.
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	ts := time.Unix(1_900_000_000, 0)
	want, err := wh.Sign("msg_1", ts, []byte(`{"a":1}`))
	require.NoError(t, err)
	require.Equal(t, want, notify.Sign(key, "msg_1", ts, []byte(`{"a":1}`)))
	require.True(t, strings.HasPrefix(want, "v1,"))
}

// A message older than MaxAge when it is claimed (the relay was down for
// longer) is given up on without being sent.
func TestTooOldMessageIsGivenUpUnsent(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, 0)
	s := openStore(t)
	endJob(t, s, "job_old", srv.URL)
	w := newWorker(t, s, func(c *notify.Config) {
		c.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	})
	n, err := w.RunOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	m := outbox(t, s, "job_old")
	require.Equal(t, store.OutboxExpired, m.Status)
	require.Contains(t, m.LastError, "not delivered within 24h0m0s")
	requests, _, _, _ := rcv.snapshot()
	require.Zero(t, requests)
	// Nothing is left to claim.
	n, err = w.RunOnce(t.Context())
	require.NoError(t, err)
	require.Zero(t, n)
}
