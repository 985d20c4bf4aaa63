package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/metrics"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// changes is a Source whose changes the test sends and whose jobs have
// all succeeded.
type changes struct{ ch chan relay.Change }

func (c changes) Subscribe() (<-chan relay.Change, func()) { return c.ch, func() {} }

func (changes) Get(_ context.Context, id string) (*relaytype.Job, error) {
	now := time.Now()
	return &relaytype.Job{ID: id, State: relaytype.StateSucceeded, Executor: "work", CreatedAt: now.Add(-time.Second), FinishedAt: &now}, nil
}

func (changes) Events(context.Context, string, int64, int) ([]*relaytype.Event, error) {
	return nil, nil
}

// A job end another relay reports (relay.Change.Remote) is that relay's
// to count: summing the relays' counters counts every job once.
func TestRunCountsOnlyThisRelaysChanges(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	m, err := metrics.New(metrics.Config{Store: st})
	require.NoError(t, err)
	src := changes{ch: make(chan relay.Change)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, src) }()
	src.ch <- relay.Change{JobID: "job_remote", State: relaytype.StateSucceeded, StateVersion: 3, Remote: true}
	src.ch <- relay.Change{JobID: "job_local", State: relaytype.StateSucceeded, StateVersion: 3}
	src.ch <- relay.Change{JobID: "job_local2", State: relaytype.StateRunning, StateVersion: 2} // handled after the two above
	cancel()
	<-done

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	var finished []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, metrics.Namespace+"_jobs_finished_total{") {
			finished = append(finished, line)
		}
	}
	require.Equal(t, []string{metrics.Namespace + `_jobs_finished_total{executor="work",state="SUCCEEDED"} 1`}, finished)
}
