package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// jobEnv is the environment the relay gives an executor, minus the origin
// and token the test client sets itself.
func jobEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		EnvJobID:  "job-1",
		EnvStepID: "step-7",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestAskHappyPath(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	f.pollPlan = []step{{status: http.StatusNoContent}, {status: http.StatusNoContent}}
	f.answer = func(ask relaytype.Ask) relaytype.AnswerRecord {
		rec := answered(ask, "Use the read replica.")
		rec.AnswerJSON = json.RawMessage(`{"choice":"replica"}`)
		rec.AskBack = "Which region?"
		return rec
	}
	c := f.client(jobEnv(map[string]string{
		EnvRepo:                   "github.com/u/r",
		EnvCommitSHA:              "0123456789abcdef0123456789abcdef01234567",
		EnvProfile:                "prod",
		EnvPolicyVersion:          "2.0",
		EnvFactPrefix + "branch":  "main",
		EnvFactPrefix + "ticket":  "T-1 <&>",
		EnvFactPrefix:             "nameless facts are skipped",
		"TASK_RELAY_FACTS_branch": "not a fact",
		"HOME":                    "/home/executor",
	}))
	schema := json.RawMessage(`{"type":"object","required":["choice"]}`)
	opts := &AskOptions{
		Role:         "code_reviewer",
		AllowedTools: []string{"database", "search"},
		ToolCaps:     map[string]any{"database": map[string]any{"timeout_ms": 5000, "read_only": true}},
		TimeoutS:     60,
		MaxTokens:    500,
		OutputSchema: schema,
		SystemAppend: "Answer in one word.",
	}

	ans, err := c.Ask(t.Context(), relaytype.AskChoice, "Which database should the report read?", opts)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusAnswered, ans.Status)
	require.Equal(t, "Use the read replica.", ans.Text)
	require.JSONEq(t, `{"choice":"replica"}`, string(ans.JSON))
	require.Equal(t, "Which region?", ans.AskBack)
	require.NotNil(t, ans.Attestation)
	require.NotNil(t, ans.Record)
	require.Equal(t, 3, f.polls(), "two 204s, then the answer")

	ask := <-f.posted
	require.Equal(t, "Ask", ask.Type)
	require.NoError(t, uuid.Validate(ask.AskID))
	require.Equal(t, "job-1", ask.JobID)
	require.Equal(t, "step-7", ask.StepID)
	require.Equal(t, relaytype.AskChoice, ask.AskType)
	require.Equal(t, "code_reviewer", ask.RoleID)
	require.Equal(t, &relaytype.AskConstraints{TimeoutS: 60, MaxTokens: 500, AllowedTools: []string{"database", "search"}}, ask.Constraints)
	require.NotNil(t, ask.Meta)
	require.Equal(t, "Answer in one word.", ask.Meta.PromptOverrides.SystemAppend)
	require.JSONEq(t, string(schema), string(ask.Meta.PromptOverrides.OutputSchema))

	const wantEnvelope = `{
		"job_snapshot": {"repo": "github.com/u/r", "commit_sha": "0123456789abcdef0123456789abcdef01234567",
			"env_profile": "prod", "policy_version": "2.0"},
		"facts": {"branch": "main", "ticket": "T-1 <&>"},
		"tool_caps": {"database": {"timeout_ms": 5000, "read_only": true}, "search": {}},
		"role": "code_reviewer"
	}`
	require.JSONEq(t, wantEnvelope, string(ask.ContextEnvelope))
	wantHash, err := relaytype.ContextHash([]byte(wantEnvelope))
	require.NoError(t, err)
	require.Equal(t, wantHash, ask.ContextHash)
	require.Equal(t, wantHash, ans.Attestation.ContextHash)
	// The envelope goes on the wire in canonical form, unescaped.
	canonical, err := relaytype.CanonicalJSON([]byte(wantEnvelope))
	require.NoError(t, err)
	require.Equal(t, string(canonical), string(ask.ContextEnvelope))
	// The caller's ToolCaps map is not changed.
	require.NotContains(t, opts.ToolCaps, "search")
}

func TestAskMinimal(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	c := f.client(map[string]string{EnvJobID: "job-1"})
	ans, err := c.Ask(t.Context(), relaytype.AskClarification, "Which logger?", &AskOptions{StepID: "s1"})
	require.NoError(t, err)
	require.Equal(t, "Use log/slog.", ans.Text)

	ask := <-f.posted
	require.Equal(t, `{"job_snapshot":{},"role":"default"}`, string(ask.ContextEnvelope))
	require.Equal(t, "602e574ff0ca9a3e28cb25cab8f15713404ef16211f9efb63b0bb7822859b6a8", ask.ContextHash)
	require.Equal(t, "s1", ask.StepID)
	require.Empty(t, ask.RoleID)
	require.Nil(t, ask.Constraints)
	require.Nil(t, ask.Meta)
}

func TestAskReconnectsAcross204s(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	for range 10 {
		f.pollPlan = append(f.pollPlan, step{status: http.StatusNoContent})
	}
	ans, err := f.client(jobEnv(nil)).Ask(t.Context(), relaytype.AskApproval, "Deploy?", &AskOptions{Wait: time.Second})
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusAnswered, ans.Status)
	require.Equal(t, 11, f.polls())
}

func TestAskRetriesTransientPostFailures(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	f.postPlan = []step{
		{status: http.StatusServiceUnavailable, code: "INTERNAL_ERROR"},
		{drop: true},
		{status: http.StatusTooManyRequests, code: "RATE_LIMITED"},
		{status: http.StatusBadGateway},
		{status: http.StatusRequestTimeout},
	}
	ans, err := f.client(jobEnv(nil)).Ask(t.Context(), relaytype.AskClarification, "Which logger?", nil)
	require.NoError(t, err)
	require.Equal(t, "Use log/slog.", ans.Text)

	bodies := f.postBodies()
	require.Len(t, bodies, 6)
	for _, b := range bodies[1:] {
		require.Equal(t, string(bodies[0]), string(b), "a retried POST must resend the same payload")
	}
	require.Len(t, f.posted, 1)
}

func TestAskRepeatIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	c := f.client(jobEnv(nil))
	opts := &AskOptions{AskID: uuid.NewString()}
	first, err := c.Ask(t.Context(), relaytype.AskClarification, "Which logger?", opts)
	require.NoError(t, err)
	second, err := c.Ask(t.Context(), relaytype.AskClarification, "Which logger?", opts)
	require.NoError(t, err)
	require.Equal(t, first.Text, second.Text)
	require.Equal(t, opts.AskID, first.Record.AskID)
	require.Len(t, f.posted, 1, "the repeat is not a new ask")

	// The same ID with another payload is a conflict, and final.
	_, err = c.Ask(t.Context(), relaytype.AskClarification, "Which tracer?", opts)
	require.ErrorIs(t, err, ErrProtocol)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusConflict, apiErr.StatusCode)
	require.Equal(t, relaytype.CodeConflict, apiErr.Code)
}

func TestAskPostGivesUp(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	for range 1000 {
		f.postPlan = append(f.postPlan, step{status: http.StatusServiceUnavailable, code: "INTERNAL_ERROR"})
	}
	c := f.client(jobEnv(nil))
	c.giveUp = 20 * time.Millisecond
	_, err := c.Ask(t.Context(), relaytype.AskClarification, "Which logger?", nil)
	require.ErrorIs(t, err, ErrProtocol)
	require.ErrorContains(t, err, "relay unavailable")
	require.ErrorContains(t, err, "503")
	require.Equal(t, 0, f.polls())
}

func TestAskSurvivesDroppedLongPolls(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	f.pollPlan = []step{
		{drop: true},
		{status: http.StatusNoContent},
		{cut: true},
		{status: http.StatusServiceUnavailable, code: "INTERNAL_ERROR"},
		{drop: true},
	}
	ans, err := f.client(jobEnv(nil)).Ask(t.Context(), relaytype.AskClarification, "Which logger?", nil)
	require.NoError(t, err)
	require.Equal(t, "Use log/slog.", ans.Text)
	require.Equal(t, 6, f.polls())
}

func TestAskContextMismatchFromRelay(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	c := f.client(jobEnv(nil))
	// Change the envelope on the wire, after it was hashed: the relay's
	// recomputed hash no longer matches context_hash.
	c.HTTPClient = &http.Client{Transport: tamper{base: f.srv.Client().Transport, from: `"role":"default"`, to: `"role":"admin"`}}

	ans, err := c.Ask(t.Context(), relaytype.AskPolicyDecision, "May I drop the table?", nil)
	require.Nil(t, ans)
	require.ErrorIs(t, err, ErrContextMismatch)
	require.NotErrorIs(t, err, ErrProtocol)
	require.Equal(t, relaytype.CodeContextMismatch, relaytype.CodeOf(err))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	require.Equal(t, "context_hash", apiErr.Field)
	require.Contains(t, err.Error(), "E_CONTEXT_MISMATCH")
	require.Len(t, f.postBodies(), 1, "a mismatch is not retried")
	require.Equal(t, 0, f.polls())
}

func TestAskAnswerStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		answer  func(relaytype.Ask) relaytype.AnswerRecord
		wantErr error
		wantMsg string
	}{
		{
			name: "answered_without_attestation",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := answered(ask, "Yes.")
				rec.Attestation = nil // the orchestrator answered
				return rec
			},
		},
		{
			name: "rejected",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := answered(ask, "")
				rec.Status, rec.Error = relaytype.StatusRejected, "E_CAPS_VIOLATION: tool shell not allowed"
				return rec
			},
			wantErr: ErrRejected,
			wantMsg: "tool shell not allowed",
		},
		{
			name: "timeout",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := answered(ask, "")
				rec.Status, rec.Attestation = relaytype.StatusTimeout, nil
				return rec
			},
			wantErr: ErrTimedOut,
		},
		{
			name: "error",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := answered(ask, "")
				rec.Status, rec.Error = relaytype.StatusError, "provider unavailable"
				return rec
			},
			wantErr: ErrAnswerError,
			wantMsg: "provider unavailable",
		},
		{
			name: "attested_for_another_context",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := answered(ask, "Drop it.")
				rec.Attestation.ContextHash = strings.Repeat("0", 64)
				return rec
			},
			wantErr: ErrContextMismatch,
			wantMsg: strings.Repeat("0", 64),
		},
		{
			name: "rejected_and_attested_for_another_context",
			answer: func(ask relaytype.Ask) relaytype.AnswerRecord {
				rec := answered(ask, "")
				rec.Status = relaytype.StatusRejected
				rec.Attestation.ContextHash = strings.Repeat("f", 64)
				return rec
			},
			wantErr: ErrContextMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRelay(t)
			f.answer = tt.answer
			ans, err := f.client(jobEnv(nil)).Ask(t.Context(), relaytype.AskApproval, "Deploy?", nil)
			require.NotNil(t, ans, "the answer comes back with the error")
			want := tt.answer(<-f.posted)
			require.Equal(t, want.Status, ans.Status)
			require.Equal(t, want.Error, ans.Error)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			for _, other := range []error{ErrRejected, ErrTimedOut, ErrAnswerError, ErrContextMismatch, ErrProtocol} {
				if other != tt.wantErr {
					require.NotErrorIs(t, err, other)
				}
			}
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestAskPermanentErrors(t *testing.T) {
	t.Parallel()
	t.Run("unauthorized", func(t *testing.T) {
		t.Parallel()
		f := newFakeRelay(t)
		c := f.client(jobEnv(nil))
		c.Token = "stolen"
		_, err := c.Ask(t.Context(), relaytype.AskClarification, "Which logger?", nil)
		require.ErrorIs(t, err, ErrProtocol)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
		require.Equal(t, relaytype.CodeUnauthorized, apiErr.Code)
		require.Len(t, f.postBodies(), 1)
	})
	t.Run("job_not_active", func(t *testing.T) {
		t.Parallel()
		f := newFakeRelay(t)
		f.postPlan = []step{{status: http.StatusConflict, code: "JOB_NOT_ACTIVE"}}
		_, err := f.client(jobEnv(nil)).Ask(t.Context(), relaytype.AskClarification, "Which logger?", nil)
		require.ErrorIs(t, err, ErrProtocol)
		require.ErrorContains(t, err, "POST /asks: 409 Conflict: JOB_NOT_ACTIVE")
		require.ErrorContains(t, err, "scripted failure")
	})
	t.Run("unknown_ask_on_poll", func(t *testing.T) {
		t.Parallel()
		f := newFakeRelay(t)
		f.pollPlan = []step{{status: http.StatusNoContent}, {status: http.StatusNotFound, code: "ASK_NOT_FOUND"}}
		_, err := f.client(jobEnv(nil)).Ask(t.Context(), relaytype.AskClarification, "Which logger?", nil)
		require.ErrorIs(t, err, ErrProtocol)
		require.ErrorContains(t, err, "ASK_NOT_FOUND")
		require.Equal(t, 2, f.polls())
	})
}

func TestAskInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    map[string]string
		typ    relaytype.AskType
		prompt string
		opts   *AskOptions
		msg    string
	}{
		{name: "no_job", env: map[string]string{EnvStepID: "s1"}, msg: "TASK_RELAY_JOB_ID is not set"},
		{name: "no_step", env: map[string]string{EnvJobID: "job-1"}, msg: "TASK_RELAY_STEP_ID is not set"},
		{name: "unknown_type", typ: "QUESTION", msg: `unknown ask type "QUESTION"`},
		{name: "lower_case_type", typ: "clarification", msg: "unknown ask type"},
		{name: "empty_prompt", prompt: " \n", msg: "empty prompt"},
		{name: "schema_not_json", opts: &AskOptions{OutputSchema: json.RawMessage(`{"type":`)}, msg: "output schema"},
		{name: "ask_id_not_uuid", opts: &AskOptions{AskID: "ask-1"}, msg: "not a UUID"},
		{name: "negative_timeout", opts: &AskOptions{TimeoutS: -1}, msg: "negative"},
		{name: "empty_tool", opts: &AskOptions{AllowedTools: []string{""}}, msg: "empty allowed tool"},
		{name: "bad_origin", env: jobEnv(map[string]string{EnvOrigin: "127.0.0.1:3415"}), msg: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRelay(t)
			env := tt.env
			if env == nil {
				env = jobEnv(nil)
			}
			c := f.client(env)
			if _, ok := env[EnvOrigin]; ok {
				c.Origin = ""
			}
			typ, prompt := tt.typ, tt.prompt
			if typ == "" {
				typ = relaytype.AskClarification
			}
			if prompt == "" {
				prompt = "Which logger?"
			}
			_, err := c.Ask(t.Context(), typ, prompt, tt.opts)
			require.ErrorIs(t, err, ErrInvalidAsk)
			require.ErrorContains(t, err, tt.msg)
			require.Empty(t, f.postBodies(), "nothing is sent")
		})
	}
}

func TestAskCancelStopsPolling(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	f.hold = true
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	done := make(chan error, 1)
	go func() {
		_, err := f.client(jobEnv(nil)).Ask(ctx, relaytype.AskClarification, "Which logger?", nil)
		done <- err
	}()
	<-f.polled // the long poll is being held
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Ask did not return after its context was canceled")
	}
	require.Equal(t, 1, f.polls(), "no poll after cancel")
}

func TestAskCancelStopsPostRetries(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	for range 1000 {
		f.postPlan = append(f.postPlan, step{status: http.StatusServiceUnavailable})
	}
	ctx, cancel := context.WithCancel(t.Context())
	c := f.client(jobEnv(nil))
	c.backoffBase, c.backoffCap = time.Hour, time.Hour // only cancel can end the wait
	c.HTTPClient = &http.Client{Transport: notify{base: f.srv.Client().Transport, sent: cancel}}
	_, err := c.Ask(ctx, relaytype.AskClarification, "Which logger?", nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, f.postBodies(), 1)
}

func TestEnvelope(t *testing.T) {
	t.Parallel()
	minimal, err := relaytype.ContextHash([]byte(`{"job_snapshot":{},"role":"default"}`))
	require.NoError(t, err)

	tests := []struct {
		name string
		env  map[string]string
		opts *AskOptions
		want string
	}{
		{name: "empty_env", env: map[string]string{}, want: `{"job_snapshot":{},"role":"default"}`},
		{
			name: "smart_defaults",
			env: map[string]string{
				EnvRepo: "unknown", EnvCommitSHA: "unknown", EnvProfile: "dev", EnvPolicyVersion: "1.0",
			},
			opts: &AskOptions{ToolCaps: map[string]any{}, AllowedTools: nil},
			want: `{"job_snapshot":{},"role":"default"}`,
		},
		{
			name: "everything",
			env: map[string]string{
				EnvRepo: "github.com/u/r", EnvCommitSHA: "abc", EnvProfile: "staging", EnvPolicyVersion: "1.1",
				EnvFactPrefix + "branch": "main", EnvFactPrefix + "Mixed_Case": "kept", EnvFactPrefix + "empty": "",
			},
			opts: &AskOptions{
				Role:         "finder",
				AllowedTools: []string{"grep", "database", "grep"},
				ToolCaps:     map[string]any{"database": map[string]any{"read_only": true}},
			},
			want: `{"job_snapshot":{"repo":"github.com/u/r","commit_sha":"abc","env_profile":"staging","policy_version":"1.1"},
				"facts":{"branch":"main","Mixed_Case":"kept","empty":""},
				"tool_caps":{"database":{"read_only":true},"grep":{}},"role":"finder"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := testEnv(tt.env)
			c := &Client{Env: e.lookup, Environ: e.environ}
			env, err := c.Envelope(tt.opts)
			require.NoError(t, err)
			raw, err := json.Marshal(env)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(raw))
			got, err := env.Hash()
			require.NoError(t, err)
			want, err := relaytype.ContextHash([]byte(tt.want))
			require.NoError(t, err)
			require.Equal(t, want, got)
			if tt.want == `{"job_snapshot":{},"role":"default"}` {
				require.Equal(t, minimal, got)
			}
		})
	}
}

func TestNewFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c := &Client{Env: testEnv{}.lookup}
	u, err := c.origin()
	require.NoError(t, err)
	require.Equal(t, DefaultOrigin, u.String())
	require.Empty(t, c.token())

	c = &Client{Env: testEnv{EnvOrigin: "http://relay:9000/", EnvToken: "tok"}.lookup}
	u, err = c.origin()
	require.NoError(t, err)
	require.Equal(t, "http://relay:9000", u.String())
	require.Equal(t, "tok", c.token())
}

// tamper rewrites request bodies on their way to the relay.
type tamper struct {
	base     http.RoundTripper
	from, to string
}

func (tr tamper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		raw, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		raw = bytes.ReplaceAll(raw, []byte(tr.from), []byte(tr.to))
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(raw))
		req.ContentLength = int64(len(raw))
	}
	return tr.base.RoundTrip(req)
}

// notify calls sent after each response.
type notify struct {
	base http.RoundTripper
	sent func()
}

func (n notify) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := n.base.RoundTrip(req)
	n.sent()
	return resp, err
}

func TestAPIErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  APIError
		want string
	}{
		{APIError{Op: "POST /asks", StatusCode: 400, Code: "INVALID_REQUEST", Field: "step_id", Message: "step_id: required"},
			"POST /asks: 400 Bad Request: INVALID_REQUEST: step_id: required"},
		{APIError{Op: "POST /asks", StatusCode: 400, Code: "E_CAPS_VIOLATION", Field: "tool_caps", Message: "shell is not allowed"},
			"POST /asks: 400 Bad Request: E_CAPS_VIOLATION: tool_caps: shell is not allowed"},
		{APIError{Op: "GET /asks/x/answer", StatusCode: 502, Message: "bad gateway"},
			"GET /asks/x/answer: 502 Bad Gateway: bad gateway"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.err.Error())
	}
}
