package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// chatReceiver is a local ntfy- or Slack-style server: it records every
// JSON body POSTed to it, answering 503 until accept is set.
type chatReceiver struct {
	mu       sync.Mutex
	accept   bool
	refused  int
	accepted []map[string]any
	paths    []string
}

func newChatReceiver(t *testing.T) (*chatReceiver, string) {
	t.Helper()
	rcv := &chatReceiver{}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	return rcv, srv.URL
}

func (c *chatReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || !c.accept {
		c.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.accepted = append(c.accepted, m)
	c.paths = append(c.paths, r.URL.Path)
}

func (c *chatReceiver) setAccept(on bool) {
	c.mu.Lock()
	c.accept = on
	c.mu.Unlock()
}

// matching returns the accepted bodies whose key contains s.
func (c *chatReceiver) matching(key, s string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, m := range c.accepted {
		if v, _ := m[key].(string); strings.Contains(v, s) {
			out = append(out, m)
		}
	}
	return out
}

func (c *chatReceiver) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accepted)
}

func (c *chatReceiver) refusals() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// TestChatNotifications: a project's ntfy topic and Slack webhook hear of
// a job that succeeds, one that fails and an APPROVAL ask that waits;
// ntfy's Approve action, POSTed as the ntfy app does, lets the job go on.
// A notification the ntfy server refused before the relay was killed is
// delivered once by the next relay, and nothing is sent twice.
func TestChatNotifications(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	ntfy, ntfyURL := newChatReceiver(t)
	slack, slackURL := newChatReceiver(t)
	slack.setAccept(true)
	ok := writeScript(t, dir, "ok.sh", "#!/bin/sh\necho done >> hello.txt\n")
	bad := writeScript(t, dir, "bad.sh", "#!/bin/sh\necho 'disk full' >&2\nexit 3\n")
	asker := writeScript(t, dir, "asker.sh", dashboardApprovalScript)
	port := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
askAnswer:
  port: %d
  routing:
    byType: {APPROVAL: human}
notify:
  webhookRetryMinSec: 1
  webhookRetryMaxSec: 1
  webhookTimeoutSec: 2
  ntfyUrl: %q
  slackWebhookUrl: %q
  askWaitingSec: 1
executors:
  default: ok
  ok: {argv: [%q]}
  bad: {argv: [%q]}
  asker: {argv: [%q]}
`, filepath.Join(dir, "data"), port, ntfyURL+"/relay-topic", slackURL+"/services/T/B/X", ok, bad, asker))
	args := []string{"--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db")}
	submit := func(s *server, key, executor string) string {
		spec := seedSpec("file://"+repo, base, key)
		spec["execution"].(map[string]any)["executor"] = executor
		spec["task"].(map[string]any)["title"] = "notify " + key
		return s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	}

	// Done, while the ntfy server refuses: Slack has it, ntfy is retried.
	s1 := startServer(t, args...)
	done := submit(s1, "done", "ok")
	require.Equal(t, "SUCCEEDED", s1.waitState(t, done, "SUCCEEDED", "FAILED")["state"])
	waitFor(t, func() bool {
		return len(slack.matching("text", "Job succeeded: notify done")) == 1 && ntfy.refusals() >= 2
	})
	require.NoError(t, s1.cmd.Process.Signal(syscall.SIGKILL))
	_ = s1.cmd.Wait()

	// The next relay delivers it once.
	ntfy.setAccept(true)
	s2 := startServer(t, args...)
	waitFor(t, func() bool { return len(ntfy.matching("title", "Job succeeded: notify done")) == 1 })
	n := ntfy.matching("title", "Job succeeded: notify done")[0]
	require.Equal(t, "relay-topic", n["topic"])
	require.EqualValues(t, 3, n["priority"])
	require.Contains(t, n["tags"], "done")
	require.Equal(t, fmt.Sprintf("http://127.0.0.1:%d/#/job/%s", port, done), n["click"])
	require.Contains(t, n["message"], "executor finished")

	// Failed.
	failed := submit(s2, "failed", "bad")
	require.Equal(t, "FAILED", s2.waitState(t, failed, "SUCCEEDED", "FAILED")["state"])
	waitFor(t, func() bool {
		return len(ntfy.matching("title", "Job failed: notify failed")) == 1 && len(slack.matching("text", "Job failed: notify failed")) == 1
	})
	n = ntfy.matching("title", "Job failed: notify failed")[0]
	require.EqualValues(t, 4, n["priority"])
	require.Contains(t, n["tags"], "failed")
	require.Contains(t, n["message"], "exited with code 3")
	sl := slack.matching("text", "Job failed: notify failed")[0]
	raw, err := json.Marshal(sl["blocks"])
	require.NoError(t, err)
	require.Contains(t, string(raw), fmt.Sprintf("/#/job/%s", failed), "Slack's button opens the job's page")

	// Needs input: an APPROVAL that waits; approved from ntfy's button.
	asking := submit(s2, "needs-input", "asker")
	s2.waitState(t, asking, "WAITING_ON_ANSWER")
	waitFor(t, func() bool {
		return len(ntfy.matching("title", "needs input: APPROVAL")) == 1 && len(slack.matching("text", "needs input: APPROVAL")) == 1
	})
	n = ntfy.matching("title", "needs input: APPROVAL")[0]
	require.Equal(t, "Apply the schema migration to the staging database?", n["message"])
	require.EqualValues(t, 5, n["priority"])
	require.Contains(t, n["tags"], "needs-input")
	require.Equal(t, fmt.Sprintf("http://127.0.0.1:%d/#/inbox", port), n["click"])
	actions := n["actions"].([]any)
	require.Len(t, actions, 3)
	approve := actions[0].(map[string]any)
	require.Equal(t, "http", approve["action"])
	require.Equal(t, "Approve", approve["label"])
	require.Equal(t, "POST", approve["method"])
	require.Equal(t, "Reject", actions[1].(map[string]any)["label"])
	resp, err := http.Post(approve["url"].(string), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "SUCCEEDED", s2.waitState(t, asking, "SUCCEEDED", "FAILED")["state"])
	waitFor(t, func() bool { return len(ntfy.matching("title", "Job succeeded: notify needs-input")) == 1 })

	// One delivery per event, whatever the restart and the catch-up did.
	waitFor(t, func() bool { return len(slack.matching("text", "Job succeeded: notify needs-input")) == 1 })
	for _, r := range []*chatReceiver{ntfy, slack} {
		require.Equal(t, 4, r.count(), "done, failed, needs input, done again: one message each")
	}
}
