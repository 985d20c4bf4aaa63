package main_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// hookReceiver is a webhook endpoint on loopback that checks every
// request's Standard Webhooks signature with the reference library and
// refuses (500) until accept is set.
type hookReceiver struct {
	wh *standardwebhooks.Webhook

	mu       sync.Mutex
	accept   bool
	refused  int
	badSig   []string
	acked    map[string]int
	bodies   map[string][]byte
	idsSeen  map[string]bool
	requests int
}

func newHookReceiver(t *testing.T, secret string) (*hookReceiver, string) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	h := &hookReceiver{wh: wh, acked: map[string]int{}, bodies: map[string][]byte{}, idsSeen: map[string]bool{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/hooks/relay"
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	id := r.Header.Get("webhook-id")
	h.idsSeen[id] = true
	if err := h.wh.Verify(body, r.Header); err != nil {
		h.badSig = append(h.badSig, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if !h.accept {
		h.refused++
		http.Error(w, "receiver down", http.StatusInternalServerError)
		return
	}
	h.acked[id]++
	h.bodies[id] = body
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) counts() (refused, acked int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.acked {
		acked += n
	}
	return h.refused, acked
}

// TestWebhookSurvivesRelayRestart: a job with notify.webhook ends while
// its receiver refuses; the relay is killed and restarted, and still
// retries; once the receiver accepts, the webhook is delivered and
// acknowledged exactly once, signed as Standard Webhooks prescribes.
func TestWebhookSurvivesRelayRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("e2e webhook signing key 32 bytes"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "config"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config", "hook.secret"), []byte(secret+"\n"), 0o600))
	script := writeScript(t, dir, "edit.sh", editScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
  leaseTtlSec: 5
  heartbeatIntervalSec: 1
notify:
  webhookSecretFile: hook.secret
  webhookRetryMinSec: 1
  webhookRetryMaxSec: 1
  webhookTimeoutSec: 2
executors:
  default: edit
  edit: {kind: command, argv: [%q, "{{prompt_file}}"]}
`, filepath.Join(dir, "data"), script))
	db := filepath.Join(dir, "relay.db")
	args := []string{"--config-dir", cfg, "--storage", "sqlite", "--sqlite", db}
	rcv, hookURL := newHookReceiver(t, secret)

	s1 := startServer(t, args...)
	spec := seedSpec("file://"+repo, base, "hook-1")
	spec["notify"] = map[string]any{"webhook": hookURL}
	jobID := s1.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s1.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	waitFor(t, func() bool { refused, _ := rcv.counts(); return refused >= 2 })
	require.NoError(t, s1.cmd.Process.Signal(syscall.SIGKILL))
	_ = s1.cmd.Wait()

	refusedBefore, _ := rcv.counts()
	s2 := startServer(t, args...)
	// The new relay retries what the killed one left undelivered.
	waitFor(t, func() bool { refused, _ := rcv.counts(); return refused > refusedBefore })
	rcv.mu.Lock()
	rcv.accept = true
	rcv.mu.Unlock()
	waitFor(t, func() bool { _, acked := rcv.counts(); return acked >= 1 })
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	require.NoError(t, err)
	defer conn.Close()
	var (
		msgID, status string
		attempts      int
	)
	readOutbox := func() error {
		return conn.QueryRowContext(context.Background(),
			`SELECT id, status, attempts FROM outbox WHERE job_id = ?`, jobID).Scan(&msgID, &status, &attempts)
	}
	// The receiver counts its 2xx before the relay has read it: wait for
	// the relay to record the delivery (a stop in between would leave the
	// message due again, to be delivered once more: at least once).
	waitFor(t, func() bool { return readOutbox() == nil && status == "DELIVERED" })

	// Stop the relay, then look at what it recorded.
	require.NoError(t, s2.session.Close())
	_ = s2.cmd.Wait()
	require.NoError(t, readOutbox())
	require.Equal(t, "DELIVERED", status)

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Empty(t, rcv.badSig, "every request is signed with the project's secret")
	require.Equal(t, map[string]bool{msgID: true}, rcv.idsSeen, "one webhook-id across attempts and restarts")
	require.Equal(t, map[string]int{msgID: 1}, rcv.acked, "exactly one acknowledged delivery")
	// A claim the kill cut short counts as an attempt that sent nothing.
	require.GreaterOrEqual(t, attempts, rcv.requests, "every attempt was recorded")

	var n struct {
		Type string `json:"type"`
		Data struct {
			JobID     string `json:"jobId"`
			State     string `json:"state"`
			Title     string `json:"title"`
			Artifacts []struct {
				Kind   string `json:"kind"`
				Digest string `json:"digest"`
			} `json:"artifacts"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rcv.bodies[msgID], &n))
	require.Equal(t, "job.succeeded", n.Type)
	require.Equal(t, jobID, n.Data.JobID)
	require.Equal(t, "SUCCEEDED", n.Data.State)
	require.Equal(t, "Test Task", n.Data.Title)
	want := map[string]string{}
	for _, a := range job["artifacts"].([]any) {
		a := a.(map[string]any)
		want[a["kind"].(string)] = a["digest"].(string)
	}
	got := map[string]string{}
	for _, a := range n.Data.Artifacts {
		got[a.Kind] = a.Digest
	}
	require.Equal(t, want, got, "the webhook carries the artifacts' digests")
	require.NotContains(t, string(rcv.bodies[msgID]), "file://", "no repository URL in the payload")
}

// stubGH is a gh stand-in: it records its arguments and prints a pull
// request URL, or fails when the fail file exists.
const stubGH = `#!/bin/sh
printf '%%s\n' "$@" > %[1]q
pwd >> %[1]q
if [ -f %[2]q ]; then
  echo "gh: could not create pull request: HTTP 422" >&2
  exit 1
fi
echo "Creating pull request for $4 into $6"
echo "https://github.example/acme/app/pull/42"
`

// TestPullRequestThroughGH: a job with notify.enablePr on a git remote
// (a bare repository by file://) pushes relay/<jobId> with the patch
// committed on the baseline and runs gh pr create; pr.json records the
// branch, the commit and the URL. A failing gh is recorded, and the job
// still succeeds.
func TestPullRequestThroughGH(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, base := newRepo(t)
	bare := filepath.Join(dir, "remote.git")
	git(t, dir, "clone", "--quiet", "--bare", src, bare)
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	argsFile, failFile := filepath.Join(dir, "gh-args"), filepath.Join(dir, "gh-fail")
	writeScript(t, bin, "gh", fmt.Sprintf(stubGH, argsFile, failFile))
	script := writeScript(t, dir, "edit.sh", editScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
notify:
  prAuthor: "Relay Bot <relay-bot@example.invalid>"
executors:
  default: edit
  edit: {kind: command, argv: [%q, "{{prompt_file}}"]}
`, filepath.Join(dir, "data"), script))
	s := startServerEnv(t, []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"TASK_RELAY_ANSWER_RUNNER_ENABLED=false"}, "--config-dir", cfg, "--storage", "memory")

	run := func(key string) (string, map[string]any, map[string]any) {
		t.Helper()
		spec := seedSpec("file://"+bare, base, key)
		spec["notify"] = map[string]any{"enablePr": true}
		jobID := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
		job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
		require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
		kinds := map[string]bool{}
		for _, a := range job["artifacts"].([]any) {
			kinds[a.(map[string]any)["kind"].(string)] = true
		}
		require.True(t, kinds["pr.json"], "jobs_get lists pr.json: %v", kinds)
		var pr map[string]any
		require.NoError(t, json.Unmarshal([]byte(s.read(t, "mcp://jobs/"+jobID+"/artifacts/pr.json")), &pr))
		return jobID, job, pr
	}

	jobID, _, pr := run("pr-ok")
	require.Equal(t, "relay/"+jobID, pr["branch"])
	require.Equal(t, "main", pr["base"])
	require.Equal(t, "file://"+bare, pr["remote"])
	require.Equal(t, true, pr["pushed"])
	require.Equal(t, "https://github.example/acme/app/pull/42", pr["url"])
	require.Nil(t, pr["error"])
	commit := pr["commit"].(string)
	require.Equal(t, commit, git(t, bare, "rev-parse", "refs/heads/relay/"+jobID))
	require.Equal(t, base, git(t, bare, "rev-parse", commit+"^"))
	require.Equal(t, "hello\nedited by "+jobID, git(t, bare, "show", commit+":hello.txt"))
	require.Equal(t, "new file", git(t, bare, "show", commit+":added.txt"))
	require.Equal(t, "Relay Bot <relay-bot@example.invalid>", git(t, bare, "log", "-1", "--format=%an <%ae>", commit))
	require.Contains(t, git(t, bare, "log", "-1", "--format=%s", commit), "Test Task")
	ghArgs, err := os.ReadFile(argsFile)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(ghArgs)), "\n")
	require.Len(t, lines, 11, "%q", lines)
	require.Equal(t, []string{"pr", "create", "--head", "relay/" + jobID, "--base", "main", "--title", "Test Task", "--body-file"}, lines[:9])
	require.True(t, filepath.IsAbs(lines[9]), "body file %q", lines[9])

	// gh fails: pr.json says so, the branch is pushed, the job succeeded.
	require.NoError(t, os.WriteFile(failFile, nil, 0o600))
	jobID, _, pr = run("pr-fail")
	require.Equal(t, true, pr["pushed"])
	require.Equal(t, pr["commit"], git(t, bare, "rev-parse", "refs/heads/relay/"+jobID))
	require.Nil(t, pr["url"])
	require.EqualValues(t, 1, pr["exitCode"])
	require.Contains(t, pr["error"], "exited with code 1")
	require.Contains(t, pr["error"], "HTTP 422")

	// Without a webhook secret in the project, a webhook is refused at
	// submit, naming the field; so is a URL that is not http(s).
	for url, why := range map[string]string{"http://127.0.0.1:9/hook": "secret", "ftp://127.0.0.1/hook": "http or https"} {
		spec := seedSpec("file://"+bare, base, "hook-"+url)
		spec["notify"] = map[string]any{"webhook": url}
		res, err := s.session.CallTool(t.Context(), &mcp.CallToolParams{Name: "jobs_submit", Arguments: map[string]any{"spec": spec}})
		require.NoError(t, err)
		require.True(t, res.IsError, url)
		text := res.Content[0].(*mcp.TextContent).Text
		require.Contains(t, text, `"code":"INVALID_SPEC"`, text)
		require.Contains(t, text, `"field":"notify.webhook"`, text)
		require.Contains(t, text, why, text)
	}
}

// TestWebhookFromRelayService: with the shared relay service, the webhook
// of a project's job is signed with that project's secret (a file in its
// config dir) and delivered under the service's delivery settings; a
// canceled job notifies too.
func TestWebhookFromRelayService(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "notify:\n  webhookRetryMinSec: 1\n  webhookRetryMaxSec: 1\n")
	dir := t.TempDir()
	repo, _ := newRepo(t)
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("service-mode webhook signing key"))
	script := writeScript(t, dir, "work.sh", "#!/bin/sh\nif [ -f \"$TASK_RELAY_REPO/slow\" ]; then exec sleep 300; fi\necho hi >> hello.txt\n")
	cfg := writeConfig(t, dir, fmt.Sprintf("notify:\n  webhookSecretFile: hook.secret\nexecutors:\n  work:\n    argv: [%q]\n", script))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "hook.secret"), []byte(secret), 0o600))
	rcv, hookURL := newHookReceiver(t, secret)
	rcv.accept = true

	f := svc.front(t, cfg)
	spec := localSpec(repo, "svc-hook-1")
	spec["notify"] = map[string]any{"webhook": hookURL}
	done := f.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	require.Equal(t, "SUCCEEDED", f.waitState(t, done, "SUCCEEDED", "FAILED")["state"])

	require.NoError(t, os.WriteFile(filepath.Join(repo, "slow"), nil, 0o644))
	spec = localSpec(repo, "svc-hook-2")
	spec["notify"] = map[string]any{"webhook": hookURL}
	canceled := f.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	f.waitState(t, canceled, "RUNNING")
	f.call(t, "jobs_cancel", map[string]any{"jobId": canceled})

	waitFor(t, func() bool { _, acked := rcv.counts(); return acked >= 2 })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Empty(t, rcv.badSig)
	types := map[string]string{}
	for _, body := range rcv.bodies {
		var n struct {
			Type string `json:"type"`
			Data struct {
				JobID   string `json:"jobId"`
				Project string `json:"project"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &n))
		require.Equal(t, cfg, n.Data.Project)
		types[n.Data.JobID] = n.Type
	}
	require.Equal(t, map[string]string{done: "job.succeeded", canceled: "job.canceled"}, types)
	for id, n := range rcv.acked {
		require.Equal(t, 1, n, "webhook %s acknowledged once", id)
	}
}
