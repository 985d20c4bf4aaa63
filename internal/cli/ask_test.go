package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// askRelay is a fake of the relay's Ask/Answer HTTP API: it checks the
// token and the context hash of each ask, answers the first long poll with
// 204 and the next with answer(ask).
type askRelay struct {
	srv    *httptest.Server
	token  string
	answer func(relaytype.Ask) relaytype.AnswerRecord

	mu    sync.Mutex
	asks  []relaytype.Ask
	polls int
}

func newAskRelay(t *testing.T, answer func(relaytype.Ask) relaytype.AnswerRecord) *askRelay {
	t.Helper()
	r := &askRelay{token: "tok-" + t.Name(), answer: answer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /asks", r.post)
	mux.HandleFunc("GET /asks/{id}/answer", r.get)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *askRelay) post(w http.ResponseWriter, req *http.Request) {
	if r.token != "" && req.Header.Get("Authorization") != "Bearer "+r.token {
		relayError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad token")
		return
	}
	var ask relaytype.Ask
	if err := json.NewDecoder(req.Body).Decode(&ask); err != nil {
		relayError(w, http.StatusBadRequest, "INVALID_REQUEST", err.Error())
		return
	}
	if ask.JobID == "job-inactive" {
		relayError(w, http.StatusConflict, "JOB_NOT_ACTIVE", "job job-inactive is not running")
		return
	}
	if hash, err := relaytype.ContextHash(ask.ContextEnvelope); err != nil || hash != ask.ContextHash {
		relayError(w, http.StatusBadRequest, "E_CONTEXT_MISMATCH", "context hash mismatch")
		return
	}
	r.mu.Lock()
	r.asks = append(r.asks, ask)
	r.mu.Unlock()
	w.Header().Set("Location", "/asks/"+ask.AskID+"/answer")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(relaytype.AskRecord{AskID: ask.AskID, JobID: ask.JobID, Status: relaytype.StatusPending})
}

func (r *askRelay) get(w http.ResponseWriter, req *http.Request) {
	if r.token != "" && req.Header.Get("Authorization") != "Bearer "+r.token {
		relayError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad token")
		return
	}
	r.mu.Lock()
	r.polls++
	first := r.polls == 1
	var ask *relaytype.Ask
	for i := range r.asks {
		if r.asks[i].AskID == req.PathValue("id") {
			ask = &r.asks[i]
		}
	}
	r.mu.Unlock()
	switch {
	case ask == nil:
		relayError(w, http.StatusNotFound, "ASK_NOT_FOUND", "no such ask")
	case first:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.answer(*ask))
	}
}

func (r *askRelay) posted() []relaytype.Ask {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relaytype.Ask(nil), r.asks...)
}

func relayError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

// env is the executor environment the relay would set.
func (r *askRelay) env() map[string]string {
	return map[string]string{
		"ASK_ANSWER_ORIGIN":      r.srv.URL,
		"TASK_RELAY_TOKEN":       r.token,
		"TASK_RELAY_JOB_ID":      "job-1",
		"TASK_RELAY_STEP_ID":     "step-1",
		"TASK_RELAY_FACT_branch": "main",
	}
}

// attested is an answer attested for the ask's context.
func attested(ask relaytype.Ask, status relaytype.AnswerStatus) relaytype.AnswerRecord {
	return relaytype.AnswerRecord{
		AskID: ask.AskID, JobID: ask.JobID, StepID: ask.StepID, Status: status,
		Attestation: &relaytype.Attestation{ContextHash: ask.ContextHash, RoleID: "clarifier"},
		CreatedAt:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

type askRun struct {
	code           int
	stdout, stderr string
}

// runAsk runs the ask command in-process with env as its whole environment.
func runAsk(t *testing.T, env map[string]string, stdin string, args ...string) askRun {
	t.Helper()
	cmd := newAskWith(askEnv{
		lookup: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		environ: func() []string {
			var out []string
			for k, v := range env {
				out = append(out, k+"="+v)
			}
			return out
		},
	})
	var stdout, stderr bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	return askRun{code: exitCode(t, cmd.ExecuteContext(t.Context())), stdout: stdout.String(), stderr: stderr.String()}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exitError
	require.True(t, errors.As(err, &ee), "want an exitError, got %T", err)
	require.NoError(t, ee.err, "the command prints its own message")
	return ee.code
}

// requireFailed checks a failed run: its exit code, nothing on stdout, and
// one prefixed line on stderr containing msg.
func requireFailed(t *testing.T, run askRun, code int, msg string) {
	t.Helper()
	require.Equal(t, code, run.code, "stderr: %s", run.stderr)
	require.Empty(t, run.stdout)
	require.True(t, strings.HasPrefix(run.stderr, "mcp-task-relay ask: "), "stderr: %q", run.stderr)
	require.Equal(t, 1, strings.Count(run.stderr, "\n"), "one line: %q", run.stderr)
	require.Contains(t, run.stderr, msg)
}

func TestAskAnswered(t *testing.T) {
	t.Parallel()
	relay := newAskRelay(t, func(ask relaytype.Ask) relaytype.AnswerRecord {
		rec := attested(ask, relaytype.StatusAnswered)
		rec.AnswerText = "Use log/slog."
		return rec
	})
	schema := filepath.Join(t.TempDir(), "schema.json")
	require.NoError(t, os.WriteFile(schema, []byte("{\n  \"type\": \"object\"\n}\n"), 0o600))

	run := runAsk(t, relay.env(), "",
		"--type", "Clarification", "--role", "clarifier", "--schema", schema,
		"--allowed-tool", "grep", "--allowed-tool", "database", "--timeout", "90",
		"Which logger should new code use?")
	require.Equal(t, 0, run.code, "stderr: %s", run.stderr)
	require.Equal(t, "Use log/slog.\n", run.stdout)
	require.Empty(t, run.stderr)

	asks := relay.posted()
	require.Len(t, asks, 1)
	ask := asks[0]
	require.Equal(t, relaytype.AskClarification, ask.AskType)
	require.Equal(t, "Which logger should new code use?", ask.Prompt)
	require.Equal(t, "job-1", ask.JobID)
	require.Equal(t, "step-1", ask.StepID)
	require.Equal(t, "clarifier", ask.RoleID)
	require.Equal(t, &relaytype.AskConstraints{TimeoutS: 90, AllowedTools: []string{"grep", "database"}}, ask.Constraints)
	require.JSONEq(t, `{"type":"object"}`, string(ask.Meta.PromptOverrides.OutputSchema))
	require.JSONEq(t, `{"job_snapshot":{},"facts":{"branch":"main"},"tool_caps":{"database":{},"grep":{}},"role":"clarifier"}`,
		string(ask.ContextEnvelope))
}

func TestAskPrintsJSON(t *testing.T) {
	t.Parallel()
	relay := newAskRelay(t, func(ask relaytype.Ask) relaytype.AnswerRecord {
		rec := attested(ask, relaytype.StatusAnswered)
		rec.AnswerJSON = json.RawMessage("{\n  \"logger\": \"slog\",\n  \"levels\": [1, 2]\n}")
		return rec
	})

	t.Run("answer_json_compact", func(t *testing.T) {
		t.Parallel()
		run := runAsk(t, relay.env(), "", "--type", "choice", "Which logger?")
		require.Equal(t, 0, run.code, "stderr: %s", run.stderr)
		require.Equal(t, `{"logger":"slog","levels":[1,2]}`+"\n", run.stdout)
	})
	t.Run("record", func(t *testing.T) {
		t.Parallel()
		run := runAsk(t, relay.env(), "", "--type", "CHOICE", "--json", "Which logger?")
		require.Equal(t, 0, run.code, "stderr: %s", run.stderr)
		require.Equal(t, 1, strings.Count(run.stdout, "\n"))
		var rec relaytype.AnswerRecord
		require.NoError(t, json.Unmarshal([]byte(run.stdout), &rec))
		require.Equal(t, relaytype.StatusAnswered, rec.Status)
		require.NotEmpty(t, rec.AskID)
		require.JSONEq(t, `{"logger":"slog","levels":[1,2]}`, string(rec.AnswerJSON))
		require.Equal(t, "clarifier", rec.Attestation.RoleID)
		require.Contains(t, run.stdout, `"askId":`)
	})
}

func TestAskPromptFromStdin(t *testing.T) {
	t.Parallel()
	relay := newAskRelay(t, func(ask relaytype.Ask) relaytype.AnswerRecord {
		rec := attested(ask, relaytype.StatusAnswered)
		rec.AnswerText = "yes"
		return rec
	})
	run := runAsk(t, relay.env(), "Deploy to staging?\nIt has migration 42.\n", "--type", "resource-fetch", "-")
	require.Equal(t, 0, run.code, "stderr: %s", run.stderr)
	require.Equal(t, "yes\n", run.stdout)
	asks := relay.posted()
	require.Len(t, asks, 1)
	require.Equal(t, "Deploy to staging?\nIt has migration 42.", asks[0].Prompt)
	require.Equal(t, relaytype.AskResourceFetch, asks[0].AskType)
}

func TestAskOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer func(relaytype.Ask) relaytype.AnswerRecord
		code   int
		msg    string
	}{
		{
			name: "rejected",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := attested(ask, relaytype.StatusRejected)
				rec.Error = "E_CAPS_VIOLATION: tool shell\nis not allowed"
				return rec
			},
			code: 3,
			msg:  "ask rejected: E_CAPS_VIOLATION: tool shell is not allowed",
		},
		{
			name:   "timeout",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord { return attested(ask, relaytype.StatusTimeout) },
			code:   4,
			msg:    "ask timed out",
		},
		{
			name: "error",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := attested(ask, relaytype.StatusError)
				rec.Error = "provider unavailable"
				return rec
			},
			code: 5,
			msg:  "provider unavailable",
		},
		{
			name: "attestation_mismatch",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := attested(ask, relaytype.StatusAnswered)
				rec.AnswerText = "Drop the table."
				rec.Attestation.ContextHash = strings.Repeat("a", 64)
				return rec
			},
			code: 5,
			msg:  "context hash does not match",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			relay := newAskRelay(t, tt.answer)
			requireFailed(t, runAsk(t, relay.env(), "", "--type", "approval", "Deploy?"), tt.code, tt.msg)

			// With --json the record is printed whatever the outcome.
			run := runAsk(t, relay.env(), "", "--type", "approval", "--json", "Deploy?")
			require.Equal(t, tt.code, run.code)
			var rec relaytype.AnswerRecord
			require.NoError(t, json.Unmarshal([]byte(run.stdout), &rec))
			require.Equal(t, tt.answer(relay.posted()[1]).Status, rec.Status)
		})
	}
}

func TestAskRelayErrors(t *testing.T) {
	t.Parallel()
	relay := newAskRelay(t, func(ask relaytype.Ask) relaytype.AnswerRecord { return attested(ask, relaytype.StatusAnswered) })

	t.Run("job_not_active", func(t *testing.T) {
		t.Parallel()
		env := relay.env()
		env["TASK_RELAY_JOB_ID"] = "job-inactive"
		requireFailed(t, runAsk(t, env, "", "--type", "approval", "Deploy?"), 5, "409 Conflict: JOB_NOT_ACTIVE: job job-inactive is not running")
	})
	t.Run("unauthorized", func(t *testing.T) {
		t.Parallel()
		env := relay.env()
		env["TASK_RELAY_TOKEN"] = "wrong"
		requireFailed(t, runAsk(t, env, "", "--type", "approval", "Deploy?"), 5, "UNAUTHORIZED")
	})
	t.Run("context_mismatch", func(t *testing.T) {
		t.Parallel()
		// A relay whose hash disagrees with ours answers E_CONTEXT_MISMATCH.
		mismatch := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			relayError(w, http.StatusBadRequest, "E_CONTEXT_MISMATCH", "context_hash does not match the envelope")
		}))
		t.Cleanup(mismatch.Close)
		env := relay.env()
		env["ASK_ANSWER_ORIGIN"] = mismatch.URL
		requireFailed(t, runAsk(t, env, "", "--type", "approval", "Deploy?"), 5, "E_CONTEXT_MISMATCH")
	})
}

func TestAskUsageErrors(t *testing.T) {
	t.Parallel()
	relay := newAskRelay(t, func(ask relaytype.Ask) relaytype.AnswerRecord { return attested(ask, relaytype.StatusAnswered) })
	dir := t.TempDir()
	badSchema := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(badSchema, []byte(`{"type":`), 0o600))
	noJob := relay.env()
	delete(noJob, "TASK_RELAY_JOB_ID")
	noStep := relay.env()
	delete(noStep, "TASK_RELAY_STEP_ID")
	badOrigin := relay.env()
	badOrigin["ASK_ANSWER_ORIGIN"] = "relay:3415"

	tests := []struct {
		name  string
		env   map[string]string
		stdin string
		args  []string
		msg   string
	}{
		{name: "no_type", args: []string{"Deploy?"}, msg: "--type is required"},
		{name: "unknown_type", args: []string{"--type", "question", "Deploy?"}, msg: `unknown ask type "question"`},
		{name: "no_prompt", args: []string{"--type", "approval"}, msg: "want one PROMPT argument"},
		{name: "two_prompts", args: []string{"--type", "approval", "a", "b"}, msg: "got 2"},
		{name: "empty_prompt", args: []string{"--type", "approval", "  "}, msg: "empty prompt"},
		{name: "empty_stdin", stdin: "\n", args: []string{"--type", "approval", "-"}, msg: "empty prompt"},
		{name: "unknown_flag", args: []string{"--type", "approval", "--colour", "red", "Deploy?"}, msg: "unknown flag: --colour"},
		{name: "bad_timeout", args: []string{"--type", "approval", "--timeout", "soon", "Deploy?"}, msg: "--timeout"},
		{name: "negative_timeout", args: []string{"--type", "approval", "--timeout", "-1", "Deploy?"}, msg: "must not be negative"},
		{name: "missing_schema", args: []string{"--type", "approval", "--schema", filepath.Join(dir, "nope.json"), "Deploy?"}, msg: "nope.json"},
		{name: "invalid_schema", args: []string{"--type", "approval", "--schema", badSchema, "Deploy?"}, msg: "not valid JSON"},
		{name: "no_job", env: noJob, args: []string{"--type", "approval", "Deploy?"}, msg: "TASK_RELAY_JOB_ID is not set"},
		{name: "no_step", env: noStep, args: []string{"--type", "approval", "Deploy?"}, msg: "TASK_RELAY_STEP_ID is not set"},
		{name: "bad_origin", env: badOrigin, args: []string{"--type", "approval", "Deploy?"}, msg: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if env == nil {
				env = relay.env()
			}
			requireFailed(t, runAsk(t, env, tt.stdin, tt.args...), 2, tt.msg)
		})
	}
	require.Empty(t, relay.posted(), "no usage error reaches the relay")
}

// TestAskUnderRoot runs the command as the root command runs it, the way
// newRoot will once it adds newAsk.
func TestAskUnderRoot(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ask", newAsk().Name())
	for _, flag := range []string{"type", "role", "schema", "allowed-tool", "timeout", "json"} {
		require.NotNil(t, newAsk().Flags().Lookup(flag), flag)
	}

	relay := newAskRelay(t, func(ask relaytype.Ask) relaytype.AnswerRecord {
		rec := attested(ask, relaytype.StatusAnswered)
		rec.AnswerText = "fine"
		return rec
	})
	env := relay.env()
	run := func(args ...string) askRun {
		var stdout, stderr bytes.Buffer
		root := newRoot(strings.NewReader(""), &stdout, &stderr)
		// Replace the process-environment ask command, once root has it.
		for _, c := range root.Commands() {
			if c.Name() == "ask" {
				root.RemoveCommand(c)
			}
		}
		root.AddCommand(newAskWith(askEnv{
			lookup:  func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			environ: func() []string { return nil },
		}))
		root.SetArgs(args)
		return askRun{code: exitCode(t, root.ExecuteContext(t.Context())), stdout: stdout.String(), stderr: stderr.String()}
	}
	got := run("ask", "--type", "clarification", "Is it fine?")
	require.Equal(t, 0, got.code, "stderr: %s", got.stderr)
	require.Equal(t, "fine\n", got.stdout)
	requireFailed(t, run("ask", "--bogus", "x"), 2, "unknown flag: --bogus")
	requireFailed(t, run("ask", "--type", "clarification"), 2, "want one PROMPT argument")
}
