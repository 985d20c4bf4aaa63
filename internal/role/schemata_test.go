package role_test

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
)

// schemataFixture is a schemata folder whose files $ref each other by
// relative path and by $id.
var schemataFixture = map[string]string{
	"artifacts/diff_plan.json": `{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"type": "object", "additionalProperties": false, "required": ["steps"],
		"properties": {"steps": {"type": "array", "items": {"$ref": "step.json"}}}
	}`,
	"artifacts/step.json": `{
		"type": "object", "required": ["path", "action"],
		"properties": {"path": {"type": "string"}, "action": {"enum": ["create", "modify"]}}
	}`,
	"common/ticket.schema.json": `{
		"$id": "https://example.com/schemata/common/ticket.schema.json",
		"type": "string", "pattern": "^[A-Z]+-[0-9]+$"
	}`,
	"change.json": `{
		"type": "object", "required": ["ticket"],
		"properties": {"ticket": {"$ref": "https://example.com/schemata/common/ticket.schema.json"}}
	}`,
}

func loadFixtureSchemata(t *testing.T) *role.Schemata {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, schemataFixture)
	s, err := role.LoadSchemata(dir)
	require.NoError(t, err)
	return s
}

func TestSchemataNames(t *testing.T) {
	t.Parallel()

	s := loadFixtureSchemata(t)
	require.Equal(t, []string{"artifacts/diff_plan", "artifacts/step", "change", "common/ticket.schema"}, s.Names())

	empty, err := role.LoadSchemata(filepath.Join(t.TempDir(), "missing"))
	require.NoError(t, err)
	require.Empty(t, empty.Names())
}

func TestSchemataNameForms(t *testing.T) {
	t.Parallel()

	s := loadFixtureSchemata(t)
	good := `{"steps":[{"path":"a.go","action":"modify"}]}`
	for _, name := range []string{
		"artifacts/diff_plan", "diff_plan", "schemata/artifacts/diff_plan", "diff_plan.json",
		"artifacts/diff_plan.json", "schemata/diff_plan.json", "./artifacts/diff_plan.json",
	} {
		sch, err := s.Compile(mustMarshal(t, name))
		require.NoError(t, err, name)
		require.NoError(t, s.Validate(sch, []byte(good)), name)
	}

	// ".schema" before ".json" may be left out.
	for _, name := range []string{"ticket", "common/ticket", "ticket.schema.json"} {
		sch, err := s.Compile(mustMarshal(t, name))
		require.NoError(t, err, name)
		require.NoError(t, s.Validate(sch, []byte(`"OPS-12"`)), name)
	}

	_, err := s.Compile(mustMarshal(t, "nope"))
	require.ErrorContains(t, err, `unknown schema "nope" (known: artifacts/diff_plan, artifacts/step, change, common/ticket.schema)`)
	_, err = s.Compile(nil)
	require.ErrorContains(t, err, "no schema given")
	_, err = s.Compile([]byte(`42`))
	require.ErrorContains(t, err, "must be a JSON object, a boolean or the name of a schema")
}

func TestSchemataAmbiguousName(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a/plan.json": `{"type":"object"}`,
		"b/plan.json": `{"type":"array"}`,
	})
	s, err := role.LoadSchemata(dir)
	require.NoError(t, err)
	_, err = s.Compile(mustMarshal(t, "plan"))
	require.ErrorContains(t, err, `schema name "plan" is ambiguous: a/plan, b/plan`)
	_, err = s.Compile(mustMarshal(t, "b/plan"))
	require.NoError(t, err)
}

func TestSchemataRefs(t *testing.T) {
	t.Parallel()

	s := loadFixtureSchemata(t)

	// Relative $ref between files of one folder.
	plan, err := s.Compile(mustMarshal(t, "diff_plan"))
	require.NoError(t, err)
	require.Error(t, s.Validate(plan, []byte(`{"steps":[{"path":"a.go","action":"explode"}]}`)))

	// $ref by the other file's $id.
	change, err := s.Compile(mustMarshal(t, "change"))
	require.NoError(t, err)
	require.NoError(t, s.Validate(change, []byte(`{"ticket":"OPS-1"}`)))
	require.Error(t, s.Validate(change, []byte(`{"ticket":"ops"}`)))

	// An inline schema (an ask's output_schema) may $ref the set's files.
	inline, err := s.Compile([]byte(`{"type":"object","properties":{"plan":{"$ref":"artifacts/diff_plan.json"}}}`))
	require.NoError(t, err)
	require.Error(t, s.Validate(inline, []byte(`{"plan":{"steps":[{}]}}`)))
	require.NoError(t, s.Validate(inline, []byte(`{"plan":{"steps":[]}}`)))

	// Nothing outside the set is ever loaded.
	for _, ref := range []string{"file:///etc/passwd", "https://example.com/remote.json", "missing.json"} {
		_, err := s.Compile(mustMarshal(t, map[string]any{"$ref": ref}))
		require.ErrorContains(t, err, "not in the schemata set", ref)
	}
}

func TestSchemataValidateListsViolations(t *testing.T) {
	t.Parallel()

	s := loadFixtureSchemata(t)
	plan, err := s.Compile(mustMarshal(t, "artifacts/diff_plan"))
	require.NoError(t, err)

	err = s.Validate(plan, []byte(`{"steps":[{"path":"a.go","action":"explode"},{"action":"create"}],"extra":true}`))
	var se *role.SchemaError
	require.ErrorAs(t, err, &se)
	pointers := map[string]bool{}
	for _, v := range se.Violations {
		pointers[v.Pointer] = true
		require.NotEmpty(t, v.Message)
		require.NotContains(t, v.Message, "at '", "the message is the library's without its location prefix")
	}
	require.Equal(t, map[string]bool{"": true, "/steps/0/action": true, "/steps/1": true}, pointers)
	require.Contains(t, err.Error(), "\n- (root): additional properties 'extra' not allowed")
	require.Contains(t, err.Error(), "\n- /steps/0/action: value must be one of 'create', 'modify'")
	require.Contains(t, err.Error(), "\n- /steps/1: missing property 'path'")

	err = s.Validate(plan, []byte(`{"steps": [`))
	require.ErrorContains(t, err, "the answer is not valid JSON")
	require.NotErrorAs(t, err, &se)

	// Pointer tokens are escaped as RFC 6901 says.
	odd, err := s.Compile([]byte(`{"properties":{"a/b":{"type":"string"},"c~d":{"type":"string"}}}`))
	require.NoError(t, err)
	err = s.Validate(odd, []byte(`{"a/b":1,"c~d":2}`))
	require.ErrorAs(t, err, &se)
	var got []string
	for _, v := range se.Violations {
		got = append(got, v.Pointer)
	}
	require.ElementsMatch(t, []string{"/a~1b", "/c~0d"}, got)
}

func TestSchemataInlineCache(t *testing.T) {
	t.Parallel()

	s := loadFixtureSchemata(t)
	a, err := s.Compile([]byte(`{"type":"object","required":["x"]}`))
	require.NoError(t, err)
	b, err := s.Compile([]byte(` { "required" : ["x"], "type" : "object" } `))
	require.NoError(t, err)
	require.Same(t, a, b, "equal schemas compile once")

	// Many schemas at once, as concurrent asks would send.
	named := mustMarshal(t, "diff_plan")
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for i := range 32 {
		inline := mustMarshal(t, map[string]any{"type": "integer", "minimum": i})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range []struct{ schema, doc string }{{string(inline), `1000`}, {string(named), `{"steps":[]}`}} {
				sch, err := s.Compile(json.RawMessage(c.schema))
				if err == nil {
					err = s.Validate(sch, []byte(c.doc))
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	_, err = s.Compile([]byte(`{"type":5}`))
	require.ErrorContains(t, err, "invalid schema")
}

func TestSchemataResolve(t *testing.T) {
	t.Parallel()

	s := loadFixtureSchemata(t)
	doc, err := s.Resolve(mustMarshal(t, "step"))
	require.NoError(t, err)
	require.JSONEq(t, schemataFixture["artifacts/step.json"], string(doc))
	require.NotContains(t, string(doc), "\n", "compact")

	doc, err = s.Resolve([]byte(`{ "type": "string" }`))
	require.NoError(t, err)
	require.Equal(t, `{"type":"string"}`, string(doc))

	_, err = s.Resolve(mustMarshal(t, "nope"))
	require.ErrorContains(t, err, `unknown schema "nope"`)
}

func TestLoadSchemataErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, file, body, want string
	}{
		{"not json", "bad.json", `{"type": `, "invalid JSON"},
		{"not a schema", "sub/bad.json", `{"type": 5}`, "invalid schema"},
		{"dangling ref", "bad.json", `{"$ref": "nowhere.json"}`, "invalid schema"},
		{"bad pattern", "bad.json", `{"pattern": "("}`, "invalid schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{tt.file: tt.body, "good.json": `{"type":"object"}`, "notes.txt": "ignored"})
			_, err := role.LoadSchemata(dir)
			require.ErrorContains(t, err, filepath.Join(dir, filepath.FromSlash(tt.file))+": "+tt.want)
		})
	}

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a.json": `{"$id": "https://example.com/x.json"}`,
		"b.json": `{"$id": "https://example.com/x.json"}`,
	})
	_, err := role.LoadSchemata(dir)
	require.ErrorContains(t, err, `$id "https://example.com/x.json" is also the $id of`)
}

func mustMarshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}
