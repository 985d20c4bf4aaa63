package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// followupJobs is fakeJobs with follow-ups, so that the server offers
// every tool.
type followupJobs struct{ *fakeJobs }

func (f followupJobs) Followup(ctx context.Context, parentID, _ string) (*relaytype.Job, error) {
	return f.Get(ctx, parentID)
}

// setupAll is setup with every tool offered: asks and follow-ups.
func setupAll(t *testing.T) *bundle {
	t.Helper()
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: followupJobs{fake}, Asks: newFakeAsks(fake), Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	return setupWith(t, fake, srv, "")
}

// listTools returns the tools/list result the client sees.
func (b *bundle) listTools(t *testing.T) *mcp.ListToolsResult {
	t.Helper()
	res, err := b.cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	return res
}

// advertised returns the input schema of tool as the client sees it.
func (b *bundle) advertised(t *testing.T, tool string) *jsonschema.Schema {
	t.Helper()
	for _, tl := range b.listTools(t).Tools {
		if tl.Name == tool {
			return toSchema(t, tl.InputSchema)
		}
	}
	t.Fatalf("no tool %s", tool)
	return nil
}

// Every orchestrator conversation pays for tools/list and the initialize
// instructions before its first call: maxToolsListBytes bounds the JSON
// size of tools/list with every tool offered (38 101 bytes with
// hand-written schemas, 21 976 with the first generated ones), and
// maxInstructionsBytes the instructions.
const (
	maxToolsListBytes    = 12 * 1024
	maxInstructionsBytes = 1536
)

func TestToolsListSize(t *testing.T) {
	t.Parallel()
	b := setupAll(t)
	res := b.listTools(t)
	require.Len(t, res.Tools, 8)
	data, err := json.Marshal(res)
	require.NoError(t, err)
	instr := b.cs.InitializeResult().Instructions
	t.Logf("tools/list: %d bytes; instructions: %d bytes", len(data), len(instr))
	require.LessOrEqual(t, len(instr), maxInstructionsBytes, "instructions")
	require.Equal(t, instructions(true), instr)
	for _, tool := range res.Tools {
		in, err := json.Marshal(tool.InputSchema)
		require.NoError(t, err)
		out, err := json.Marshal(tool.OutputSchema)
		require.NoError(t, err)
		t.Logf("%-14s description %4d, input schema %4d, output schema %4d", tool.Name, len(tool.Description), len(in), len(out))
	}
	require.LessOrEqual(t, len(data), maxToolsListBytes, "tools/list")
}

// TestResultSchemasOpen checks what output schemas keep and leave out:
// every result property with its type and required-ness, no prose, and
// room for properties a later relay adds.
func TestResultSchemasOpen(t *testing.T) {
	t.Parallel()
	s := resultSchema[jobStatus](0)
	require.Nil(t, s.AdditionalProperties)
	require.Contains(t, s.Required, "state")
	require.NotContains(t, s.Required, "progress")
	require.Equal(t, &jsonschema.Schema{Type: "string"}, prop(s, "state"), "no enum or description")
	require.Equal(t, &jsonschema.Schema{Type: "object"}, prop(s, "usage"), "nested below depth 0")
	require.Equal(t, &jsonschema.Schema{Type: "object"}, prop(s, "artifacts", "[]"))
	requireValid(t, s, `{"id":"job_1","state":"QUEUED","stateVersion":1,"attempt":0,"maxAttempts":3,"priority":"P1","executor":"x",`+
		`"baselineCommit":"","createdAt":"t","lastUpdate":"t","usage":{"inputTokens":0,"outputTokens":0},"artifacts":[],"added":1}`)
	resolved, err := s.Resolve(nil)
	require.NoError(t, err)
	require.Error(t, resolved.Validate(map[string]any{"id": "job_1"}), "required properties stay required")

	deep := resultSchema[jobStatus](1)
	require.Equal(t, []string{"kind", "uri", "digest", "size"}, prop(deep, "artifacts", "[]").Required)
	require.Equal(t, &jsonschema.Schema{Type: "integer"}, prop(deep, "usage", "inputTokens"))
}

// lintTools checks tools the way strict MCP clients and linters do and
// returns one warning per problem.
func lintTools(t *testing.T, tools []*mcp.Tool) []string {
	t.Helper()
	var warnings []string
	warn := func(format string, a ...any) { warnings = append(warnings, fmt.Sprintf(format, a...)) }
	for _, tool := range tools {
		if strings.TrimSpace(tool.Description) == "" {
			warn("%s: no description", tool.Name)
		}
		for _, which := range []string{"inputSchema", "outputSchema"} {
			raw := tool.InputSchema
			if which == "outputSchema" {
				raw = tool.OutputSchema
			}
			if raw == nil {
				warn("%s: no %s", tool.Name, which)
				continue
			}
			s := toSchema(t, raw)
			if s.Type != "object" {
				warn("%s: %s has type %q, not object", tool.Name, which, s.Type)
			}
			// Arguments are what the model writes: each needs a
			// description. Results need only their shape: output
			// properties carry no descriptions.
			lintSchema(s, tool.Name+"."+which, which == "inputSchema", warn)
		}
	}
	return warnings
}

// lintSchema checks s and the schemas in it.
func lintSchema(s *jsonschema.Schema, at string, describe bool, warn func(string, ...any)) {
	if slices.Contains(s.Types, "null") || s.Type == "null" {
		// No argument or result of the relay is ever null.
		warn("%s: typed with null %v", at, s.Types)
	}
	if s.Type == "array" && s.Items == nil {
		warn("%s: array without items", at)
	}
	for _, name := range s.Required {
		if _, ok := s.Properties[name]; !ok {
			warn("%s: required %q is not a property", at, name)
		}
	}
	for name, p := range s.Properties {
		pat := at + "." + name
		if p == nil || reflect.ValueOf(*p).IsZero() {
			warn("%s: empty schema", pat)
			continue
		}
		if p.Type == "" && len(p.Types) == 0 {
			warn("%s: no type", pat)
		}
		if describe && strings.TrimSpace(p.Description) == "" {
			warn("%s: no description", pat)
		}
		if !describe && p.Description != "" {
			warn("%s: prose in a result's schema", pat)
		}
		lintSchema(p, pat, describe, warn)
	}
	if s.Items != nil {
		lintSchema(s.Items, at+"[]", describe, warn)
	}
}

func TestToolsLint(t *testing.T) {
	t.Parallel()
	res := setupAll(t).listTools(t)
	require.Empty(t, lintTools(t, res.Tools))

	// The lint finds what it looks for.
	bad := &mcp.Tool{Name: "bad", InputSchema: map[string]any{
		"type": "object", "required": []any{"a", "gone"},
		"properties": map[string]any{
			"a": map[string]any{"type": []any{"null", "string"}, "description": "x"},
			"b": map[string]any{"type": "array", "description": "x"},
			"c": map[string]any{},
			"d": map[string]any{"description": "x"},
			"e": map[string]any{"type": "string"},
		},
	}, OutputSchema: map[string]any{
		"type":       "object",
		"properties": map[string]any{"f": map[string]any{"type": "string", "description": "x"}},
	}}
	require.ElementsMatch(t, []string{
		"bad: no description",
		"bad.inputSchema.a: typed with null [null string]",
		"bad.inputSchema.b: array without items",
		`bad.inputSchema: required "gone" is not a property`,
		"bad.inputSchema.c: empty schema",
		"bad.inputSchema.d: no type",
		"bad.inputSchema.e: no description",
		"bad.outputSchema.f: prose in a result's schema",
	}, lintTools(t, []*mcp.Tool{bad}))
}

// jsonFields returns the JSON names of the fields of struct type st, with
// whether each is optional (omitempty).
func jsonFields(st reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(st) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous || !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f
	}
	return fields
}

// requireSchemaMatches asserts that schema s describes Go type typ: the
// same JSON fields, recursively, with compatible JSON types.
func requireSchemaMatches(t *testing.T, s *jsonschema.Schema, typ reflect.Type, at string) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := map[reflect.Kind]string{
		reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer", reflect.Int64: "integer",
		reflect.Float64: "number", reflect.Slice: "array", reflect.Struct: "object",
	}[typ.Kind()]
	require.NotEmpty(t, want, "%s: unexpected Go kind %v", at, typ.Kind())
	require.Equal(t, want, s.Type, "%s: schema type of Go %v", at, typ)
	switch typ.Kind() {
	case reflect.Slice:
		require.NotNil(t, s.Items, "%s: items", at)
		requireSchemaMatches(t, s.Items, typ.Elem(), at+"[]")
	case reflect.Struct:
		fields := jsonFields(typ)
		for name, f := range fields {
			p, ok := s.Properties[name]
			require.True(t, ok, "%s.%s (Go %s) is not in the schema", at, name, f.Name)
			requireSchemaMatches(t, p, f.Type, at+"."+name)
		}
		for name := range s.Properties {
			_, ok := fields[name]
			require.True(t, ok, "schema property %s.%s has no field in Go %v", at, name, typ)
		}
		require.Equal(t, "false", string(mustJSON(t, s.AdditionalProperties)), "%s: unknown fields are rejected", at)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return data
}

// TestSubmitSchemaMatchesJobSpec walks relaytype.JobSpec and the
// advertised jobs_submit schema side by side.
func TestSubmitSchemaMatchesJobSpec(t *testing.T) {
	t.Parallel()
	in := setup(t).advertised(t, "jobs_submit")
	require.Equal(t, []string{"spec"}, in.Required)
	require.Len(t, in.Properties, 1)
	requireSchemaMatches(t, prop(in, "spec"), reflect.TypeFor[relaytype.JobSpec](), "spec")
}

// fullSpec is a JobSpec that sets every field.
const fullSpec = `{
  "repo": {"type": "git", "url": "https://example.com/app.git", "path": "/src/app", "baseBranch": "main",
           "baselineCommit": "0123456789abcdef0123456789abcdef01234567"},
  "task": {"title": "Add input validation", "description": "Validate the request body.", "acceptance": ["invalid input returns 400"]},
  "scope": {"readPaths": ["src/"], "fileGlobs": ["src/**/*.go"], "disallowReformatting": true},
  "context": {"dirTreeDigest": "sha256:abc", "keySignatures": ["func Handle()"],
              "codeSnippets": [{"path": "src/api.go", "from": 10, "to": 40}]},
  "outputContract": ["DIFF", "TEST_PLAN", "NOTES"],
  "execution": {"preferredModel": "gpt-5", "sandbox": "workspace-write", "askPolicy": "untrusted", "timeoutS": 1800,
                "priority": "P0", "ttlS": 600, "executor": "codex", "maxAttempts": 2, "maxBudgetUsd": 1.5},
  "idempotencyKey": "full-1",
  "notify": {"webhook": "https://example.com/hook", "enablePr": true}
}`

// requireAllSet asserts that every field of v, recursively, is set.
func requireAllSet(t *testing.T, v reflect.Value, at string) {
	t.Helper()
	for v.Kind() == reflect.Pointer {
		require.False(t, v.IsNil(), "%s is not set", at)
		v = v.Elem()
	}
	require.False(t, v.IsZero(), "%s is not set", at)
	switch v.Kind() {
	case reflect.Struct:
		for name, f := range jsonFields(v.Type()) {
			requireAllSet(t, v.FieldByIndex(f.Index), at+"."+name)
		}
	case reflect.Slice:
		for i := range v.Len() {
			requireAllSet(t, v.Index(i), fmt.Sprintf("%s[%d]", at, i))
		}
	}
}

func TestFullSpec(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec, err := relaytype.ParseJobSpec([]byte(fullSpec))
	require.NoError(t, err)
	requireAllSet(t, reflect.ValueOf(spec), "spec")
	require.Equal(t, 1.5, spec.Execution.MaxBudgetUSD)

	// It is valid by the advertised schema, as an independent validator
	// reads it.
	requireValid(t, b.advertised(t, "jobs_submit"), `{"spec":`+fullSpec+`}`)

	// A JSON round trip parses to the same spec.
	data, err := json.Marshal(spec)
	require.NoError(t, err)
	again, err := relaytype.ParseJobSpec(data)
	require.NoError(t, err)
	require.Equal(t, spec, again)

	// The tool takes it, and the job holds the same spec.
	var out submitResult
	b.ok(t, "jobs_submit", json.RawMessage(`{"spec":`+fullSpec+`}`), &out)
	job, err := b.fake.Get(context.Background(), out.JobID)
	require.NoError(t, err)
	require.Equal(t, *spec, job.Spec)
}

// TestSubmitSchemaRequired ties the schema's required spec fields to
// relaytype's validation: leaving out a required field fails naming it,
// leaving out any other field does not.
func TestSubmitSchemaRequired(t *testing.T) {
	t.Parallel()
	spec := prop(setup(t).advertised(t, "jobs_submit"), "spec")
	require.ElementsMatch(t, []string{"repo", "task", "idempotencyKey"}, spec.Required)
	for name := range spec.Properties {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(fullSpec), &m))
		delete(m, name)
		_, err := relaytype.ParseJobSpec(mustJSON(t, m))
		if slices.Contains(spec.Required, name) {
			var se *relaytype.SpecError
			require.ErrorAs(t, err, &se, name)
			require.True(t, strings.HasPrefix(se.Field, name), "%s: %v", name, err)
		} else {
			require.NoError(t, err, name)
		}
	}
}

// TestSchemaValues checks the enums, bounds and defaults of the input
// schemas against the values relaytype and the handlers accept.
func TestSchemaValues(t *testing.T) {
	t.Parallel()
	b := setupAll(t)
	spec := prop(b.advertised(t, "jobs_submit"), "spec")
	for _, typ := range prop(spec, "repo", "type").Enum {
		_, err := relaytype.ParseJobSpec(fmt.Appendf(nil, `{"repo":{"type":%q,"path":"/r","url":"file:///r"},"task":{"title":"t","description":"d"},"idempotencyKey":"k"}`, typ))
		require.NoError(t, err, typ)
	}
	for _, p := range prop(spec, "execution", "priority").Enum {
		require.GreaterOrEqual(t, relaytype.Priority(p.(string)).Rank(), 0, p)
	}
	var defaults relaytype.JobSpec
	defaults.ApplyDefaults()
	exec := prop(spec, "execution")
	for name, want := range map[string]any{"priority": defaults.Execution.Priority, "ttlS": defaults.Execution.TTLS, "maxAttempts": defaults.Execution.MaxAttempts} {
		require.JSONEq(t, string(mustJSON(t, want)), string(prop(exec, name).Default), name)
	}
	require.Equal(t, float64(relaytype.MaxMaxAttempts), *prop(exec, "maxAttempts").Maximum)
	require.True(t, relaytype.ValidCommit(strings.Repeat("a", 40)))
	require.Equal(t, relaytype.CommitPattern, prop(spec, "repo", "baselineCommit").Pattern)

	// Every enum value of an argument is one its handler takes.
	list := b.advertised(t, "jobs_list")
	for _, st := range prop(list, "state").Enum {
		var page listResult
		b.ok(t, "jobs_list", map[string]any{"state": st}, &page)
	}
	require.Equal(t, float64(maxListLimit), *prop(list, "limit").Maximum)
	asks := b.advertised(t, "asks_list")
	for _, st := range prop(asks, "status").Enum {
		var out asksResult
		b.ok(t, "asks_list", map[string]any{"status": st}, &out)
	}
	require.Equal(t, float64(maxWaitS), *prop(b.advertised(t, "jobs_wait"), "timeoutS").Maximum)
}

// TestArgumentsValidated calls tools with arguments the advertised schema
// rejects: each gets a contract error naming the field, and the handler
// never runs.
func TestArgumentsValidated(t *testing.T) {
	t.Parallel()
	b := setupAll(t)
	id := b.submit(t, "k").JobID
	spec := func(old, new string) json.RawMessage {
		require.Contains(t, fullSpec, old)
		return json.RawMessage(`{"spec":` + strings.Replace(fullSpec, old, new, 1) + `}`)
	}
	for _, tc := range []struct {
		name, tool string
		args       any
		code       relaytype.ErrorCode
		field, msg string
	}{
		{"wrong type", "jobs_list", map[string]any{"limit": "ten"}, relaytype.CodeInvalidRequest, "limit", "limit: must be an integer, not string"},
		{"unknown argument", "jobs_get", map[string]any{"jobId": id, "verbose": true}, relaytype.CodeInvalidRequest, "verbose", "verbose: unknown argument"},
		{"enum", "jobs_list", map[string]any{"state": "DONE"}, relaytype.CodeInvalidRequest, "state",
			`state: must be one of QUEUED, RUNNING, WAITING_ON_ANSWER, SUCCEEDED, FAILED, CANCELED, EXPIRED, STALE, not "DONE"`},
		{"above maximum", "jobs_wait", map[string]any{"jobId": id, "timeoutS": 51}, relaytype.CodeInvalidRequest, "timeoutS", "timeoutS: must be at most 50, not 51"},
		{"missing", "jobs_cancel", map[string]any{}, relaytype.CodeInvalidRequest, "jobId", "jobId: required"},
		{"not an object", "jobs_cancel", []any{id}, relaytype.CodeInvalidRequest, "arguments", "arguments: must be a JSON object"},
		{"wrong type of answer", "asks_answer", map[string]any{"askId": "a", "answerText": 3}, relaytype.CodeInvalidRequest, "answerText", ""},
		{"instruction too long", "jobs_followup", map[string]any{"jobId": id, "instruction": strings.Repeat("x", relaytype.MaxDescriptionLen+1)},
			relaytype.CodeInvalidRequest, "instruction", "instruction: is 10001 characters, at most 10000 allowed"},

		{"spec wrong type", "jobs_submit", spec(`"timeoutS": 1800`, `"timeoutS": "long"`), relaytype.CodeInvalidSpec, "execution.timeoutS",
			"execution.timeoutS: must be an integer, not string"},
		{"spec unknown field", "jobs_submit", spec(`"enablePr": true`, `"enablePr": true, "slack": "#x"`), relaytype.CodeInvalidSpec, "notify.slack",
			"notify.slack: unknown field"},
		{"spec enum", "jobs_submit", spec(`"NOTES"]`, `"NOTES", "PDF"]`), relaytype.CodeInvalidSpec, "outputContract[3]",
			`outputContract[3]: must be one of DIFF, TEST_PLAN, NOTES, not "PDF"`},
		{"spec repo type", "jobs_submit", spec(`"type": "git"`, `"type": "svn"`), relaytype.CodeInvalidSpec, "repo.type", ""},
		{"spec nested item", "jobs_submit", spec(`"from": 10`, `"from": 0`), relaytype.CodeInvalidSpec, "context.codeSnippets[0].from",
			"context.codeSnippets[0].from: must be at least 1, not 0"},
		{"spec budget", "jobs_submit", spec(`"maxBudgetUsd": 1.5`, `"maxBudgetUsd": -1`), relaytype.CodeInvalidSpec, "execution.maxBudgetUsd", ""},
		{"spec missing", "jobs_submit", spec(`"title": "Add input validation", `, ``), relaytype.CodeInvalidSpec, "task.title", "task.title: required"},
		{"spec commit", "jobs_submit", spec(`0123456789abcdef0123456789abcdef01234567`, `main`), relaytype.CodeInvalidSpec, "repo.baselineCommit", ""},
		{"spec null member", "jobs_submit", spec(`"notify": {"webhook": "https://example.com/hook", "enablePr": true}`, `"notify": null`),
			relaytype.CodeInvalidSpec, "notify", "notify: must be an object, not null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := b.fail(t, tc.tool, tc.args)
			require.Equal(t, tc.code, body.Code, body.Message)
			require.Equal(t, tc.field, body.Field, body.Message)
			require.Contains(t, body.Message, tc.field)
			if tc.msg != "" {
				require.Equal(t, tc.msg, body.Message)
			}
		})
	}
	var page listResult
	b.ok(t, "jobs_list", map[string]any{}, &page)
	require.Equal(t, 1, page.Total, "no rejected spec reached the relay")
}

// TestArgumentsNormalized covers what clients commonly send that the
// schema does not spell out: null for an absent argument, an enum in
// another case, a spec as a JSON-encoded string.
func TestArgumentsNormalized(t *testing.T) {
	t.Parallel()
	b := setupAll(t)
	var out submitResult
	b.ok(t, "jobs_submit", map[string]any{"spec": fullSpec}, &out)
	var page listResult
	b.ok(t, "jobs_list", map[string]any{"state": " queued ", "limit": nil, "offset": nil}, &page)
	require.Equal(t, 1, page.Total)
	b.ok(t, "jobs_list", map[string]any{"state": ""}, &page)
	require.Equal(t, 1, page.Total)

	// A spec string that is not a JSON object stays a string, and wrong.
	body := b.fail(t, "jobs_submit", map[string]any{"spec": "add validation"})
	require.Equal(t, toolErrorBody{Code: relaytype.CodeInvalidSpec, Field: "spec", Message: "spec: must be a JSON object (the JobSpec), not string"}, body)
}

// TestArgumentsValidatedConcurrently shares one compiled schema between
// concurrent calls (run with -race).
func TestArgumentsValidatedConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			args := map[string]any{"limit": i%maxListLimit + 1}
			if i%2 == 1 {
				args["limit"] = "many"
			}
			res, err := b.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "jobs_list", Arguments: args})
			if !assert.NoError(t, err) {
				return
			}
			assert.Equal(t, i%2 == 1, res.IsError, "call %d", i)
		})
	}
	wg.Wait()
}
