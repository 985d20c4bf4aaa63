package main_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// TestShutdownWithPendingHumanAsk: a relay whose executor waits on an ask
// put to a person (the client's elicitation never answers) still stops
// promptly on SIGTERM: the open elicitation does not hold the session
// open, and the job is released for a retry rather than failed.
func TestShutdownWithPendingHumanAsk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "approve.sh", approvalScript)
	db := filepath.Join(dir, "relay.db")
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  approver: {kind: command, argv: [%q]}
askAnswer:
  routing:
    byType: {APPROVAL: human}
`, filepath.Join(dir, "data"), script))
	asked := make(chan struct{}, 1)
	s := startServerClient(t, []string{"TASK_RELAY_ANSWER_RUNNER_ENABLED=false"}, func(o *mcp.ClientOptions) {
		o.ElicitationHandler = func(ctx context.Context, _ *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			select {
			case asked <- struct{}{}:
			default:
			}
			<-ctx.Done() // the person never answers
			return nil, ctx.Err()
		}
	}, "2025-11-25", "--config-dir", cfg, "--storage", "sqlite", "--sqlite", db)

	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "pending-human")})["jobId"].(string)
	select {
	case <-asked:
	case <-time.After(60 * time.Second):
		t.Fatalf("the human was never asked; stderr:\n%s", s.stderr.String())
	}

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(45 * time.Second):
		t.Fatalf("relay still running 45 s after SIGTERM with a pending human ask; stderr:\n%s", s.stderr.String())
	}

	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	require.NoError(t, err)
	defer conn.Close()
	// The running attempt is released to be retried, not failed; its ask
	// is closed with the attempt (the executor that asked is gone), and
	// no answer is made up for it.
	var state string
	require.NoError(t, conn.QueryRow(`SELECT state FROM jobs WHERE id = ?`, jobID).Scan(&state))
	require.Contains(t, []string{"STALE", "QUEUED"}, state, "shutdown releases the job for a retry")
	var status string
	require.NoError(t, conn.QueryRow(`SELECT status FROM asks WHERE job_id = ?`, jobID).Scan(&status))
	require.NotContains(t, []string{"ANSWERED", "REJECTED"}, status, "nobody answered the ask")
}
