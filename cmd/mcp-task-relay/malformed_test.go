package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawSession drives a relay's stdio with raw lines, as a broken or hostile
// client would.
type rawSession struct {
	stdin io.WriteCloser
	lines chan []byte
	seq   int
}

// rawReply is one JSON-RPC response.
type rawReply struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw []byte
}

// startRaw starts cmd, a relay on stdio, and returns a raw session on it.
func startRaw(t *testing.T, cmd *exec.Cmd) *rawSession {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})
	s := &rawSession{stdin: stdin, lines: make(chan []byte, 100)}
	go func() {
		defer close(s.lines)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			s.lines <- line
		}
	}()
	return s
}

func (s *rawSession) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(s.stdin, line+"\n")
	require.NoError(t, err)
}

// next returns the next response the relay writes, skipping its
// notifications.
func (s *rawSession) next(t *testing.T) rawReply {
	t.Helper()
	for {
		select {
		case line, ok := <-s.lines:
			require.True(t, ok, "the relay closed its stdout")
			var r rawReply
			require.NoError(t, json.Unmarshal(line, &r), "stdout line %q", line)
			if r.Method != "" {
				continue
			}
			r.raw = line
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("no reply from the relay")
		}
	}
}

// call sends a request and returns its result, failing on an error.
func (s *rawSession) call(t *testing.T, method string, params any) json.RawMessage {
	t.Helper()
	s.seq++
	id := fmt.Sprintf(`"call-%d"`, s.seq)
	p, err := json.Marshal(params)
	require.NoError(t, err)
	s.send(t, `{"jsonrpc":"2.0","id":`+id+`,"method":"`+method+`","params":`+string(p)+`}`)
	r := s.next(t)
	require.Equal(t, id, string(r.ID), "reply to %s: %.500s", method, r.raw)
	require.Nil(t, r.Error, "%s: %.500s", method, r.raw)
	return r.Result
}

// tool calls a tool and returns its structured result.
func (s *rawSession) tool(t *testing.T, name string, args any) map[string]any {
	t.Helper()
	var res struct {
		IsError           bool           `json:"isError"`
		StructuredContent map[string]any `json:"structuredContent"`
	}
	raw := s.call(t, "tools/call", map[string]any{"name": name, "arguments": args})
	require.NoError(t, json.Unmarshal(raw, &res))
	require.False(t, res.IsError, "%s: %s", name, raw)
	return res.StructuredContent
}

// holdScript records its pid and waits for a line on a FIFO.
const holdScript = `#!/bin/sh
echo "$$" > %q
read go < %q
echo "### NOTES"
echo "released"
`

// TestStdioSurvivesMalformedLines writes the hand-made bad lines of the
// review to `serve --standalone`, between valid requests, while a job
// runs: each gets its JSON-RPC error, every valid request is answered, and
// the job runs on to success.
func TestStdioSurvivesMalformedLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	h := newHold(t, dir)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  default: hold
  hold: {kind: command, argv: [%q]}
`, filepath.Join(dir, "data"), h.script))
	cmd := exec.Command(binary, "serve", "--standalone", "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	cmd.Env = append(os.Environ(), "TASK_RELAY_LOG_LEVEL=debug", "TASK_RELAY_ANSWER_RUNNER_ENABLED=false")
	s := startRaw(t, cmd)
	spec := seedSpec(repo, base, "malformed")
	spec["repo"] = map[string]any{"type": "local", "path": repo, "baseBranch": "main", "baselineCommit": base}
	survivesMalformedLines(t, s, h, spec)
	// The session ends cleanly when the client closes stdin.
	require.NoError(t, s.stdin.Close())
	require.NoError(t, cmd.Wait())
}

// TestFrontSurvivesMalformedLines does the same through a front: the
// service's side of the socket answers the bad lines, and neither the
// session nor the service nor the job ends.
func TestFrontSurvivesMalformedLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, _ := newRepo(t)
	h := newHold(t, dir)
	svc := newRelayService(t, "")
	cmd := exec.Command(binary, "serve", "--config-dir", project(t, dir, fmt.Sprintf(holdScript, h.pidfile, h.fifo)))
	cmd.Env = svc.env()
	s := startRaw(t, cmd)
	survivesMalformedLines(t, s, h, localSpec(repo, "malformed-front"))
	servicePID := svc.pid()
	require.NotZero(t, servicePID)
	require.True(t, alive(servicePID), "the relay service died")
	require.NoError(t, s.stdin.Close())
	require.NoError(t, cmd.Wait())
	require.True(t, alive(servicePID), "the relay service died with the session")
}

// hold is an executor that records its pid and waits until released.
type hold struct {
	script, pidfile, fifo string
}

func newHold(t *testing.T, dir string) *hold {
	t.Helper()
	h := &hold{pidfile: filepath.Join(dir, "pid"), fifo: filepath.Join(dir, "release")}
	require.NoError(t, mkfifo(h.fifo))
	h.script = writeScript(t, dir, "hold.sh", fmt.Sprintf(holdScript, h.pidfile, h.fifo))
	return h
}

func (h *hold) release(t *testing.T) {
	t.Helper()
	w, err := os.OpenFile(h.fifo, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = io.WriteString(w, "go\n")
	require.NoError(t, err)
	require.NoError(t, w.Close())
}

// survivesMalformedLines initializes s, submits spec (whose executor is
// h), and while the job runs sends every bad line, each followed by a
// tools/list that must be answered; then it releases the job and waits for
// its success.
func survivesMalformedLines(t *testing.T, s *rawSession, h *hold, spec map[string]any) {
	t.Helper()
	s.call(t, "initialize", map[string]any{"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "malformed", "version": "0"}})
	s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	jobID := s.tool(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	pids := readPids(t, h.pidfile, 1)

	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for _, c := range []struct {
		name string
		line string
		code int64  // 0: a result, or no reply when id is empty
		id   string // the reply's id
	}{
		{"garbage", "this is not json", -32700, "null"},
		{"BOM", "\xef\xbb\xbf" + `{"jsonrpc":"2.0","id":"bom","method":"ping"}`, 0, `"bom"`},
		{"empty batch", "[]", -32600, "null"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, -32600, "null"},
		{"id object", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, -32600, "null"},
		{"id array", `{"jsonrpc":"2.0","id":[],"method":"ping"}`, -32600, "null"},
		{"id bool", `{"jsonrpc":"2.0","id":false,"method":"ping"}`, -32600, "null"},
		{"id float", `{"jsonrpc":"2.0","id":0.25,"method":"ping"}`, -32600, "null"},
		{"id huge number", `{"jsonrpc":"2.0","id":1e400,"method":"ping"}`, -32600, "null"},
		{"missing jsonrpc", `{"id":21,"method":"ping"}`, -32600, "21"},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":22,"method":"ping"}`, -32600, "22"},
		{"method not a string", `{"jsonrpc":"2.0","id":23,"method":["ping"]}`, -32600, "23"},
		{"deep nesting 10k", `{"jsonrpc":"2.0","id":24,"method":"ping","params":{"x":` + deep + `}}`, -32600, "24"},
		{"17 MiB line", `{"jsonrpc":"2.0","id":25,"method":"ping","params":{"pad":"` + strings.Repeat("a", 17<<20) + `"}}`, -32600, "null"},
		{"empty line", "", 0, ""},
		{"whitespace line", " \t\r", 0, ""},
		{"scalar", "42", -32600, "null"},
		{"null", "null", -32600, "null"},
	} {
		s.send(t, c.line)
		if c.id != "" {
			r := s.next(t)
			require.Equal(t, c.id, string(r.ID), "%s: %.300s", c.name, r.raw)
			if c.code == 0 {
				require.Nil(t, r.Error, "%s: %.300s", c.name, r.raw)
			} else {
				require.NotNil(t, r.Error, "%s: %.300s", c.name, r.raw)
				require.Equal(t, c.code, r.Error.Code, "%s: %.300s", c.name, r.raw)
			}
		}
		require.Contains(t, string(s.call(t, "tools/list", map[string]any{})), "jobs_submit", "after %s", c.name)
	}

	// Bad lines sent back to back are answered in order.
	s.send(t, "}{\n[]\n"+`{"jsonrpc":"2.0","id":31,"method":7}`+"\n"+`{"jsonrpc":"2.0","id":32,"method":"ping"}`)
	for _, want := range []struct {
		id   string
		code int64
	}{{"null", -32700}, {"null", -32600}, {"31", -32600}, {"32", 0}} {
		r := s.next(t)
		require.Equal(t, want.id, string(r.ID), "%.300s", r.raw)
		if want.code == 0 {
			require.Nil(t, r.Error, "%.300s", r.raw)
		} else {
			require.NotNil(t, r.Error, "%.300s", r.raw)
			require.Equal(t, want.code, r.Error.Code, "%.300s", r.raw)
		}
	}

	// The job and its executor lived through all of it.
	require.True(t, alive(pids[0]), "the executor died")
	require.Equal(t, "RUNNING", s.tool(t, "jobs_get", map[string]any{"jobId": jobID})["state"])
	h.release(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		job := s.tool(t, "jobs_get", map[string]any{"jobId": jobID})
		if job["state"] == "SUCCEEDED" {
			return
		}
		require.Contains(t, []any{"RUNNING", "QUEUED"}, job["state"], "job: %v", job)
		require.True(t, time.Now().Before(deadline), "job still %v", job["state"])
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPipedRequestsAreAnswered: a script that pipes its requests into the
// relay and closes stdin right after them (printf ... | mcp-task-relay
// serve) gets every answer before the relay exits, standalone and through
// a front.
func TestPipedRequestsAreAnswered(t *testing.T) {
	t.Parallel()
	input := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"script","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"jobs_list","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"resources/templates/list"}`,
		`{"jsonrpc":"2.0","id":5,"method":"ping"}`,
	}, "\n") + "\n"
	run := func(t *testing.T, cmd *exec.Cmd) {
		cmd.Stdin = strings.NewReader(input)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		out, err := cmd.Output()
		require.NoError(t, err, "stderr:\n%s", stderr.String())
		ids := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if line == "" {
				continue
			}
			var r rawReply
			require.NoError(t, json.Unmarshal([]byte(line), &r), "%s", line)
			require.Nil(t, r.Error, "%s", line)
			ids[string(r.ID)] = true
		}
		require.Equal(t, map[string]bool{"1": true, "2": true, "3": true, "4": true, "5": true}, ids,
			"answers on stdout; stderr:\n%s", stderr.String())
	}
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cmd := exec.Command(binary, "serve", "--standalone", "--storage", "memory")
		cmd.Env = append(os.Environ(), "TASK_RELAY_DATA_DIR="+filepath.Join(dir, "data"), "TASK_RELAY_ANSWER_RUNNER_ENABLED=false")
		run(t, cmd)
	})
	t.Run("front", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		svc := newRelayService(t, "")
		cmd := exec.Command(binary, "serve", "--config-dir", project(t, dir, "#!/bin/sh\nexit 0\n"))
		cmd.Env = svc.env()
		run(t, cmd)
	})
}
