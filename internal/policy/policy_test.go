package policy_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/policy"
	"github.com/mcp-task-relay/mcp-task-relay/internal/strictyaml"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

const examplePolicy = `policy_version: "2.0"
rules:
  - name: no-prod-db-writes
    match:
      ask_type: [POLICY_DECISION, APPROVAL]
      prompt: "(?i)drop table|delete from"
      facts: {env_profile: prod}
    decision: DENY
    reason: production database writes need a human
  - name: release-deploys
    match:
      prompt_glob: "*deploy*"
      facts: {branch: "release/*"}
    decision: ESCALATE
    reason: deploys from release branches are reviewed
  - name: finder-reads
    match:
      role: finder
    decision: ALLOW
  - name: approvals-to-humans
    match: {ask_type: APPROVAL}
    route: human
  - name: reviewers-to-orchestrator
    match:
      role: [code_reviewer]
      facts: {read_only: "true", attempts: "?"}
    route: orchestrator
`

func loadTestPolicy(t *testing.T, body string) *policy.Policy {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"policy.yaml": body})
	p, err := policy.LoadPolicy(filepath.Join(dir, "policy.yaml"))
	require.NoError(t, err)
	return p
}

// policyAsk returns an ask whose envelope is built the way the SDK does.
func policyAsk(t *testing.T, typ relaytype.AskType, prompt, profile, role string, facts map[string]any) *relaytype.AskRecord {
	t.Helper()
	env := relaytype.NewEnvelope("github.com/acme/shop", "unknown", profile, "2.0", role, facts, nil)
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	return &relaytype.AskRecord{AskType: typ, Prompt: prompt, ContextEnvelope: raw}
}

func TestPolicyEvaluate(t *testing.T) {
	t.Parallel()

	p := loadTestPolicy(t, examplePolicy)
	require.Equal(t, "2.0", p.Version)
	require.Len(t, p.Rules, 5)

	tests := []struct {
		name     string
		ask      *relaytype.AskRecord
		rule     string // "" for no match
		decision string
		route    string
	}{
		{"regexp, type and profile", policyAsk(t, relaytype.AskPolicyDecision, "May I DELETE FROM users?", "prod", "", nil),
			"no-prod-db-writes", "DENY", ""},
		{"same prompt in dev", policyAsk(t, relaytype.AskPolicyDecision, "May I DELETE FROM users?", "dev", "", nil),
			"", "", ""},
		{"same prompt, other type", policyAsk(t, relaytype.AskClarification, "May I DELETE FROM users?", "prod", "", nil),
			"", "", ""},
		{"first match wins", policyAsk(t, relaytype.AskApproval, "drop table sessions", "prod", "", nil),
			"no-prod-db-writes", "DENY", ""},
		{"later rule when the first fails", policyAsk(t, relaytype.AskApproval, "merge the PR", "prod", "", nil),
			"approvals-to-humans", "", "human"},
		{"glob on prompt and fact", policyAsk(t, relaytype.AskClarification, "can I deploy now?", "dev", "", map[string]any{"branch": "release/1.4"}),
			"release-deploys", "ESCALATE", ""},
		{"glob is anchored", policyAsk(t, relaytype.AskClarification, "can I deploy now?", "dev", "", map[string]any{"branch": "hotfix/release/1.4"}),
			"", "", ""},
		{"missing fact never matches", policyAsk(t, relaytype.AskClarification, "can I deploy now?", "dev", "", nil),
			"", "", ""},
		{"role by ask type default", policyAsk(t, relaytype.AskResourceFetch, "where is main?", "dev", "", nil),
			"finder-reads", "ALLOW", ""},
		{"envelope role and typed facts", policyAsk(t, relaytype.AskClarification, "ok?", "dev", "code_reviewer", map[string]any{"read_only": true, "attempts": 3}),
			"reviewers-to-orchestrator", "", "orchestrator"},
		{"typed fact mismatch", policyAsk(t, relaytype.AskClarification, "ok?", "dev", "code_reviewer", map[string]any{"read_only": false, "attempts": 3}),
			"", "", ""},
	}
	for _, tt := range tests {
		out, ok := p.Evaluate(tt.ask)
		if tt.rule == "" {
			require.False(t, ok, "%s: matched %v", tt.name, out)
			continue
		}
		require.True(t, ok, tt.name)
		require.Equal(t, tt.rule, out.Rule.Name, tt.name)
		require.Equal(t, tt.decision, out.Decision, tt.name)
		require.Equal(t, tt.route, out.Route, tt.name)
		require.Equal(t, "2.0", out.PolicyVersion, tt.name)
	}
}

func TestPolicyRoleMatch(t *testing.T) {
	t.Parallel()

	p := loadTestPolicy(t, `rules:
  - name: planners
    match: {role: [diff_planner]}
    decision: ESCALATE
`)
	tests := []struct {
		roleID, envRole string
		typ             relaytype.AskType
		want            bool
	}{
		{"diff_planner", "", relaytype.AskClarification, true},
		{"role.diff_planner@v2", "", relaytype.AskClarification, true},
		{"", "diff_planner", relaytype.AskClarification, true},
		{"finder", "", relaytype.AskClarification, false},
		{"", "", relaytype.AskClarification, false},
	}
	for _, tt := range tests {
		a := policyAsk(t, tt.typ, "q", "dev", tt.envRole, nil)
		a.RoleID = tt.roleID
		_, ok := p.Evaluate(a)
		require.Equal(t, tt.want, ok, "role_id %q, envelope role %q", tt.roleID, tt.envRole)
	}
}

func TestPolicyFactsFromSnapshot(t *testing.T) {
	t.Parallel()

	p := loadTestPolicy(t, `rules:
  - name: snapshot
    match:
      facts: {repo: "github.com/acme/*", commit_sha: unknown, env_profile: dev, policy_version: "2.*", role: default}
    decision: ALLOW
`)
	// env_profile "dev" and role "default" are omitted from the envelope
	// and still match their defaults.
	a := policyAsk(t, relaytype.AskClarification, "q", "dev", "", nil)
	require.NotContains(t, string(a.ContextEnvelope), "env_profile")
	_, ok := p.Evaluate(a)
	require.True(t, ok)

	a = policyAsk(t, relaytype.AskClarification, "q", "prod", "", nil)
	_, ok = p.Evaluate(a)
	require.False(t, ok)
}

func TestPolicyTrace(t *testing.T) {
	t.Parallel()

	p := loadTestPolicy(t, examplePolicy)
	out, ok := p.Evaluate(policyAsk(t, relaytype.AskPolicyDecision, "drop table x", "prod", "", nil))
	require.True(t, ok)
	require.JSONEq(t, `{"policy_version":"2.0","rule":"no-prod-db-writes","decision":"DENY","reason":"production database writes need a human"}`, string(out.Trace()))
	require.Equal(t, `rule "no-prod-db-writes": DENY`, out.String())

	out, ok = p.Evaluate(policyAsk(t, relaytype.AskApproval, "merge", "dev", "", nil))
	require.True(t, ok)
	require.JSONEq(t, `{"policy_version":"2.0","rule":"approvals-to-humans","route":"human"}`, string(out.Trace()))

	require.Nil(t, policy.Outcome{}.Trace())
}

// writeTree writes name → content under dir, creating folders.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

func TestLoadPolicyMissingOrEmpty(t *testing.T) {
	t.Parallel()

	p, err := policy.LoadPolicy(filepath.Join(t.TempDir(), "policy.yaml"))
	require.NoError(t, err)
	require.Equal(t, "1.0", p.Version)
	require.Empty(t, p.Rules)
	_, ok := p.Evaluate(policyAsk(t, relaytype.AskApproval, "q", "dev", "", nil))
	require.False(t, ok)

	p = loadTestPolicy(t, "")
	require.Equal(t, "1.0", p.Version)
	require.Empty(t, p.Rules)

	p = loadTestPolicy(t, "policy_version: 3.1\nrules:\n  - name: all\n    decision: ALLOW\n")
	require.Equal(t, "3.1", p.Version)
	_, ok = p.Evaluate(policyAsk(t, relaytype.AskChoice, "anything", "prod", "", nil))
	require.True(t, ok, "a rule without match matches every ask")

	var nilPolicy *policy.Policy
	_, ok = nilPolicy.Evaluate(policyAsk(t, relaytype.AskChoice, "q", "dev", "", nil))
	require.False(t, ok)
}

func TestPolicyBuiltByHand(t *testing.T) {
	t.Parallel()

	p := &policy.Policy{Version: "1.0", Rules: []policy.Rule{{
		Name:     "hand",
		Match:    policy.Match{Prompt: "(?i)secret", PromptGlob: "*key*", Facts: map[string]string{"env_profile": "d?v"}},
		Decision: policy.DecisionDeny,
	}}}
	_, ok := p.Evaluate(policyAsk(t, relaytype.AskClarification, "print the SECRET key", "dev", "", nil))
	require.True(t, ok)
	_, ok = p.Evaluate(policyAsk(t, relaytype.AskClarification, "print the SECRET", "dev", "", nil))
	require.False(t, ok)
}

func TestLoadPolicyErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, body string
		where      string // "" when the error is not about a rule
		field      string // "" when the error is not about a field
		want       string
	}{
		{"bad yaml", "rules: [\n", "", "", "invalid YAML"},
		{"unknown top key", "version: 2\n", "", "version", `field "version" is unknown (line 1); known fields: policy_version, rules`},
		{"rules not a list", "rules: {a: 1}\n", "", "rules", `field "rules" must be a list of rules`},
		{"unknown rule key", "rules:\n  - name: r\n    decision: ALLOW\n    effect: deny\n", "rules[0] (r)", "effect", `rules[0] (r): field "effect" is unknown`},
		{"missing name", "rules:\n  - decision: ALLOW\n", "rules[0]", "name", `rules[0]: field "name" is required`},
		{"duplicate name", "rules:\n  - {name: r, decision: ALLOW}\n  - {name: r, decision: DENY}\n", "rules[1] (r)", "name", `field "name" is also the name of rules[0]`},
		{"no decision or route", "rules:\n  - name: r\n", "rules[0] (r)", "decision", `field "decision" or route is required`},
		{"both decision and route", "rules:\n  - {name: r, decision: ALLOW, route: human}\n", "rules[0] (r)", "route", `field "route" cannot be given with decision`},
		{"bad decision", "rules:\n  - {name: r, decision: MAYBE}\n", "rules[0] (r)", "decision", `field "decision" is "MAYBE": must be ALLOW, DENY or ESCALATE`},
		{"bad route", "rules:\n  - {name: r, route: slack}\n", "rules[0] (r)", "route", `field "route" is "slack": must be runner, orchestrator or human`},
		{"bad regexp", "rules:\n  - name: no-prod\n    match: {prompt: \"(unclosed\"}\n    decision: DENY\n", "rules[0] (no-prod)", "match.prompt",
			`rules[0] (no-prod): field "match.prompt" is not a valid regular expression`},
		{"unknown match key", "rules:\n  - name: r\n    match: {prompt_regex: x}\n    decision: DENY\n", "rules[0] (r)", "match.prompt_regex", `field "match.prompt_regex" is unknown`},
		{"bad ask type", "rules:\n  - name: r\n    match: {ask_type: [QUESTION]}\n    decision: DENY\n", "rules[0] (r)", "match.ask_type", `field "match.ask_type" has "QUESTION": must be one of`},
		{"role not strings", "rules:\n  - name: r\n    match: {role: [[a]]}\n    decision: DENY\n", "rules[0] (r)", "match.role", `field "match.role" item 0 must be a non-empty string`},
		{"facts not a mapping", "rules:\n  - name: r\n    match: {facts: [a]}\n    decision: DENY\n", "rules[0] (r)", "match.facts", `field "match.facts" must be a mapping`},
		{"fact not a glob", "rules:\n  - name: r\n    match: {facts: {branch: [a, b]}}\n    decision: DENY\n", "rules[0] (r)", "match.facts.branch", `field "match.facts.branch" must be a string glob`},
		{"match not a mapping", "rules:\n  - name: r\n    match: [a]\n    decision: DENY\n", "rules[0] (r)", "match", `field "match" must be a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "policy.yaml")
			writeTree(t, dir, map[string]string{"policy.yaml": tt.body})
			_, err := policy.LoadPolicy(path)
			require.ErrorContains(t, err, path+": ")
			require.ErrorContains(t, err, tt.want)
			var fe *strictyaml.FieldError
			if tt.field == "" {
				require.False(t, errors.As(err, &fe), "%v", err)
				return
			}
			require.ErrorAs(t, err, &fe)
			require.Equal(t, path, fe.File)
			require.Equal(t, tt.where, fe.Where)
			require.Equal(t, tt.field, fe.Field)
		})
	}
}
