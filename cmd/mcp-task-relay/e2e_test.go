package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// binary is the mcp-task-relay binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	// Under the race detector every exit of this test binary run as a
	// helper executor (sdkAsker) would sleep a second.
	if os.Getenv("GORACE") == "" {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	dir, err := os.MkdirTemp("", "mcp-task-relay-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mcp-task-relay")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// git runs git in dir and returns its trimmed stdout.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// newRepo makes a git repository with two commits and returns its path and
// the first (baseline) commit.
func newRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	git(t, dir, "init", "--quiet", "--initial-branch=main")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644))
	git(t, dir, "add", ".")
	git(t, dir, "commit", "--quiet", "-m", "one")
	base := git(t, dir, "rev-parse", "HEAD")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "later.txt"), []byte("later\n"), 0o644))
	git(t, dir, "add", ".")
	git(t, dir, "commit", "--quiet", "-m", "two")
	return dir, base
}

// server is a running relay subprocess with an MCP client session on its
// stdio; every byte it wrote to stdout is kept for inspection.
type server struct {
	cmd     *exec.Cmd
	session *mcp.ClientSession
	stdout  *syncBuffer
	stderr  *syncBuffer
	updates chan string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config")
	require.NoError(t, os.MkdirAll(cfg, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "config.yaml"), []byte(body), 0o644))
	return cfg
}

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	// A credential in the relay's environment must not reach executors.
	// The runner is off unless a test configures one.
	return startServerEnv(t, []string{"ANTHROPIC_API_KEY=sk-e2e-secret", "TASK_RELAY_ANSWER_RUNNER_ENABLED=false"}, args...)
}

func startServerEnv(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	return startServerClient(t, env, nil, "", args...)
}

// startServerClient starts the relay with extra environment, lets mutate
// adjust the MCP client's options (elicitation, sampling), and has the
// client ask for protocol (empty: the SDK's newest).
func startServerClient(t *testing.T, env []string, mutate func(*mcp.ClientOptions), protocol string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--standalone"}, args...)...)
	cmd.Env = append(append(os.Environ(), "TASK_RELAY_LOG_LEVEL=debug"), env...)
	return connectServer(t, cmd, mutate, protocol)
}

// connectServer starts cmd, an MCP server on stdio, and connects a client
// to it, with options adjusted by mutate and protocol asked for (empty:
// the SDK's newest). Cleanup kills the process.
func connectServer(t *testing.T, cmd *exec.Cmd, mutate func(*mcp.ClientOptions), protocol string) *server {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	s := &server{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, updates: make(chan string, 100)}
	cmd.Stderr = s.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr.String())
		}
	})
	opts := &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			select {
			case s.updates <- req.Params.URI:
			default:
			}
		},
	}
	if mutate != nil {
		mutate(opts)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "0"}, opts)
	tr := &mcp.IOTransport{Reader: io.NopCloser(io.TeeReader(stdout, s.stdout)), Writer: stdin}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var sessOpts *mcp.ClientSessionOptions
	if protocol != "" {
		sessOpts = &mcp.ClientSessionOptions{ProtocolVersion: protocol}
	}
	s.session, err = client.Connect(ctx, tr, sessOpts)
	require.NoError(t, err, "connect: %s", s.stderr.String())
	return s
}

func (s *server) call(t *testing.T, name string, args any) map[string]any {
	t.Helper()
	res, err := s.session.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	if res.IsError {
		t.Fatalf("%s: %s", name, res.Content[0].(*mcp.TextContent).Text)
	}
	raw, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

func (s *server) waitState(t *testing.T, jobID string, want ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		job := s.call(t, "jobs_get", map[string]any{"jobId": jobID})
		for _, w := range want {
			if job["state"] == w {
				return job
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %v, want %v", jobID, job["state"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) read(t *testing.T, uri string) string {
	t.Helper()
	res, err := s.session.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: uri})
	require.NoError(t, err)
	require.Len(t, res.Contents, 1)
	return res.Contents[0].Text
}

// assertOnlyJSONRPC checks that every line the server wrote to stdout is a
// JSON-RPC 2.0 message.
func (s *server) assertOnlyJSONRPC(t *testing.T) {
	t.Helper()
	out := s.stdout.String()
	require.NotEmpty(t, out)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		var msg struct {
			JSONRPC string `json:"jsonrpc"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &msg), "stdout line is not JSON: %q", sc.Text())
		require.Equal(t, "2.0", msg.JSONRPC, "stdout line is not JSON-RPC: %q", sc.Text())
		n++
	}
	require.GreaterOrEqual(t, n, 2)
}

// seedSpec is the seed's JobSpec JSON shape, verbatim but for the repo
// and its outputContract, which the relay enforces (a job without a
// patch, a TEST_PLAN or a NOTES section would fail OUTPUT_CONTRACT): the
// tests of the contract set it themselves.
func seedSpec(repoURL, baseline, key string) map[string]any {
	raw := fmt.Sprintf(`{
	  "repo": {"type": "git", "url": %q, "baseBranch": "main", "baselineCommit": %q},
	  "task": {"title": "Test Task", "description": "Test description", "acceptance": ["Criterion 1"]},
	  "scope": {"readPaths": ["src/"], "disallowReformatting": false},
	  "execution": {"preferredModel": "gpt-4", "sandbox": "read-only", "askPolicy": "untrusted", "priority": "P1", "ttlS": 3600},
	  "idempotencyKey": %q
	}`, repoURL, baseline, key)
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		panic(err)
	}
	return m
}

const editScript = `#!/bin/sh
set -eu
test -f "$1"
test -n "$TASK_RELAY_JOB_ID" && test -n "$TASK_RELAY_COMMIT_SHA" && test -n "$TASK_RELAY_STEP_ID" && test -n "$TASK_RELAY_REPO"
test -z "${ANTHROPIC_API_KEY:-}"
echo "edited by $TASK_RELAY_JOB_ID" >> hello.txt
printf 'new file\n' > added.txt
echo "### TEST_PLAN"
echo "run cat hello.txt"
echo "### NOTES"
echo "nothing else"
`

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o755))
	return p
}

func TestStdioEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "edit.sh", editScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  default: edit
  edit:
    kind: command
    argv: [%q, "{{prompt_file}}"]
`, filepath.Join(dir, "data"), script))
	s := startServer(t, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))

	sub := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "e2e-1")})
	jobID := sub["jobId"].(string)
	require.NoError(t, s.session.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "mcp://jobs/" + jobID + "/status"}))
	job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	require.Equal(t, base, job["baselineCommit"])
	require.EqualValues(t, 1, job["attempt"])

	// The status subscription produced an update.
	select {
	case uri := <-s.updates:
		require.Equal(t, "mcp://jobs/"+jobID+"/status", uri)
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/resources/updated for the subscribed status")
	}

	digests := map[string]string{}
	for _, a := range job["artifacts"].([]any) {
		a := a.(map[string]any)
		digests[a["kind"].(string)] = a["digest"].(string)
	}
	require.Contains(t, digests, "patch.diff")
	patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	sum := sha256.Sum256([]byte(patch))
	require.Equal(t, digests["patch.diff"], hex.EncodeToString(sum[:]))
	require.Contains(t, patch, "+edited by "+jobID)
	require.Contains(t, patch, "added.txt")
	// Based on the baseline, not HEAD: later.txt is not part of it.
	require.NotContains(t, patch, "later.txt")

	out := s.read(t, "mcp://jobs/"+jobID+"/artifacts/out.md")
	require.Contains(t, out, "### TEST_PLAN")
	require.Contains(t, out, "run cat hello.txt")

	// The patch applies to a clean checkout of the baseline.
	check := filepath.Join(t.TempDir(), "check")
	git(t, filepath.Dir(check), "clone", "--quiet", repo, check)
	git(t, check, "checkout", "--quiet", base)
	pf := filepath.Join(t.TempDir(), "p.diff")
	require.NoError(t, os.WriteFile(pf, []byte(patch), 0o644))
	git(t, check, "apply", "--check", pf)
	git(t, check, "apply", pf)
	got, err := os.ReadFile(filepath.Join(check, "hello.txt"))
	require.NoError(t, err)
	require.Equal(t, "hello\nedited by "+jobID+"\n", string(got))

	// The user's repository was not touched.
	require.Empty(t, git(t, repo, "status", "--porcelain"))

	s.assertOnlyJSONRPC(t)
}

// alive reports whether pid names a live (non-zombie) process. Without
// /proc (macOS) a zombie counts as alive.
func alive(pid int) bool {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return pidExists(pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still alive", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// readPids waits until file holds n whitespace-separated pids on a
// finished line and returns them.
func readPids(t *testing.T, file string, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !strings.HasSuffix(string(b), "\n") || len(strings.Fields(string(b))) != n {
			return false
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			require.NoError(t, err)
			pids = append(pids, pid)
		}
		return true
	})
	return pids
}

// treeScript starts a sleeping grandchild, records both pids and waits.
const treeScript = `#!/bin/sh
sleep 300 &
echo "$$ $!" > %q
wait
`

func treeServer(t *testing.T) (*server, string, string) {
	t.Helper()
	dir := t.TempDir()
	repo, base := newRepo(t)
	pidfile := filepath.Join(dir, "pids")
	script := writeScript(t, dir, "tree.sh", fmt.Sprintf(treeScript, pidfile))
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  default: tree
  tree: {kind: command, argv: [%q]}
`, filepath.Join(dir, "data"), script))
	s := startServer(t, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	spec := seedSpec(repo, base, "tree")
	spec["repo"].(map[string]any)["type"] = "local"
	spec["repo"].(map[string]any)["path"] = repo
	delete(spec["repo"].(map[string]any), "url")
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	return s, jobID, pidfile
}

func TestCancelKillsExecutorProcessTree(t *testing.T) {
	t.Parallel()
	s, jobID, pidfile := treeServer(t)
	pids := readPids(t, pidfile, 2)
	res := s.call(t, "jobs_cancel", map[string]any{"jobId": jobID})
	require.Equal(t, true, res["ok"])
	require.Equal(t, "CANCELED", res["state"])
	waitGone(t, pids...)
	job := s.waitState(t, jobID, "CANCELED")
	require.Equal(t, "CANCELED", job["state"])
}

func TestNoExecutorOutlivesKilledRelay(t *testing.T) {
	t.Parallel()
	s, _, pidfile := treeServer(t)
	pids := readPids(t, pidfile, 2)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	_ = s.cmd.Wait()
	waitGone(t, pids...)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
