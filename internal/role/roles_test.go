package role_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/internal/strictyaml"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// writeTree writes name → content under dir, creating folders.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

// minimalRole is a minimal valid role file body.
func minimalRole(id, version, purpose string) string {
	return "id: " + id + "\nversion: " + version + "\npurpose: " + purpose + "\nsystem: Answer briefly.\n"
}

func TestBuiltinRoles(t *testing.T) {
	t.Parallel()

	c, err := role.LoadCatalog()
	require.NoError(t, err)
	schemata, err := role.LoadSchemata("")
	require.NoError(t, err)
	require.NoError(t, c.CheckSchemas(schemata))

	var refs []string
	for _, r := range c.Roles() {
		refs = append(refs, r.Ref())
		require.Equal(t, role.SourceBuiltin, r.Source, r.Ref())
		require.NotEmpty(t, r.Purpose, r.Ref())
		require.NotEmpty(t, r.System, r.Ref())
		require.NotEmpty(t, r.Guardrails, r.Ref())
		require.Positive(t, r.Limits.MaxTokens, r.Ref())
		require.Len(t, r.Examples, 1, r.Ref())
		if r.ID == role.RoleClarifier {
			require.Empty(t, r.OutputSchema, "the clarifier answers in plain text")
			continue
		}
		// Each example is a valid answer: the model is shown it as one.
		sch, err := schemata.Compile(r.OutputSchema)
		require.NoError(t, err, r.Ref())
		require.NoError(t, schemata.Validate(sch, r.Examples[0].Output), r.Ref())
	}
	require.Equal(t, []string{
		"clarifier@v1", "diff_planner@v1", "finder@v1", "policy_decider@v1",
		"risk_assessor@v1", "schema_summarizer@v1", "test_planner@v1",
	}, refs)

	finder, err := c.Resolve("finder")
	require.NoError(t, err)
	require.Equal(t, []string{"repo.read", "repo.search"}, finder.ToolWhitelist)
	require.True(t, finder.Allows("repo.search"))
	require.False(t, finder.Allows("shell.exec"))
	pd, err := c.Resolve("policy_decider")
	require.NoError(t, err)
	require.Empty(t, pd.ToolWhitelist)
}

func TestBuiltinOutputSchemasReject(t *testing.T) {
	t.Parallel()

	c, err := role.LoadCatalog()
	require.NoError(t, err)
	schemata, err := role.LoadSchemata("")
	require.NoError(t, err)

	tests := []struct {
		role, doc string
	}{
		{"diff_planner", `{"steps":[{"path":"a.go","action":"rewrite","why":"x"}]}`},
		{"diff_planner", `{"risks":[]}`},
		{"policy_decider", `{"decision":"MAYBE","rules":[]}`},
		{"policy_decider", `{"decision":"ALLOW"}`},
		{"test_planner", `{"tests":[{"name":"t","kind":"smoke","steps":[],"expected":"ok"}]}`},
		{"risk_assessor", `{"risk_level":"extreme","risks":[],"recommendation":"stop"}`},
		{"schema_summarizer", `{"entities":[{"name":"t"}],"summary":"s"}`},
		{"finder", `{"matches":[{"path":"a.go","line":0,"reason":"r"}]}`},
		{"finder", `{"matches":[],"extra":1}`},
	}
	for _, tt := range tests {
		r, err := c.Resolve(tt.role)
		require.NoError(t, err)
		sch, err := schemata.Compile(r.OutputSchema)
		require.NoError(t, err)
		require.Error(t, schemata.Validate(sch, []byte(tt.doc)), "%s accepted %s", tt.role, tt.doc)
	}
}

func TestResolveForms(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"role.finder@v2.yaml":  minimalRole("finder", "v2", "v2"),
		"role.finder@v9.yaml":  minimalRole("finder", "v9", "v9"),
		"role.finder@v10.yaml": minimalRole("finder", "v10", "v10"),
	})
	c, err := role.LoadCatalog(dir)
	require.NoError(t, err)

	tests := []struct {
		ref, want string
	}{
		{"finder", "finder@v10"},
		{"role.finder", "finder@v10"},
		{"finder@v2", "finder@v2"},
		{"role.finder@v2", "finder@v2"},
		{"finder@9", "finder@v9"},
		{"role.finder@v1", "finder@v1"},
		{" clarifier ", "clarifier@v1"},
	}
	for _, tt := range tests {
		r, err := c.Resolve(tt.ref)
		require.NoError(t, err, tt.ref)
		require.Equal(t, tt.want, r.Ref(), tt.ref)
	}

	var got []string
	for _, r := range c.Roles() {
		if r.ID == "finder" {
			got = append(got, r.Version)
		}
	}
	require.Equal(t, []string{"v1", "v2", "v9", "v10"}, got, "versions sort by number")
}

func TestResolveUnknown(t *testing.T) {
	t.Parallel()

	c, err := role.LoadCatalog()
	require.NoError(t, err)
	tests := []struct {
		ref, want string
	}{
		{"nope", `unknown role "nope" (known: clarifier, diff_planner, finder, policy_decider, risk_assessor, schema_summarizer, test_planner)`},
		{"finder@v3", `unknown role "finder@v3": role finder has versions v1`},
		{"finder@latest", `unknown role "finder@latest": version must be v<N>`},
		{"", `unknown role "": not a role reference`},
		{"a b", `unknown role "a b": not a role reference`},
	}
	for _, tt := range tests {
		_, err := c.Resolve(tt.ref)
		require.ErrorIs(t, err, role.ErrUnknownRole, tt.ref)
		require.ErrorContains(t, err, tt.want)
	}
}

func TestLoadCatalogOverrides(t *testing.T) {
	t.Parallel()

	first, second := t.TempDir(), t.TempDir()
	writeTree(t, first, map[string]string{
		"role.finder@v1.yaml":  minimalRole("finder", "v1", "first"),
		"role.helper@v1.yml":   minimalRole("helper", "v1", "an added role"),
		"README.md":            "not a role",
		"notes.yaml":           "not: a role",
		"role.dir@v1.yaml/x":   "a folder named like a role is skipped",
		"role.finder@v2.yaml~": "an editor backup",
	})
	writeTree(t, second, map[string]string{
		"role.finder@v1.yaml": minimalRole("role.finder", "1", "second"),
	})

	c, err := role.LoadCatalog(first, filepath.Join(first, "missing"), "", second)
	require.NoError(t, err)

	finder, err := c.Resolve("finder@v1")
	require.NoError(t, err)
	require.Equal(t, "second", finder.Purpose, "a later dir wins")
	require.Equal(t, filepath.Join(second, "role.finder@v1.yaml"), finder.Source)
	require.Empty(t, finder.ToolWhitelist, "an override replaces the whole role")

	helper, err := c.Resolve("role.helper")
	require.NoError(t, err)
	require.Equal(t, "an added role", helper.Purpose)
	require.Len(t, c.Roles(), 8)

	// The built-in catalog is not changed by an override.
	builtin, err := role.LoadCatalog()
	require.NoError(t, err)
	finder, err = builtin.Resolve("finder")
	require.NoError(t, err)
	require.Equal(t, role.SourceBuiltin, finder.Source)
}

func TestLoadCatalogSeedStyle(t *testing.T) {
	t.Parallel()

	// The seed's role files: "role."-prefixed id, integer version and
	// schemas written as JSON text.
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"role.lookup@v1.yaml": `id: role.lookup
version: 1
purpose: "find things"
system: |
  Return compact JSON.
input_schema: |
  {"type":"object","required":["query"],"properties":{"query":{"type":"string"}}}
output_schema: |
  {"type":"array","items":{"type":"object","required":["path"],
     "properties":{"path":{"type":"string"}}}}
limits:
  max_tokens: 500
`})
	c, err := role.LoadCatalog(dir)
	require.NoError(t, err)
	r, err := c.Resolve("role.lookup")
	require.NoError(t, err)
	require.Equal(t, "lookup@v1", r.Ref())
	require.Equal(t, "Return compact JSON.", r.System)
	require.JSONEq(t, `{"type":"object","required":["query"],"properties":{"query":{"type":"string"}}}`, string(r.InputSchema))
	require.Equal(t, 500, r.Limits.MaxTokens)

	s, err := role.LoadSchemata("")
	require.NoError(t, err)
	sch, err := s.Compile(r.OutputSchema)
	require.NoError(t, err)
	require.NoError(t, s.Validate(sch, []byte(`[{"path":"a.go"}]`)))
	require.Error(t, s.Validate(sch, []byte(`[{}]`)))
}

func TestCatalogNamedOutputSchema(t *testing.T) {
	t.Parallel()

	root := t.TempDir()
	prompts, schemataDir := filepath.Join(root, "prompts"), filepath.Join(root, "schemata")
	writeTree(t, prompts, map[string]string{
		"role.planner@v1.yaml": minimalRole("planner", "v1", "plans") + "output_schema: artifacts/plan\n",
	})
	writeTree(t, schemataDir, map[string]string{
		"artifacts/plan.json": `{"type":"object","required":["steps"]}`,
	})
	c, err := role.LoadCatalog(prompts)
	require.NoError(t, err)
	r, err := c.Resolve("planner")
	require.NoError(t, err)
	require.Equal(t, `"artifacts/plan"`, string(r.OutputSchema))

	withSchemata, err := role.LoadSchemata(schemataDir)
	require.NoError(t, err)
	require.NoError(t, c.CheckSchemas(withSchemata))

	empty, err := role.LoadSchemata("")
	require.NoError(t, err)
	err = c.CheckSchemas(empty)
	require.ErrorContains(t, err, filepath.Join(prompts, "role.planner@v1.yaml")+`: field "output_schema" does not compile: unknown schema "artifacts/plan"`)
}

func TestLoadCatalogErrors(t *testing.T) {
	t.Parallel()

	const ok = "id: finder\nversion: v2\npurpose: p\nsystem: s\n"
	tests := []struct {
		name, file, body string
		field            string // "" when the error is not about a field
		want             string
	}{
		{"missing system", "role.finder@v2.yaml", "id: finder\nversion: v2\npurpose: p\n", "system", `field "system" is required`},
		{"empty system", "role.finder@v2.yaml", "id: finder\nversion: v2\npurpose: p\nsystem: \"  \"\n", "system", `field "system" is required`},
		{"missing id", "role.finder@v2.yaml", "version: v2\npurpose: p\nsystem: s\n", "id", `field "id" is required`},
		{"missing version", "role.finder@v2.yaml", "id: finder\npurpose: p\nsystem: s\n", "version", `field "version" is required`},
		{"missing purpose", "role.finder@v2.yaml", "id: finder\nversion: v2\nsystem: s\n", "purpose", `field "purpose" is required`},
		{"empty file", "role.finder@v2.yaml", "", "id", `field "id" is required`},
		{"bad yaml", "role.finder@v2.yaml", "id: [finder\n", "", "invalid YAML"},
		{"not a mapping", "role.finder@v2.yaml", "- a\n- b\n", "", "the document must be a mapping"},
		{"unknown key", "role.finder@v2.yaml", ok + "temperature: 0.2\n", "temperature", `field "temperature" is unknown (line 5); known fields: id, version`},
		{"duplicate key", "role.finder@v2.yaml", ok + "system: again\n", "system", `field "system" is given twice (line 5)`},
		{"unknown limit", "role.finder@v2.yaml", ok + "limits: {max_tokens: 5, tokens: 9}\n", "limits.tokens", `field "limits.tokens" is unknown`},
		{"negative limit", "role.finder@v2.yaml", ok + "limits: {max_tokens: -5}\n", "limits.max_tokens", `field "limits.max_tokens" must be a non-negative integer`},
		{"text limit", "role.finder@v2.yaml", ok + "limits: {max_tool_calls: many}\n", "limits.max_tool_calls", `field "limits.max_tool_calls" must be a non-negative integer, not "many"`},
		{"example without output", "role.finder@v2.yaml", ok + "examples:\n  - input: {q: 1}\n", "examples[0].output", `field "examples[0].output" is required`},
		{"example unknown key", "role.finder@v2.yaml", ok + "examples:\n  - {output: 1, note: x}\n", "examples[0].note", `field "examples[0].note" is unknown`},
		{"tools not a list", "role.finder@v2.yaml", ok + "tool_whitelist: repo.read\n", "tool_whitelist", `field "tool_whitelist" must be a list of strings`},
		{"bad output schema", "role.finder@v2.yaml", ok + "output_schema: [1, 2]\n", "output_schema", `field "output_schema" must be a JSON Schema mapping or the name of a schema`},
		{"bad json schema text", "role.finder@v2.yaml", ok + "output_schema: '{\"type\": '\n", "output_schema", `field "output_schema" holds invalid JSON`},
		{"version not vN", "role.finder@v2.yaml", "id: finder\nversion: two\npurpose: p\nsystem: s\n", "version", `field "version" is "two": must be v<N>`},
		{"bad id", "role.finder@v2.yaml", "id: find er\nversion: v2\npurpose: p\nsystem: s\n", "id", `field "id" is "find er"`},
		{"id mismatch", "role.finder@v2.yaml", "id: seeker\nversion: v2\npurpose: p\nsystem: s\n", "id", `field "id" is "seeker", but the file name says "finder"`},
		{"version mismatch", "role.finder@v2.yaml", "id: finder\nversion: v3\npurpose: p\nsystem: s\n", "version", `field "version" is "v3", but the file name says "v2"`},
		{"file name without version", "role.finder.yaml", ok, "", "file name must be role.NAME@vN.yaml"},
		{"file name bad version", "role.finder@latest.yaml", ok, "", `version "latest" is not v<N>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{tt.file: tt.body})
			_, err := role.LoadCatalog(dir)
			require.Error(t, err)
			path := filepath.Join(dir, tt.file)
			require.ErrorContains(t, err, path+": ")
			require.ErrorContains(t, err, tt.want)
			var fe *strictyaml.FieldError
			if tt.field == "" {
				require.False(t, errors.As(err, &fe), "%v", err)
				return
			}
			require.ErrorAs(t, err, &fe)
			require.Equal(t, path, fe.File)
			require.Equal(t, tt.field, fe.Field)
		})
	}
}

func TestDefaultRole(t *testing.T) {
	t.Parallel()

	tests := map[relaytype.AskType]string{
		relaytype.AskClarification:  "clarifier",
		relaytype.AskChoice:         "clarifier",
		relaytype.AskResourceFetch:  "finder",
		relaytype.AskPolicyDecision: "policy_decider",
		relaytype.AskApproval:       "policy_decider",
		"SOMETHING_ELSE":            "clarifier",
	}
	c, err := role.LoadCatalog()
	require.NoError(t, err)
	for typ, want := range tests {
		require.Equal(t, want, role.DefaultRole(typ), typ)
		_, err := c.Resolve(role.DefaultRole(typ))
		require.NoError(t, err, "the default role of %s is built in", typ)
	}
}

func TestParseRoleRef(t *testing.T) {
	t.Parallel()

	tests := []struct {
		ref, id, version string
	}{
		{"finder", "finder", ""},
		{"role.finder", "finder", ""},
		{"finder@v2", "finder", "v2"},
		{"role.finder@3", "finder", "v3"},
	}
	for _, tt := range tests {
		id, v, err := role.ParseRoleRef(tt.ref)
		require.NoError(t, err, tt.ref)
		require.Equal(t, tt.id, id, tt.ref)
		require.Equal(t, tt.version, v, tt.ref)
	}
}

// TestBuiltinSchemasCompiledOnce: the built-in roles' output schemas are
// compiled once per process and shared: CheckSchemas makes every Schemata
// it checks, whatever the set holds, take them from the built-in set, so
// Compile returns the same compiled schema in every set.
func TestBuiltinSchemasCompiledOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"artifacts/plan.json": `{"type":"object"}`})
	var sets []*role.Schemata
	for _, d := range []string{"", dir} {
		c, err := role.LoadCatalog()
		require.NoError(t, err)
		s, err := role.LoadSchemata(d)
		require.NoError(t, err)
		require.NoError(t, c.CheckSchemas(s))
		sets = append(sets, s)
	}
	c, err := role.LoadCatalog()
	require.NoError(t, err)
	n := 0
	for _, r := range c.Roles() {
		if len(r.OutputSchema) == 0 {
			continue
		}
		a, err := sets[0].Compile(r.OutputSchema)
		require.NoError(t, err)
		b, err := sets[1].Compile(r.OutputSchema)
		require.NoError(t, err)
		require.Same(t, a, b, r.Ref())
		n++
	}
	require.Positive(t, n)
}

// TestPrepareBuiltin: the embedded roles are parsed once per process, by
// PrepareBuiltin or the first LoadCatalog, and every catalog holds the
// same (read-only) roles.
func TestPrepareBuiltin(t *testing.T) {
	t.Parallel()
	role.PrepareBuiltin()
	a, err := role.LoadCatalog()
	require.NoError(t, err)
	b, err := role.LoadCatalog(t.TempDir())
	require.NoError(t, err)
	ra, rb := a.Roles(), b.Roles()
	require.NotEmpty(t, ra)
	require.Equal(t, len(ra), len(rb))
	for i := range ra {
		require.Same(t, ra[i], rb[i], ra[i].Ref())
	}
}
