// Package metrics owns the relay's Prometheus metrics: what it measures as
// jobs run (durations, usage, executor exits, answer latency, store
// latency), what it reads from the store at scrape time (jobs by state,
// queue depth, pending asks), and the /metrics handler that serves them in
// the Prometheus text format to the operator token or to loopback callers.
//
// Every Metrics has its own prometheus.Registry: nothing is registered
// globally, so several relays (or tests) in one process never collide.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcp-task-relay/mcp-task-relay/internal/answer"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Namespace prefixes every metric name.
const Namespace = "mcp_task_relay"

// scrapeTimeout bounds the store queries of one scrape.
const scrapeTimeout = 10 * time.Second

// Source is what the metrics read about jobs: *relay.Relay.
type Source interface {
	// Subscribe returns a channel of job changes and a function that ends
	// the subscription.
	Subscribe() (<-chan relay.Change, func())
	// Get returns one job.
	Get(ctx context.Context, id string) (*relaytype.Job, error)
	// Events returns a job's audit log after afterID, at most limit.
	Events(ctx context.Context, id string, afterID int64, limit int) ([]*relaytype.Event, error)
}

// Config configures Metrics.
type Config struct {
	// Store is read at scrape time (jobs by state, pending asks). Required.
	Store store.Store
	// Authorized reports whether a bearer token is the operator's; nil
	// lets only loopback callers scrape. Defaults to nil.
	Authorized func(token string) bool
	// ProviderOf names the model provider of a project's executor (its
	// kind: codex, claude, gemini, command) for the provider label of
	// usage. Defaults to "unknown".
	ProviderOf func(project, executor string) string
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// Metrics holds the relay's collectors and its registry.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry

	jobDuration    *prometheus.HistogramVec
	phaseDuration  *prometheus.HistogramVec
	answerLatency  *prometheus.HistogramVec
	storeLatency   *prometheus.HistogramVec
	tokens         *prometheus.CounterVec
	cost           *prometheus.CounterVec
	executorExits  *prometheus.CounterVec
	jobsFinished   *prometheus.CounterVec
	runnerCounters *runnerCollector

	mu sync.Mutex
	// answered holds the asks whose answer latency was observed, by job,
	// until the job ends.
	answered map[string]map[string]bool
}

// New returns Metrics with its collectors registered on a new registry.
func New(cfg Config) (*Metrics, error) {
	if cfg.Store == nil {
		return nil, errors.New("metrics: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProviderOf == nil {
		cfg.ProviderOf = func(string, string) string { return "unknown" }
	}
	durations := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}
	m := &Metrics{
		cfg:      cfg,
		reg:      prometheus.NewRegistry(),
		answered: map[string]map[string]bool{},
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "job_duration_seconds",
			Help: "Time from a job's submission to its end, by executor and final state.", Buckets: durations},
			[]string{"executor", "state"}),
		phaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "job_phase_duration_seconds",
			Help: "Time a job's attempts spent in each phase (preparing workspace, running, collecting artifacts), by executor.", Buckets: durations},
			[]string{"executor", "phase"}),
		answerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "ask_answer_latency_seconds",
			Help:    "Time from an ask to its answer, by answerer (runner, orchestrator, human, policy) and answer status.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400}},
			[]string{"answerer", "status"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_operation_duration_seconds",
			Help:    "Latency of the relay's store operations, by operation.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}},
			[]string{"operation"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tokens_total",
			Help: "LLM tokens spent by finished jobs (their executors and the answers to their asks), by executor, provider and type (input, output, cached_input)."},
			[]string{"executor", "provider", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "cost_usd_total",
			Help: "US dollars spent by finished jobs, where reported, by executor and provider."},
			[]string{"executor", "provider"}),
		executorExits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "executor_exits_total",
			Help: "Executor runs that ended, by executor and exit code (\"timeout\" when the relay stopped it at the job's timeout)."},
			[]string{"executor", "code"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "jobs_finished_total",
			Help: "Jobs that reached a terminal state while this relay ran, by executor and state."},
			[]string{"executor", "state"}),
		runnerCounters: &runnerCollector{},
	}
	for _, c := range []prometheus.Collector{
		m.jobDuration, m.phaseDuration, m.answerLatency, m.storeLatency, m.tokens, m.cost, m.executorExits, m.jobsFinished,
		m.runnerCounters, &storeCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry the metrics are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// AddRunner exports the counters of an Answer Runner of provider in the
// runner_* series. Runners replaced by a config reload stay added, so
// that the counters never go down.
func (m *Metrics) AddRunner(provider string, rm *answer.Metrics) {
	m.runnerCounters.add(provider, rm)
}

// Handler serves the metrics in the Prometheus text format to the
// operator token, or without a token to loopback callers; others get 401.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelWarn)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.allowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcp-task-relay"`)
			http.Error(w, "metrics are served to the operator token or to loopback callers", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (m *Metrics) allowed(r *http.Request) bool {
	if auth := strings.TrimSpace(r.Header.Get("Authorization")); auth != "" {
		scheme, tok, ok := strings.Cut(auth, " ")
		return ok && strings.EqualFold(scheme, "Bearer") && m.cfg.Authorized != nil && m.cfg.Authorized(strings.TrimSpace(tok))
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run follows src's job changes until ctx ends or src stops, observing
// finished jobs (durations, usage, executor exits) and answered asks. It
// skips the changes of other relays sharing the store (relay.Change.Remote):
// each relay counts what it did.
func (m *Metrics) Run(ctx context.Context, src Source) {
	changes, unsubscribe := src.Subscribe()
	defer unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			if c.Remote {
				// Another relay sharing the store counts it.
				continue
			}
			if c.Asks {
				m.observeAnswers(ctx, c.JobID)
			}
			if c.State.Terminal() {
				m.observeEnd(ctx, src, c.JobID)
			}
		}
	}
}

// observeAnswers records the latency of the job's newly answered asks.
func (m *Metrics) observeAnswers(ctx context.Context, jobID string) {
	asks, err := m.cfg.Store.AskList(ctx, &store.AskListParams{JobID: jobID})
	if err != nil {
		m.cfg.Logger.Debug("metrics: list asks", "job_id", jobID, "err", err)
		return
	}
	for _, a := range asks {
		if a.Status == relaytype.StatusPending || a.AnsweredAt == nil {
			continue
		}
		m.mu.Lock()
		seen := m.answered[jobID]
		if seen == nil {
			seen = map[string]bool{}
			m.answered[jobID] = seen
		}
		done := seen[a.AskID]
		seen[a.AskID] = true
		m.mu.Unlock()
		if done {
			continue
		}
		answerer := a.Route
		if ans, err := m.cfg.Store.AnswerGet(ctx, &store.AnswerGetParams{AskID: a.AskID}); err == nil && ans != nil &&
			ans.Attestation != nil && ans.Attestation.AnsweredBy != "" {
			answerer = ans.Attestation.AnsweredBy
		}
		if answerer == "" {
			answerer = "unknown"
		}
		m.answerLatency.WithLabelValues(answerer, string(a.Status)).Observe(a.AnsweredAt.Sub(a.CreatedAt).Seconds())
	}
}

// exitRE finds the exit code in the summary of a job whose executor
// exited non-zero.
var exitRE = regexp.MustCompile(`exited with code (\d+)`)

// observeEnd records what a finished job measured.
func (m *Metrics) observeEnd(ctx context.Context, src Source, jobID string) {
	m.observeAnswers(ctx, jobID)
	m.mu.Lock()
	delete(m.answered, jobID)
	m.mu.Unlock()
	j, err := src.Get(ctx, jobID)
	if err != nil || !j.State.Terminal() || j.FinishedAt == nil {
		return
	}
	ex := j.Executor
	m.jobsFinished.WithLabelValues(ex, string(j.State)).Inc()
	m.jobDuration.WithLabelValues(ex, string(j.State)).Observe(j.FinishedAt.Sub(j.CreatedAt).Seconds())
	provider := m.cfg.ProviderOf(j.Project, ex)
	u := j.Usage
	for typ, n := range map[string]int{"input": u.InputTokens, "output": u.OutputTokens, "cached_input": u.CachedInputTokens} {
		if n > 0 {
			m.tokens.WithLabelValues(ex, provider, typ).Add(float64(n))
		}
	}
	if u.CostUSD > 0 {
		m.cost.WithLabelValues(ex, provider).Add(u.CostUSD)
	}
	events, err := src.Events(ctx, jobID, 0, 0)
	if err != nil {
		m.cfg.Logger.Debug("metrics: read events", "job_id", jobID, "err", err)
		return
	}
	collected := false
	var phase relaytype.Phase
	var since time.Time
	for _, e := range events {
		switch e.Type {
		case relaytype.EventPhase:
			var p relaytype.PhasePayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				continue
			}
			if phase != "" {
				m.phaseDuration.WithLabelValues(ex, string(phase)).Observe(e.Time.Sub(since).Seconds())
			}
			phase, since = p.Phase, e.Time
			if p.Phase == relaytype.PhaseCollecting {
				collected = true
			}
		case relaytype.EventTransition:
			if phase != "" {
				m.phaseDuration.WithLabelValues(ex, string(phase)).Observe(e.Time.Sub(since).Seconds())
				phase = ""
			}
		}
	}
	switch sm := exitRE.FindStringSubmatch(j.Summary); {
	case j.ReasonCode == relaytype.ReasonTimeout:
		m.executorExits.WithLabelValues(ex, "timeout").Inc()
	case j.ReasonCode == relaytype.ReasonExecutorError && sm != nil:
		if code, err := strconv.Atoi(sm[1]); err == nil {
			m.executorExits.WithLabelValues(ex, strconv.Itoa(code)).Inc()
		}
	case collected:
		// The pipeline collects artifacts once the executor has exited;
		// a non-zero exit would have been reported above.
		m.executorExits.WithLabelValues(ex, "0").Inc()
	}
}

// storeCollector reads the store at scrape time: jobs by state and
// executor, the queue depth and the pending asks by route.
type storeCollector struct{ m *Metrics }

var (
	jobsDesc = prometheus.NewDesc(Namespace+"_jobs", "Jobs in the store, by state and executor.",
		[]string{"state", "executor"}, nil)
	queueDesc = prometheus.NewDesc(Namespace+"_queue_depth", "Jobs waiting to run (QUEUED, or STALE awaiting a retry).",
		nil, nil)
	asksPendingDesc = prometheus.NewDesc(Namespace+"_asks_pending", "Asks waiting for an answer, by the answerer they are routed to.",
		[]string{"route"}, nil)
	scrapeErrorDesc = prometheus.NewDesc(Namespace+"_scrape_store_error", "1 when the last scrape could not read the store.",
		nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- queueDesc
	ch <- asksPendingDesc
	ch <- scrapeErrorDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	failed := 0.0
	type key struct{ state, executor string }
	counts := map[key]int{}
	for _, st := range relaytype.AllStates {
		jobs, _, err := c.m.cfg.Store.JobList(ctx, &store.JobListParams{State: st})
		if err != nil {
			failed = 1
			continue
		}
		for _, j := range jobs {
			counts[key{string(st), j.Executor}]++
		}
	}
	queue := 0
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), k.state, k.executor)
		if k.state == string(relaytype.StateQueued) || k.state == string(relaytype.StateStale) {
			queue += n
		}
	}
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(queue))
	routes := map[string]int{"runner": 0, "orchestrator": 0, "human": 0}
	if asks, err := c.m.cfg.Store.AskList(ctx, &store.AskListParams{Status: relaytype.StatusPending, Limit: 100000}); err != nil {
		failed = 1
	} else {
		for _, a := range asks {
			routes[a.Route]++
		}
	}
	for r, n := range routes {
		ch <- prometheus.MustNewConstMetric(asksPendingDesc, prometheus.GaugeValue, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, failed)
}

// runnerCollector exports the Answer Runners' counters, summed by
// provider.
type runnerCollector struct {
	mu      sync.Mutex
	runners []runnerMetrics
}

type runnerMetrics struct {
	provider string
	m        *answer.Metrics
}

func (c *runnerCollector) add(provider string, m *answer.Metrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.runners {
		if r.m == m {
			return
		}
	}
	c.runners = append(c.runners, runnerMetrics{provider, m})
}

var (
	runnerCacheDesc = prometheus.NewDesc(Namespace+"_runner_cache_lookups_total", "Answer Runner decision cache lookups, by provider and result (hit, miss).",
		[]string{"provider", "result"}, nil)
	runnerCallsDesc = prometheus.NewDesc(Namespace+"_runner_provider_calls_total", "Answer Runner calls to its LLM provider, by provider.",
		[]string{"provider"}, nil)
	runnerErrorsDesc = prometheus.NewDesc(Namespace+"_runner_provider_errors_total", "Answer Runner provider calls that failed, by provider.",
		[]string{"provider"}, nil)
	runnerRetriesDesc = prometheus.NewDesc(Namespace+"_runner_schema_retries_total", "Answer Runner retries after an answer that failed its schema, by provider.",
		[]string{"provider"}, nil)
	runnerTokensDesc = prometheus.NewDesc(Namespace+"_runner_tokens_total", "Tokens the Answer Runner spent, by provider and type (input, output).",
		[]string{"provider", "type"}, nil)
	runnerLatencyDesc = prometheus.NewDesc(Namespace+"_runner_provider_seconds_total", "Summed latency of the Answer Runner's provider calls, by provider.",
		[]string{"provider"}, nil)
)

func (c *runnerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{runnerCacheDesc, runnerCallsDesc, runnerErrorsDesc, runnerRetriesDesc, runnerTokensDesc, runnerLatencyDesc} {
		ch <- d
	}
}

func (c *runnerCollector) Collect(ch chan<- prometheus.Metric) {
	type sums struct{ hits, misses, calls, errs, retries, in, out, secs float64 }
	c.mu.Lock()
	by := map[string]*sums{}
	for _, r := range c.runners {
		s := by[r.provider]
		if s == nil {
			s = &sums{}
			by[r.provider] = s
		}
		s.hits += float64(r.m.CacheHits.Load())
		s.misses += float64(r.m.CacheMisses.Load())
		s.calls += float64(r.m.ProviderCalls.Load())
		s.errs += float64(r.m.ProviderErrors.Load())
		s.retries += float64(r.m.SchemaRetries.Load())
		s.in += float64(r.m.InputTokens.Load())
		s.out += float64(r.m.OutputTokens.Load())
		s.secs += r.m.ProviderLatency().Seconds()
	}
	c.mu.Unlock()
	for p, s := range by {
		counter := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{p}, labels...)...)
		}
		counter(runnerCacheDesc, s.hits, "hit")
		counter(runnerCacheDesc, s.misses, "miss")
		counter(runnerCallsDesc, s.calls)
		counter(runnerErrorsDesc, s.errs)
		counter(runnerRetriesDesc, s.retries)
		counter(runnerTokensDesc, s.in, "input")
		counter(runnerTokensDesc, s.out, "output")
		counter(runnerLatencyDesc, s.secs)
	}
}
