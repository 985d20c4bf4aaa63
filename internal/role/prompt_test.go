package role_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// promptAsk returns an ask with a full envelope, constraints and overrides.
func promptAsk(t *testing.T) *relaytype.AskRecord {
	t.Helper()
	env := relaytype.NewEnvelope("github.com/acme/shop", "0123456789abcdef0123456789abcdef01234567", "staging", "2.0", "code_reviewer",
		map[string]any{"branch": "feature/vat", "exporter": "src/export/orders.go"},
		map[string]any{"repo.read": map[string]any{"max_bytes": 20000}})
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	hash, err := env.Hash()
	require.NoError(t, err)
	return &relaytype.AskRecord{
		AskID:           "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
		JobID:           "job-1",
		StepID:          "plan",
		AskType:         relaytype.AskClarification,
		Prompt:          "Plan adding a VAT column to the orders CSV export.",
		ContextHash:     hash,
		ContextEnvelope: raw,
		Constraints:     &relaytype.AskConstraints{TimeoutS: 60, MaxTokens: 800, AllowedTools: []string{"repo.read"}},
		Meta: &relaytype.AskMeta{PromptOverrides: &relaytype.PromptOverrides{
			SystemAppend: "Keep the plan to at most three steps.",
		}},
	}
}

func promptRole(t *testing.T, ref string) *role.Role {
	t.Helper()
	c, err := role.LoadCatalog()
	require.NoError(t, err)
	r, err := c.Resolve(ref)
	require.NoError(t, err)
	return r
}

func TestBuildPromptGolden(t *testing.T) {
	t.Parallel()

	planner := promptRole(t, "diff_planner")
	clarifier := promptRole(t, "clarifier")
	plain := promptAsk(t)
	plain.Constraints, plain.Meta = nil, nil
	plain.Prompt = "Should failed logins go to the audit table or the app log?"
	minimal := &relaytype.AskRecord{
		AskType:         relaytype.AskChoice,
		Prompt:          "tabs or spaces?",
		ContextEnvelope: json.RawMessage(`{"job_snapshot":{},"role":"default"}`),
	}

	tests := []struct {
		name string
		in   role.PromptInput
	}{
		{"diff_planner", role.PromptInput{Role: planner, Ask: promptAsk(t), OutputSchema: planner.OutputSchema, PolicyVersion: "2.0"}},
		{"clarifier", role.PromptInput{Role: clarifier, Ask: plain}},
		{"minimal", role.PromptInput{Role: clarifier, Ask: minimal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := role.BuildPrompt(tt.in)
			got := "=== system\n" + p.System + "\n=== user\n" + p.User + "\n=== fingerprint\n" + p.Fingerprint + "\n"
			path := filepath.Join("testdata", "prompt_"+tt.name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -run TestBuildPromptGolden -update to create it")
			require.Equal(t, string(want), got)
		})
	}
}

func TestBuildPromptLayers(t *testing.T) {
	t.Parallel()

	planner := promptRole(t, "diff_planner")
	a := promptAsk(t)
	override := json.RawMessage(`{"type":"object","required":["answer"],"properties":{"answer":{"type":"string"}}}`)
	p := role.BuildPrompt(role.PromptInput{Role: planner, Ask: a, OutputSchema: override, PolicyVersion: "2.0"})

	// System is base then role; the ask's system_append ends it.
	require.True(t, strings.HasPrefix(p.System, "You are the Answer Runner"))
	require.Less(t, strings.Index(p.System, "## Role: diff_planner@v1"), strings.Index(p.System, "Keep the plan to at most three steps."))
	require.True(t, strings.HasSuffix(p.System, "Keep the plan to at most three steps.\n"))
	require.Contains(t, p.System, "Tools this role may use: repo.read\n")
	require.Contains(t, p.System, "- No step may touch a file the request does not need.\n")
	require.Contains(t, p.System, `Reply: {"answer_json":{"checks":`)

	// User is context then task, with the override schema, not the role's.
	require.True(t, strings.HasPrefix(p.User, "## Context\n"))
	require.Less(t, strings.Index(p.User, "## Context"), strings.Index(p.User, "## Task"))
	canon, err := relaytype.CanonicalJSON(a.ContextEnvelope)
	require.NoError(t, err)
	require.Contains(t, p.User, "Envelope: "+string(canon)+"\n")
	require.Contains(t, p.User, "Context hash: "+a.ContextHash+"\n")
	require.Contains(t, p.User, "Policy version: 2.0\n")
	require.Contains(t, p.User, "Question:\nPlan adding a VAT column")
	require.Contains(t, p.User, "- allowed tools: repo.read\n- keep the reply under 800 tokens\n")
	require.Contains(t, p.User, `{"properties":{"answer":{"type":"string"}},"required":["answer"],"type":"object"}`)
	require.NotContains(t, p.User, "DiffPlan")
	require.Contains(t, p.User, "with answer_json set")

	sum := sha256.Sum256([]byte(p.System + "\x00" + p.User))
	require.Equal(t, hex.EncodeToString(sum[:]), p.Fingerprint)

	// Without a schema the task asks for answer_text; the policy version
	// falls back to the envelope's.
	free := role.BuildPrompt(role.PromptInput{Role: promptRole(t, "clarifier"), Ask: a})
	require.Contains(t, free.User, "No output schema")
	require.Contains(t, free.User, "with answer_text set")
	require.Contains(t, free.User, "Policy version: 2.0\n")
	require.Contains(t, free.System, `Reply: {"answer_text":"Use the audit table`)
	require.Contains(t, free.System, "Tools this role may use: none\n")
}

func TestBuildPromptDeterministic(t *testing.T) {
	t.Parallel()

	planner := promptRole(t, "diff_planner")
	a := promptAsk(t)
	in := role.PromptInput{Role: planner, Ask: a, OutputSchema: planner.OutputSchema, PolicyVersion: "2.0"}
	first := role.BuildPrompt(in)
	for range 20 {
		require.Equal(t, first, role.BuildPrompt(in))
	}

	// The envelope's formatting and key order do not matter, only its
	// content: it is rendered canonically.
	var v map[string]any
	require.NoError(t, json.Unmarshal(a.ContextEnvelope, &v))
	pretty, err := json.MarshalIndent(v, "", "    ")
	require.NoError(t, err)
	b := *a
	b.ContextEnvelope = pretty
	in.Ask = &b
	require.Equal(t, first, role.BuildPrompt(in))
}

func TestBuildPromptFingerprintChanges(t *testing.T) {
	t.Parallel()

	planner := promptRole(t, "diff_planner")
	base := func() role.PromptInput {
		r := *planner
		r.Guardrails = append([]string(nil), planner.Guardrails...)
		return role.PromptInput{Role: &r, Ask: promptAsk(t), OutputSchema: r.OutputSchema, PolicyVersion: "2.0"}
	}
	ref := role.BuildPrompt(base()).Fingerprint

	tests := []struct {
		name   string
		change func(in *role.PromptInput)
	}{
		{"prompt", func(in *role.PromptInput) { in.Ask.Prompt += "?" }},
		{"ask type", func(in *role.PromptInput) { in.Ask.AskType = relaytype.AskChoice }},
		{"envelope", func(in *role.PromptInput) {
			in.Ask.ContextEnvelope = json.RawMessage(`{"job_snapshot":{},"role":"default"}`)
		}},
		{"context hash", func(in *role.PromptInput) { in.Ask.ContextHash = strings.Repeat("0", 64) }},
		{"system append", func(in *role.PromptInput) { in.Ask.Meta.PromptOverrides.SystemAppend = "Be terse." }},
		{"no overrides", func(in *role.PromptInput) { in.Ask.Meta = nil }},
		{"max tokens", func(in *role.PromptInput) { in.Ask.Constraints.MaxTokens = 801 }},
		{"allowed tools", func(in *role.PromptInput) { in.Ask.Constraints.AllowedTools = nil }},
		{"output schema", func(in *role.PromptInput) { in.OutputSchema = json.RawMessage(`{"type":"object"}`) }},
		{"no output schema", func(in *role.PromptInput) { in.OutputSchema = nil }},
		{"policy version", func(in *role.PromptInput) { in.PolicyVersion = "2.1" }},
		{"role version", func(in *role.PromptInput) { in.Role.Version = "v2" }},
		{"role system", func(in *role.PromptInput) { in.Role.System += " Be careful." }},
		{"role guardrails", func(in *role.PromptInput) { in.Role.Guardrails = in.Role.Guardrails[1:] }},
		{"role tools", func(in *role.PromptInput) { in.Role.ToolWhitelist = []string{"repo.search"} }},
		{"role limits", func(in *role.PromptInput) { in.Role.Limits.MaxTokens++ }},
		{"role example", func(in *role.PromptInput) { in.Role.Examples = nil }},
	}
	seen := map[string]string{ref: "unchanged"}
	for _, tt := range tests {
		in := base()
		tt.change(&in)
		fp := role.BuildPrompt(in).Fingerprint
		prev, dup := seen[fp]
		require.False(t, dup, "changing %s gives the fingerprint of %s", tt.name, prev)
		seen[fp] = tt.name
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		text string
		want role.Reply
		err  error
	}{
		{"text", `{"answer_text":"Use the audit table."}`, role.Reply{AnswerText: "Use the audit table."}, nil},
		{"json", `{"answer_json": {"decision": "DENY", "rules": ["r1"]}}`,
			role.Reply{AnswerJSON: json.RawMessage(`{"decision":"DENY","rules":["r1"]}`)}, nil},
		{"ask back", `{"answer_text":"The target version is missing.","ask_back":"Which Go version?"}`,
			role.Reply{AnswerText: "The target version is missing.", AskBack: "Which Go version?"}, nil},
		{"fenced", "```json\n{\"answer_json\": [1, 2]}\n```", role.Reply{AnswerJSON: json.RawMessage(`[1,2]`)}, nil},
		{"prose around", "Sure! Here is my answer:\n{\"answer_text\": \"yes\"}\nHope that helps {:", role.Reply{AnswerText: "yes"}, nil},
		{"braces in strings", `{"answer_text":"use {x} and \"}\" here","answer_json":{"re":"^{[a-z]}$"}}`,
			role.Reply{AnswerText: `use {x} and "}" here`, AnswerJSON: json.RawMessage(`{"re":"^{[a-z]}$"}`)}, nil},
		{"prose braces first", "In Go, {} is an empty block. {\"answer_text\": \"ok\"}", role.Reply{AnswerText: "ok"}, nil},
		{"reply after another object", "The data was {\"a\": 1}.\n{\"answer_text\": \"done\"}", role.Reply{AnswerText: "done"}, nil},
		{"bare object", "```json\n{\"decision\": \"ALLOW\", \"rules\": []}\n```",
			role.Reply{AnswerJSON: json.RawMessage(`{"decision":"ALLOW","rules":[]}`)}, nil},
		{"null fields", `{"answer_text":"x","answer_json":null,"ask_back":null}`, role.Reply{AnswerText: "x"}, nil},
		{"plain text", "  Use the audit table.\n", role.Reply{AnswerText: "Use the audit table."}, role.ErrNoJSON},
		{"broken json", `{"answer_text": "unterminated`, role.Reply{AnswerText: `{"answer_text": "unterminated`}, role.ErrNoJSON},
		{"empty", "", role.Reply{}, role.ErrNoJSON},
	}
	for _, tt := range tests {
		got, err := role.ParseReply(tt.text)
		if tt.err != nil {
			require.ErrorIs(t, err, tt.err, tt.name)
		} else {
			require.NoError(t, err, tt.name)
		}
		require.Equal(t, tt.want, got, tt.name)
	}

	_, err := role.ParseReply(`{"answer_text": 42}`)
	require.ErrorContains(t, err, `reply field "answer_text" must be a string`)
	_, err = role.ParseReply(`{"ask_back": ["a"]}`)
	require.ErrorContains(t, err, `reply field "ask_back" must be a string`)
}
