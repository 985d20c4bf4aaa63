package codex

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// codexRollout writes a rollout file of session id in the layout codex
// 0.171 uses (sessions/YYYY/MM/DD), or directly under sessions when flat.
func codexRollout(t *testing.T, codexHome, id string, flat bool, lines ...string) {
	t.Helper()
	dir := filepath.Join(codexHome, "sessions", "2026", "11", "27")
	if flat {
		dir = filepath.Join(codexHome, "sessions")
	}
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rollout-2026-11-27T15-03-31-"+id+".jsonl"),
		[]byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// codexTokenCount is a token_count event of a rollout file.
func codexTokenCount(in, cached, out int) string {
	return `{"timestamp":"2026-11-27T15:03:31.300Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":` +
		strconv.Itoa(in) + `,"cached_input_tokens":` + strconv.Itoa(cached) + `,"cache_write_input_tokens":0,"output_tokens":` + strconv.Itoa(out) +
		`,"reasoning_output_tokens":0,"total_tokens":1},"last_token_usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}},"rate_limits":null}}`
}

const codexTestSession = "01a21d88-7207-75b1-851f-a861b4d53915"

func TestCodexPrepareResume(t *testing.T) {
	t.Parallel()
	rollout := []string{
		`{"timestamp":"2026-11-27T15:03:31.081Z","type":"session_meta","payload":{"id":"` + codexTestSession + `","base_instructions":{"text":"` + strings.Repeat("long ", 30000) + `"}}}`,
		`{"type":"event_msg","payload":{"type":"token_count","info":null}}`,
		codexTokenCount(100, 10, 5),
		`{"type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"mentions \"token_count\" in passing"}]}}`,
		`{"type":"event_msg","payload":{"type":"token_count"`,
		codexTokenCount(200, 20, 10),
		`{"type":"event_msg","payload":{"type":"task_complete","last_agent_message":"Done."}}`,
	}
	baseline := func(t *testing.T, meta string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(meta, CodexUsageBaselineFile))
		if os.IsNotExist(err) {
			return ""
		}
		require.NoError(t, err)
		return string(b)
	}
	const want = `{"input_tokens":200,"cached_input_tokens":20,"output_tokens":10}`

	t.Run("CODEX_HOME", func(t *testing.T) {
		t.Parallel()
		home, meta := t.TempDir(), t.TempDir()
		codexRollout(t, home, codexTestSession, false, rollout...)
		req := &executor.Request{MetaDir: meta, ResumeSessionID: codexTestSession}
		require.NoError(t, Adapter{}.PrepareResume(t.Context(), &executor.AgentConfig{}, req,
			[]string{"CODEX_HOME=/elsewhere", "HOME=/nowhere", "CODEX_HOME=" + home}))
		require.Equal(t, want, baseline(t, meta))

		// Parse reports the run's own usage: the total less the baseline.
		out := Adapter{}.Parse(&executor.AgentConfig{}, req, []byte(
			`{"type":"thread.started","thread_id":"`+codexTestSession+`"}`+"\n"+
				`{"type":"turn.completed","usage":{"input_tokens":350,"cached_input_tokens":120,"output_tokens":17}}`), 0)
		require.Equal(t, executor.AgentUsage{InputTokens: 150, CachedInputTokens: 100, OutputTokens: 7}, out.Usage)
	})
	t.Run("HOME", func(t *testing.T) {
		t.Parallel()
		home, meta := t.TempDir(), t.TempDir()
		codexRollout(t, filepath.Join(home, ".codex"), codexTestSession, false, rollout...)
		req := &executor.Request{MetaDir: meta, ResumeSessionID: codexTestSession}
		require.NoError(t, Adapter{}.PrepareResume(t.Context(), &executor.AgentConfig{}, req, []string{"HOME=" + home}))
		require.Equal(t, want, baseline(t, meta))
	})
	t.Run("another layout", func(t *testing.T) {
		t.Parallel()
		home, meta := t.TempDir(), t.TempDir()
		codexRollout(t, home, codexTestSession, true, rollout...)
		req := &executor.Request{MetaDir: meta, ResumeSessionID: codexTestSession}
		require.NoError(t, Adapter{}.PrepareResume(t.Context(), &executor.AgentConfig{}, req, []string{"CODEX_HOME=" + home}))
		require.Equal(t, want, baseline(t, meta))
	})
	t.Run("no baseline", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		codexRollout(t, home, codexTestSession, false, rollout...)
		codexRollout(t, home, "01a21d88-0000-75b1-851f-a861b4d53915", false, rollout[0], rollout[1])
		for name, tc := range map[string]struct {
			id  string
			env []string
		}{
			"unknown session":    {id: "01a21d88-ffff-75b1-851f-a861b4d53915", env: []string{"CODEX_HOME=" + home}},
			"no usage yet":       {id: "01a21d88-0000-75b1-851f-a861b4d53915", env: []string{"CODEX_HOME=" + home}},
			"not an id":          {id: "../" + codexTestSession, env: []string{"CODEX_HOME=" + home}},
			"a pattern":          {id: "*", env: []string{"CODEX_HOME=" + home}},
			"no home":            {id: codexTestSession},
			"no sessions at all": {id: codexTestSession, env: []string{"CODEX_HOME=" + t.TempDir()}},
		} {
			meta := t.TempDir()
			req := &executor.Request{MetaDir: meta, ResumeSessionID: tc.id}
			require.NoError(t, Adapter{}.PrepareResume(t.Context(), &executor.AgentConfig{}, req, tc.env), name)
			require.Empty(t, baseline(t, meta), name)
		}
		// Without a meta directory there is nowhere to record it.
		require.NoError(t, Adapter{}.PrepareResume(t.Context(), &executor.AgentConfig{},
			&executor.Request{ResumeSessionID: codexTestSession}, []string{"CODEX_HOME=" + home}))
	})
}

// Agent.Run removes an old baseline (Argv), records the resumed thread's
// (PrepareResume) and reports the run's own usage (Parse).
func TestCodexRunResumeUsage(t *testing.T) {
	t.Parallel()
	b := setupCodex(t)
	home := t.TempDir()
	const session = "0199a300-0000-7000-8000-000000000003"
	codexRollout(t, home, session, false, codexTokenCount(1000, 150, 200))
	require.NoError(t, os.WriteFile(filepath.Join(b.metaDir, CodexUsageBaselineFile), []byte(`{"input_tokens":1}`), 0o600))
	res := b.run(t, executor.AgentConfig{}, executor.Request{ResumeSessionID: session},
		map[string]string{"CODEX_HOME": home, "CODEX_STUB_EXPECT_RESUME": session})
	require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
	// The stub reports 1200/200/300 as the thread's total.
	require.Equal(t, executor.AgentUsage{InputTokens: 200, CachedInputTokens: 50, OutputTokens: 100}, res.Agent.Usage)

	// A new session has no baseline, whatever an earlier run left.
	b2 := setupCodex(t)
	require.NoError(t, os.WriteFile(filepath.Join(b2.metaDir, CodexUsageBaselineFile), []byte(`{"input_tokens":1000}`), 0o600))
	res = b2.run(t, executor.AgentConfig{}, executor.Request{}, map[string]string{"CODEX_HOME": home})
	require.Equal(t, executor.AgentUsage{InputTokens: 1200, CachedInputTokens: 200, OutputTokens: 300}, res.Agent.Usage)
}
