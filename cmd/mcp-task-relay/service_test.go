package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// relayService is the data dir of a relay service that the tests' fronts
// start on demand; cleanup kills whatever service runs for it.
type relayService struct {
	dataDir string
	port    int
}

// newRelayService prepares a data dir whose service.yaml holds extra
// (YAML lines under server:) and a free HTTP port.
func newRelayService(t *testing.T, serverYAML string) *relayService {
	t.Helper()
	s := &relayService{dataDir: filepath.Join(t.TempDir(), "data"), port: freePort(t)}
	require.NoError(t, os.MkdirAll(s.dataDir, 0o700))
	body := fmt.Sprintf("askAnswer:\n  port: %d\nserver:\n  leaseTtlSec: 5\n  heartbeatIntervalSec: 1\n%s", s.port, serverYAML)
	require.NoError(t, os.WriteFile(filepath.Join(s.dataDir, "service.yaml"), []byte(body), 0o600))
	t.Cleanup(func() {
		if pid := s.pid(); pid > 0 {
			_ = killPID(pid)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(s.dataDir, "service.log")); err == nil {
				t.Logf("service log:\n%s", tail(string(b), 60))
			}
		}
	})
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pid returns the pid of the running service, or 0.
func (s *relayService) pid() int {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "service.json"))
	if err != nil {
		return 0
	}
	var info struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal(b, &info) != nil {
		return 0
	}
	return info.PID
}

func (s *relayService) origin() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }

func (s *relayService) token(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "api-token"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// env is the environment of a front of this service.
func (s *relayService) env() []string {
	return append(os.Environ(), "TASK_RELAY_DATA_DIR="+s.dataDir, "TASK_RELAY_LOG_LEVEL=debug",
		"TASK_RELAY_ANSWER_RUNNER_ENABLED=false")
}

// front starts `serve` (a thin front of the service) for the project in
// cfgDir and connects an MCP client to it.
func (s *relayService) front(t *testing.T, cfgDir string) *server {
	t.Helper()
	return s.frontClient(t, cfgDir, nil, "")
}

// frontClient is front with the client's options adjusted by mutate and
// protocol asked for (empty: the SDK's newest).
func (s *relayService) frontClient(t *testing.T, cfgDir string, mutate func(*mcp.ClientOptions), protocol string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config-dir", cfgDir)
	cmd.Env = s.env()
	return connectServer(t, cmd, mutate, protocol)
}

// closeFront ends a front's session as a client that exits does, and
// waits for the front to exit.
func closeFront(t *testing.T, s *server) {
	t.Helper()
	_ = s.session.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "front exit: %s", s.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("the front did not exit after its client went away")
	}
}

// project writes a config dir whose executor "work" runs script.
func project(t *testing.T, dir, script string) string {
	t.Helper()
	p := writeScript(t, dir, "work.sh", script)
	return writeConfig(t, dir, fmt.Sprintf("executors:\n  work:\n    argv: [%q]\n", p))
}

func localSpec(repo, key string) map[string]any {
	return map[string]any{
		"repo":           map[string]any{"type": "local", "path": repo},
		"task":           map[string]any{"title": "service test", "description": "edit hello.txt"},
		"execution":      map[string]any{"maxAttempts": 20},
		"idempotencyKey": key,
	}
}

// TestJobOutlivesClientSession: a client submits a job and goes away while
// it runs; the job goes on in the service, and a new session later sees it
// SUCCEEDED on its first attempt.
func TestJobOutlivesClientSession(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	// The job runs until the client has gone away.
	gate := filepath.Join(t.TempDir(), "finish")
	cfg := project(t, t.TempDir(), fmt.Sprintf("#!/bin/sh\nwhile [ ! -e %q ]; do sleep 0.05; done\necho outlived >> hello.txt\n", gate))

	first := svc.front(t, cfg)
	sub := first.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "outlive")})
	jobID := sub["jobId"].(string)
	first.waitState(t, jobID, "RUNNING")
	pid := svc.pid()
	require.NotZero(t, pid)
	closeFront(t, first)
	require.True(t, pidExists(pid), "the service outlives the front")
	require.NoError(t, os.WriteFile(gate, nil, 0o600))

	second := svc.front(t, cfg)
	job := second.waitState(t, jobID, "SUCCEEDED")
	require.EqualValues(t, 1, job["attempt"], "the job was not interrupted")
	require.Equal(t, pid, svc.pid(), "the same service ran it")
	patch := second.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	require.Contains(t, patch, "+outlived")
	listed := second.call(t, "jobs_list", map[string]any{})
	require.EqualValues(t, 1, listed["total"])
}

// TestProjectsNeverMix: two projects define an executor of the same name
// with different scripts; one service runs all their jobs on one
// repository, each with its own project's script.
func TestProjectsNeverMix(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "  maxConcurrency: 4\n")
	repo, _ := newRepo(t)
	cfgA := project(t, t.TempDir(), "#!/bin/sh\necho from-project-A >> hello.txt\n")
	cfgB := project(t, t.TempDir(), "#!/bin/sh\necho from-project-B >> hello.txt\n")
	a, b := svc.front(t, cfgA), svc.front(t, cfgB)

	const perProject = 6
	jobs := map[string]string{} // job id → project letter
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range perProject {
		for letter, s := range map[string]*server{"A": a, "B": b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The same idempotency key in both projects: two jobs.
				sub := s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, fmt.Sprintf("mix-%d", i))})
				mu.Lock()
				jobs[sub["jobId"].(string)] = letter
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	require.Len(t, jobs, 2*perProject)
	for id, letter := range jobs {
		a.waitState(t, id, "SUCCEEDED")
		patch := a.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff")
		require.Contains(t, patch, "+from-project-"+letter, "job %s ran another project's executor", id)
	}
	for letter, s := range map[string]*server{"A": a, "B": b} {
		own := s.call(t, "jobs_list", map[string]any{"limit": 100})
		require.EqualValues(t, perProject, own["total"], "project %s sees its own jobs", letter)
		all := s.call(t, "jobs_list", map[string]any{"limit": 100, "allProjects": true})
		require.EqualValues(t, 2*perProject, all["total"])
		for _, it := range own["items"].([]any) {
			item := it.(map[string]any)
			require.Equal(t, letter, jobs[item["id"].(string)], "project %s lists only its own jobs", letter)
			require.Equal(t, map[string]string{"A": cfgA, "B": cfgB}[letter], item["project"])
		}
	}
}

// killRounds is how many times TestServiceKilledDuringWorkspaceCreation
// kills the service: TASK_RELAY_KILL_ROUNDS, else 4 (each of its two kill
// moments twice). Each round restarts the service and recreates a
// worktree of 1000 files, so `go test ./...` runs the small count and
// .ci/run runs the full count (TASK_RELAY_KILL_ROUNDS=20) in a step of its
// own.
func killRounds(t *testing.T) int {
	t.Helper()
	v, set := os.LookupEnv("TASK_RELAY_KILL_ROUNDS")
	if !set {
		t.Log("4 kill rounds; TASK_RELAY_KILL_ROUNDS=20 runs CI's full count")
		return 4
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "TASK_RELAY_KILL_ROUNDS")
	require.Positive(t, n, "TASK_RELAY_KILL_ROUNDS")
	return n
}

// TestServiceKilledDuringWorkspaceCreation: the service is SIGKILLed while
// it creates a job's worktree, again and again (killRounds times); the
// user's repository is left with no locked worktree entry, and every job
// succeeds.
func TestServiceKilledDuringWorkspaceCreation(t *testing.T) {
	t.Parallel()
	kills := killRounds(t)
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	// Enough files that `git worktree add` takes a while.
	for i := range 1000 {
		require.NoError(t, os.WriteFile(filepath.Join(repo, fmt.Sprintf("f%04d.txt", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644))
	}
	git(t, repo, "add", ".")
	git(t, repo, "commit", "--quiet", "-m", "many files")
	cfg := project(t, t.TempDir(), "#!/bin/sh\necho survived >> hello.txt\n")
	workspaces := filepath.Join(svc.dataDir, "workspaces")

	var ids []string
	for i := range kills {
		s := svc.front(t, cfg)
		// Everything submitted before ran to the end after the last kill.
		for _, id := range ids {
			s.waitState(t, id, "SUCCEEDED")
		}
		sub := s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, fmt.Sprintf("kill-%d", i))})
		id := sub["jobId"].(string)
		ids = append(ids, id)
		// Alternate the moment: as soon as the job directory exists, or
		// once git has begun the checkout.
		target := filepath.Join(workspaces, id)
		if i%2 == 1 {
			target = filepath.Join(target, "repo")
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(target); err == nil {
				break
			}
			require.True(t, time.Now().Before(deadline), "workspace %s never appeared", target)
			time.Sleep(time.Millisecond)
		}
		pid := svc.pid()
		require.NotZero(t, pid)
		require.NoError(t, killPID(pid))
		for pidExists(pid) {
			time.Sleep(5 * time.Millisecond)
		}
		_ = s.cmd.Wait()
	}
	final := svc.front(t, cfg)
	for _, id := range ids {
		job := final.waitState(t, id, "SUCCEEDED")
		require.Contains(t, final.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "+survived")
		require.LessOrEqual(t, job["attempt"].(float64), 20.0)
	}
	list := git(t, repo, "worktree", "list", "--porcelain")
	require.NotContains(t, list, "locked", "the user's repository keeps a locked worktree entry:\n%s", list)
	require.NotContains(t, list, "prunable")
}

// TestStreamableHTTP: an orchestrator reaches the service's MCP server
// over Streamable HTTP at /mcp with the operator token.
func TestStreamableHTTP(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	cfg := project(t, t.TempDir(), "#!/bin/sh\necho over-http >> hello.txt\n")
	// A front starts the service; HTTP clients then share it.
	closeFront(t, svc.front(t, cfg))
	token := svc.token(t)
	endpoint := svc.origin() + "/mcp?project=" + cfg

	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token, no MCP")

	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-http", Version: "0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer{token}}}, nil)
	require.NoError(t, err)
	defer session.Close()
	call := func(name string, args any) map[string]any { return callTool(t, session, name, args) }
	sub := call("jobs_submit", map[string]any{"spec": localSpec(repo, "http")})
	id := sub["jobId"].(string)
	state := ""
	for deadline := time.Now().Add(45 * time.Second); state != "SUCCEEDED"; {
		require.True(t, time.Now().Before(deadline), "job is %s", state)
		st := call("jobs_wait", map[string]any{"jobId": id, "timeoutS": 10})
		state = st["state"].(string)
	}
	res, err := session.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mcp://jobs/" + id + "/artifacts/patch.diff"})
	require.NoError(t, err)
	require.Contains(t, res.Contents[0].Text, "+over-http")

	// A request that names no project is refused with a reason.
	req, err := http.NewRequest(http.MethodPost, svc.origin()+"/mcp", strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "project")
}

// TestSubmitToBlackHoleRemoteIsBounded: a remote that accepts connections
// and never answers makes jobs_submit fail within the admission deadline,
// naming repo.url.
func TestSubmitToBlackHoleRemoteIsBounded(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "  admitTimeoutSec: 1\n")
	cfg := project(t, t.TempDir(), "#!/bin/sh\ntrue\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	s := svc.front(t, cfg)
	spec := localSpec("", "black-hole")
	spec["repo"] = map[string]any{"type": "git", "url": fmt.Sprintf("http://%s/repo.git", ln.Addr())}
	start := time.Now()
	res, err := s.session.CallTool(context.Background(), &mcp.CallToolParams{Name: "jobs_submit", Arguments: map[string]any{"spec": spec}})
	require.NoError(t, err)
	took := time.Since(start)
	require.True(t, res.IsError)
	text := res.Content[0].(*mcp.TextContent).Text
	require.Contains(t, text, "repo.url")
	require.Contains(t, text, "INVALID_SPEC")
	require.Less(t, took, 10*time.Second, "jobs_submit blocked %s", took)
}

// TestDaemonCommands: start, status, a second start, stop.
func TestDaemonCommands(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(binary, append([]string{"daemon"}, append(args, "--data-dir", svc.dataDir)...)...)
		cmd.Env = svc.env()
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return string(out), code
	}
	out, code := run("status")
	require.Equal(t, 3, code, out)
	require.Contains(t, out, "not running")

	out, code = run("start")
	require.Zero(t, code, out)
	require.Contains(t, out, "running (pid")
	pid := svc.pid()
	require.NotZero(t, pid)

	out, code = run("start")
	require.Zero(t, code, out)
	require.Equal(t, pid, svc.pid(), "a second start keeps the running service")

	out, code = run("status", "--json")
	require.Zero(t, code, out)
	var st struct {
		Running bool `json:"running"`
		Status  struct {
			PID    int    `json:"pid"`
			Origin string `json:"origin"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.True(t, st.Running)
	require.Equal(t, pid, st.Status.PID)
	require.Equal(t, svc.origin(), st.Status.Origin)

	out, code = run("run")
	require.Equal(t, 3, code, "a second service on one data dir is refused: %s", out)
	require.Contains(t, out, "already running")

	out, code = run("stop")
	require.Zero(t, code, out)
	require.Contains(t, out, "stopped")
	require.Eventually(t, func() bool { return !pidExists(pid) }, 10*time.Second, 10*time.Millisecond,
		"the service process is gone")
	_, err := os.Stat(filepath.Join(svc.dataDir, "service.json"))
	require.True(t, os.IsNotExist(err))

	out, code = run("logs", "-n", "3")
	require.Zero(t, code, out)
	require.Contains(t, out, "relay service stopped")
}

// cli runs the binary with args in dir against the service and returns
// its combined output and exit code.
func (s *relayService) cli(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

// TestJobsCLI: a person follows, inspects and applies a real job of the
// service from the command line, without an MCP client.
func TestJobsCLI(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	cfg := project(t, t.TempDir(), "#!/bin/sh\nfor i in 1 2 3; do echo step $i; sleep 0.3; done\necho cli-change >> hello.txt\n")
	s := svc.front(t, cfg)
	sub := s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "cli")})
	id := sub["jobId"].(string)

	out, code := svc.cli(t, repo, "jobs", "logs", id, "-f", "--config-dir", cfg)
	require.Zero(t, code, out)
	for _, want := range []string{"step 1", "step 2", "step 3"} {
		require.Contains(t, out, want)
	}
	s.waitState(t, id, "SUCCEEDED")

	out, code = svc.cli(t, repo, "jobs", "list", "--config-dir", cfg)
	require.Zero(t, code, out)
	require.Contains(t, out, id)
	require.Contains(t, out, "SUCCEEDED")
	out, code = svc.cli(t, repo, "jobs", "list", "--json", "--config-dir", cfg)
	require.Zero(t, code, out)
	var list struct {
		Total int `json:"total"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	require.Equal(t, 1, list.Total)

	out, code = svc.cli(t, repo, "jobs", "show", id, "--config-dir", cfg)
	require.Zero(t, code, out)
	require.Contains(t, out, "SUCCEEDED")
	require.Contains(t, out, "patch.diff")

	out, code = svc.cli(t, repo, "jobs", "diff", id, "--config-dir", cfg)
	require.Zero(t, code, out)
	require.Contains(t, out, "+cli-change")

	// apply refuses over an uncommitted edit of a file the patch touches,
	// and changes nothing.
	dirty := filepath.Join(repo, "hello.txt")
	require.NoError(t, os.WriteFile(dirty, []byte("my own edit\n"), 0o644))
	out, code = svc.cli(t, repo, "jobs", "apply", id, "--config-dir", cfg)
	require.NotZero(t, code, out)
	require.Contains(t, out, "hello.txt")
	b, err := os.ReadFile(dirty)
	require.NoError(t, err)
	require.Equal(t, "my own edit\n", string(b))

	// On a clean checkout it applies.
	git(t, repo, "checkout", "--", "hello.txt")
	out, code = svc.cli(t, repo, "jobs", "apply", id, "--config-dir", cfg)
	require.Zero(t, code, out)
	b, err = os.ReadFile(dirty)
	require.NoError(t, err)
	require.Contains(t, string(b), "cli-change")
}

// TestFrontOfAnotherVersion: a front of another version says so; an idle
// service is replaced by one of the front's version, a busy one is kept.
func TestFrontOfAnotherVersion(t *testing.T) {
	t.Parallel()
	// The release build: another version than the test binary's.
	newer := releaseBinary(t)

	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	// The job runs until the test has seen the busy service kept.
	gate := filepath.Join(t.TempDir(), "finish")
	cfg := project(t, t.TempDir(), fmt.Sprintf("#!/bin/sh\nwhile [ ! -e %q ]; do sleep 0.05; done\necho v >> hello.txt\n", gate))
	old := svc.front(t, cfg) // the test binary's version: dev
	oldPID := svc.pid()
	sub := old.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "busy")})
	id := sub["jobId"].(string)
	old.waitState(t, id, "RUNNING")
	closeFront(t, old)

	// Busy: the newer front keeps the running service and says so.
	out2, code := svc.runFront(t, newer, cfg)
	require.Zero(t, code, out2)
	require.Contains(t, out2, "another version")
	require.Equal(t, oldPID, svc.pid(), "a busy service is never replaced")
	require.NoError(t, os.WriteFile(gate, nil, 0o600))

	// Once idle, the newer front replaces it.
	watch := svc.front(t, cfg)
	watch.waitState(t, id, "SUCCEEDED")
	closeFront(t, watch)
	out2, code = svc.runFront(t, newer, cfg)
	require.Zero(t, code, out2)
	require.Contains(t, out2, "restarting the idle relay service")
	require.NotEqual(t, oldPID, svc.pid())
	st, code := svc.cli(t, repo, "daemon", "status", "--json", "--data-dir", svc.dataDir)
	require.Zero(t, code, st)
	require.Contains(t, st, `"version": "`+releaseVersion+`"`)
}

// runFront runs one short MCP session (initialize, its answer, then EOF)
// through the front bin and returns its stderr.
func (s *relayService) runFront(t *testing.T, bin, cfgDir string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config-dir", cfgDir)
	cmd.Env = s.env()
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	_, err = io.WriteString(stdin, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`+"\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the session was served: %s", stderr.String())
	require.Contains(t, line, `"id":1`)
	require.NoError(t, stdin.Close())
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return stderr.String(), code
}

// TestElicitationThroughFront: an APPROVAL routed to a human reaches the
// person through MCP elicitation on the client of the job's project, over
// the front and the service's socket; the stdio stream stays JSON-RPC only.
func TestElicitationThroughFront(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	dir := t.TempDir()
	script := writeScript(t, dir, "approve.sh", approvalScript)
	cfg := writeConfig(t, dir, fmt.Sprintf("executors:\n  approver: {kind: command, argv: [%q]}\naskAnswer:\n  routing:\n    byType: {APPROVAL: human}\n", script))
	var (
		mu       sync.Mutex
		messages []string
	)
	s := svc.frontClient(t, cfg, func(o *mcp.ClientOptions) {
		o.ElicitationHandler = func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			messages = append(messages, req.Params.Message)
			mu.Unlock()
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true, "comment": "through the front"}}, nil
		}
	}, "2025-11-25")
	id := s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "elicit")})["jobId"].(string)
	job := s.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	mu.Lock()
	require.Len(t, messages, 1)
	require.Contains(t, messages[0], "Apply the schema migration")
	mu.Unlock()
	approval := fileFromPatch(t, s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "approval.txt")
	require.Contains(t, approval, "through the front")
	s.assertOnlyJSONRPC(t)
}

// TestProjectConfigReload: the service reloads a project's config when it
// changes; a broken edit is reported to the submitting client and to
// doctor, and never half-applied.
func TestProjectConfigReload(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	dir := t.TempDir()
	cfg := project(t, dir, "#!/bin/sh\necho first-config >> hello.txt\n")
	s := svc.front(t, cfg)
	id := s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "r1")})["jobId"].(string)
	s.waitState(t, id, "SUCCEEDED")
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "+first-config")

	second := writeScript(t, dir, "second.sh", "#!/bin/sh\necho second-config >> hello.txt\n")
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "config.yaml"), []byte(fmt.Sprintf("executors:\n  work:\n    argv: [%q]\n", second)), 0o644))
	id = s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "r2")})["jobId"].(string)
	s.waitState(t, id, "SUCCEEDED")
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "+second-config", "the edited config applies")

	require.NoError(t, os.WriteFile(filepath.Join(cfg, "config.yaml"), []byte("executors:\n  work:\n    argv: [\"x\"]\n    timeoutS: soon\n"), 0o644))
	res, err := s.session.CallTool(context.Background(), &mcp.CallToolParams{Name: "jobs_submit",
		Arguments: map[string]any{"spec": localSpec(repo, "r3")}})
	require.NoError(t, err)
	require.True(t, res.IsError)
	text := res.Content[0].(*mcp.TextContent).Text
	require.Contains(t, text, "executors.work.timeoutS")
	require.Contains(t, text, "config.yaml:4")

	out, code := svc.cli(t, dir, "doctor", "--config-dir", cfg)
	require.NotZero(t, code, out)
	require.Contains(t, out, "timeoutS")

	// Jobs queued before the broken edit keep the last good config; once
	// the file is fixed, submits work again.
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "config.yaml"), []byte(fmt.Sprintf("executors:\n  work:\n    argv: [%q]\n", second)), 0o644))
	id = s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "r4")})["jobId"].(string)
	s.waitState(t, id, "SUCCEEDED")
}

// TestStopDrains: `daemon stop` lets a running job finish within the grace
// period; one that does not finish in time is released and retried by the
// next service.
func TestStopDrains(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	cfg := project(t, t.TempDir(), "#!/bin/sh\nif [ \"$TASK_RELAY_ATTEMPT\" = 1 ]; then sleep \"$(cat \"$TASK_RELAY_REPO/nap\" 2>/dev/null || echo 1)\"; fi\necho drained >> hello.txt\n")
	s := svc.front(t, cfg)
	id := s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "d1")})["jobId"].(string)
	s.waitState(t, id, "RUNNING")
	out, code := svc.cli(t, repo, "daemon", "stop", "--grace", "20s", "--data-dir", svc.dataDir)
	require.Zero(t, code, out)
	closeFront(t, s)

	s = svc.front(t, cfg)
	job := s.call(t, "jobs_get", map[string]any{"jobId": id})
	require.Equal(t, "SUCCEEDED", job["state"], "the job finished within the grace period")
	require.EqualValues(t, 1, job["attempt"])

	require.NoError(t, os.WriteFile(filepath.Join(repo, "nap"), []byte("60"), 0o644))
	id = s.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "d2")})["jobId"].(string)
	s.waitState(t, id, "RUNNING")
	start := time.Now()
	out, code = svc.cli(t, repo, "daemon", "stop", "--grace", "1s", "--data-dir", svc.dataDir)
	require.Zero(t, code, out)
	require.Less(t, time.Since(start), 20*time.Second)
	closeFront(t, s)

	s = svc.front(t, cfg)
	job = s.waitState(t, id, "SUCCEEDED")
	require.EqualValues(t, 2, job["attempt"], "released at the end of the grace period and retried")
}

// TestServeStandaloneOnlyFlags: settings that only an in-process relay can
// honour are refused, with the reason, when serve is a front.
func TestServeStandaloneOnlyFlags(t *testing.T) {
	t.Parallel()
	svc := newRelayService(t, "")
	cfg := project(t, t.TempDir(), "#!/bin/sh\ntrue\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--storage", "memory"}, "--storage applies to --standalone only"},
		{[]string{"--sqlite", "/tmp/x.db"}, "--sqlite applies to --standalone only"},
		{[]string{"--transport", "http"}, "serves MCP over Streamable HTTP at /mcp"},
	} {
		out, code := svc.cli(t, t.TempDir(), append([]string{"serve", "--config-dir", cfg}, tc.args...)...)
		require.Equal(t, 2, code, out)
		require.Contains(t, out, tc.want)
	}
	require.Zero(t, svc.pid(), "no service was started")
}
