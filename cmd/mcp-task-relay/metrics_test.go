package main_test

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape reads /metrics with the bearer token (none: as a loopback caller)
// and parses it with the Prometheus text parser.
func scrape(t require.TestingT, origin, token string) (int, map[string]*dto.MetricFamily) {
	req, err := http.NewRequest(http.MethodGet, origin+"/metrics", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, fams
}

// metricValue sums the series of name whose labels include want (counter
// and gauge values, histogram sample counts); found is false when there
// is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, found bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

// TestMetricsMoveWhenAJobRuns: the relay service serves /metrics in the
// Prometheus text format to loopback callers and the operator token (a
// wrong token gets 401); a job that asks, is answered and succeeds moves
// the jobs, queue, duration, phase, ask, answer latency, executor exit
// and store latency series.
func TestMetricsMoveWhenAJobRuns(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	cfg := project(t, t.TempDir(), askScript)
	f := svc.front(t, cfg)

	code, fams := scrape(t, svc.origin(), "")
	require.Equal(t, http.StatusOK, code)
	for _, name := range []string{"mcp_task_relay_queue_depth", "mcp_task_relay_asks_pending", "mcp_task_relay_store_operation_duration_seconds"} {
		require.Contains(t, fams, name)
	}
	claimsBefore, _ := metricValue(fams, "mcp_task_relay_store_operation_duration_seconds", map[string]string{"operation": "job_claim"})
	code, _ = scrape(t, svc.origin(), "not-the-token")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = scrape(t, svc.origin(), svc.token(t))
	require.Equal(t, http.StatusOK, code)

	id := f.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "metrics")})["jobId"].(string)
	f.waitState(t, id, "WAITING_ON_ANSWER")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, fams := scrape(c, svc.origin(), "")
		pending, _ := metricValue(fams, "mcp_task_relay_asks_pending", map[string]string{"route": "orchestrator"})
		require.Equal(c, 1.0, pending)
		waiting, _ := metricValue(fams, "mcp_task_relay_jobs", map[string]string{"state": "WAITING_ON_ANSWER", "executor": "work"})
		require.Equal(c, 1.0, waiting)
	}, time.Minute, 100*time.Millisecond)
	asks := f.call(t, "asks_list", map[string]any{"jobId": id})["items"].([]any)
	require.Len(t, asks, 1)
	f.call(t, "asks_answer", map[string]any{"askId": asks[0].(map[string]any)["askId"], "answerText": "Hello, metrics!"})
	require.Equal(t, "SUCCEEDED", f.waitState(t, id, "SUCCEEDED", "FAILED")["state"])

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		code, fams := scrape(c, svc.origin(), "")
		require.Equal(c, http.StatusOK, code)
		for _, s := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"mcp_task_relay_jobs", map[string]string{"state": "SUCCEEDED", "executor": "work"}, 1},
			{"mcp_task_relay_jobs", map[string]string{"state": "WAITING_ON_ANSWER"}, 0},
			{"mcp_task_relay_jobs_finished_total", map[string]string{"state": "SUCCEEDED", "executor": "work"}, 1},
			{"mcp_task_relay_job_duration_seconds", map[string]string{"state": "SUCCEEDED", "executor": "work"}, 1},
			{"mcp_task_relay_job_phase_duration_seconds", map[string]string{"phase": "running", "executor": "work"}, 1},
			{"mcp_task_relay_job_phase_duration_seconds", map[string]string{"phase": "preparing workspace", "executor": "work"}, 1},
			{"mcp_task_relay_executor_exits_total", map[string]string{"code": "0", "executor": "work"}, 1},
			{"mcp_task_relay_ask_answer_latency_seconds", map[string]string{"answerer": "orchestrator", "status": "ANSWERED"}, 1},
			{"mcp_task_relay_asks_pending", map[string]string{"route": "orchestrator"}, 0},
			{"mcp_task_relay_queue_depth", nil, 0},
		} {
			got, _ := metricValue(fams, s.name, s.labels)
			require.Equal(c, s.want, got, "%s%v", s.name, s.labels)
		}
		claims, _ := metricValue(fams, "mcp_task_relay_store_operation_duration_seconds", map[string]string{"operation": "job_claim"})
		require.Greater(c, claims, claimsBefore, "store latency is measured")
	}, time.Minute, 100*time.Millisecond)
}
