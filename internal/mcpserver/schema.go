package mcpserver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Tool schemas are generated from the Go types of each tool's arguments
// and result with jsonschema.For: property names, JSON types, required
// properties (fields without omitempty) and descriptions (the jsonschema
// struct tags) all come from the types. What inference cannot express —
// enums, patterns, bounds and defaults — is added below from relaytype's
// constants. The server validates every call's arguments against the
// input schema it advertises (validate.go). Output schemas keep only the
// shape of a result (resultSchema): every client pays for tools/list in
// its context, so the prose is said once, in the instructions, the tools'
// descriptions and the input schemas.

// answerStatuses are the statuses asks_answer records; TIMEOUT is the
// relay's own, for asks nobody answered in time.
var answerStatuses = []relaytype.AnswerStatus{relaytype.StatusAnswered, relaytype.StatusRejected, relaytype.StatusError}

// askListStatuses are the values of asks_list's status argument: every
// ask status, then statusAll.
var askListStatuses = []relaytype.AnswerStatus{
	relaytype.StatusPending, relaytype.StatusAnswered, relaytype.StatusRejected,
	relaytype.StatusTimeout, relaytype.StatusError, statusAll,
}

// enum is a string schema that allows only values.
func enum[T ~string](values ...T) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "string"}
	for _, v := range values {
		s.Enum = append(s.Enum, string(v))
	}
	return s
}

// anyJSONTypes are the types of a property that takes any JSON value but
// null.
var anyJSONTypes = []string{"object", "array", "string", "number", "boolean"}

// typeSchemas are the schemas of the types whose values inference cannot
// know: the relay's string enums, timestamps and raw JSON.
func typeSchemas() map[reflect.Type]*jsonschema.Schema {
	return map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[relaytype.JobState]():     enum(relaytype.AllStates...),
		reflect.TypeFor[relaytype.Priority]():     enum(relaytype.PriorityP0, relaytype.PriorityP1, relaytype.PriorityP2),
		reflect.TypeFor[relaytype.ArtifactKind](): enum(relaytype.ArtifactKinds...),
		reflect.TypeFor[relaytype.FailReason](): enum(
			relaytype.ReasonBadArtifacts, relaytype.ReasonConflict, relaytype.ReasonPolicy,
			relaytype.ReasonExecutorError, relaytype.ReasonTimeout, relaytype.ReasonInternalError,
			relaytype.ReasonOutputContract),
		reflect.TypeFor[timestamp]():              {Type: "string", Format: "date-time"},
		reflect.TypeFor[relaytype.AskType]():      enum(relaytype.AskTypes...),
		reflect.TypeFor[relaytype.AnswerStatus](): enum(askListStatuses[:len(askListStatuses)-1]...),
		reflect.TypeFor[answerStatus]():           enum(askListStatuses[1 : len(askListStatuses)-1]...),
		reflect.TypeFor[jsonObject]():             {Type: "object"},
		reflect.TypeFor[json.RawMessage]():        {Types: anyJSONTypes},
	}
}

// schemaFor returns the schema of T, then applies refine to it.
//
// Inference types Go pointers and slices as nullable; none of the relay's
// arguments or results is ever null (an absent pointer is omitted, an
// empty slice is []), so null is taken out of every type: such a property
// is optional, not nullable.
func schemaFor[T any](refine ...func(*jsonschema.Schema)) *jsonschema.Schema {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: typeSchemas()})
	if err != nil {
		// The types are fixed at compile time; a failure is a bug.
		panic(fmt.Sprintf("mcpserver: schema of %v: %v", reflect.TypeFor[T](), err))
	}
	noNull(s)
	for _, r := range refine {
		r(s)
	}
	return s
}

// noNull removes "null" from the types of s and every schema in it.
func noNull(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if i := slices.Index(s.Types, "null"); i >= 0 {
		s.Types = slices.Delete(slices.Clone(s.Types), i, i+1)
		if len(s.Types) == 1 {
			s.Type, s.Types = s.Types[0], nil
		}
	}
	for _, p := range s.Properties {
		noNull(p)
	}
	noNull(s.Items)
}

// resultSchema is the output schema of a tool returning T: the shape of
// the result, without prose (the instructions and the tools' descriptions
// say what the values mean, the input schemas list the enums). It keeps
// every property with its JSON type and required-ness, and lists the
// properties of nested objects only to depth levels below the top (0:
// none; deeper objects are typed "object"; arrays do not count as a
// level). Results accept properties the schema does not list, so that a
// client validating structuredContent against it keeps working when the
// relay adds a field.
func resultSchema[T any](depth int) *jsonschema.Schema {
	s := schemaFor[T]()
	shape(s, depth)
	return s
}

// shape strips s to its shape: no descriptions, enums or formats, no
// closed objects, and no properties below depth levels of nesting.
func shape(s *jsonschema.Schema, depth int) {
	s.Description, s.Enum, s.Format = "", nil, ""
	s.AdditionalProperties = nil
	for _, p := range s.Properties {
		if p.Type == "object" && depth <= 0 {
			*p = jsonschema.Schema{Type: "object"}
			continue
		}
		shape(p, depth-1)
	}
	if it := s.Items; it != nil {
		if it.Type == "object" && depth < 0 {
			*it = jsonschema.Schema{Type: "object"}
		} else {
			shape(it, depth)
		}
	}
}

// prop returns the schema of the property at path in s; "[]" steps into
// the items of an array. The schemas are built from fixed types, so a
// missing property is a bug.
func prop(s *jsonschema.Schema, path ...string) *jsonschema.Schema {
	for _, name := range path {
		if name == "[]" {
			s = s.Items
		} else {
			s = s.Properties[name]
		}
		if s == nil {
			panic(fmt.Sprintf("mcpserver: schema has no property %v", path))
		}
	}
	return s
}

// optional removes names from the required properties of s.
func optional(s *jsonschema.Schema, names ...string) {
	s.Required = slices.DeleteFunc(s.Required, func(n string) bool { return slices.Contains(names, n) })
}

func ptr[T any](v T) *T { return &v }

// jsonValue is v as JSON, for a schema's default.
func jsonValue(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: default %v: %v", v, err))
	}
	return data
}

// bounds sets the minimum (and, unless max is 0, the maximum) of an
// integer schema.
func bounds(s *jsonschema.Schema, minimum, maximum int) *jsonschema.Schema {
	s.Minimum = ptr(float64(minimum))
	if maximum != 0 {
		s.Maximum = ptr(float64(maximum))
	}
	return s
}

// length sets the length bounds of a string schema.
func length(s *jsonschema.Schema, minimum, maximum int) {
	s.MinLength, s.MaxLength = ptr(minimum), ptr(maximum)
}

// submitSchema is submitArgs as jobs_submit's input schema describes it:
// the spec is decoded by relaytype.ParseJobSpec, described by JobSpec.
type submitSchema struct {
	Spec relaytype.JobSpec `json:"spec" jsonschema:"the job"`
}

// submitInputSchema is the input schema of jobs_submit: JobSpec with the
// limits and defaults of relaytype.
func submitInputSchema() *jsonschema.Schema {
	return schemaFor[submitSchema](func(s *jsonschema.Schema) {
		spec := prop(s, "spec")
		// Validate requires repo, task and idempotencyKey; scope and
		// execution may be left out like the other fields.
		optional(spec, "scope", "execution")
		prop(spec, "repo", "type").Enum = enum(relaytype.RepoTypes...).Enum
		prop(spec, "repo", "baselineCommit").Pattern = relaytype.CommitPattern
		length(prop(spec, "task", "title"), 1, relaytype.MaxTitleLen)
		length(prop(spec, "task", "description"), 1, relaytype.MaxDescriptionLen)
		length(prop(spec, "idempotencyKey"), 1, relaytype.MaxIdempotencyKey)
		prop(spec, "outputContract", "[]").Enum = enum(relaytype.OutputContractItems...).Enum
		bounds(prop(spec, "context", "codeSnippets", "[]", "from"), 1, 0)
		bounds(prop(spec, "context", "codeSnippets", "[]", "to"), 1, 0)
		exec := prop(spec, "execution")
		prop(exec, "priority").Default = jsonValue(relaytype.DefaultPriority)
		prop(exec, "askPolicy").Enum = enum(relaytype.AskPolicies...).Enum
		bounds(prop(exec, "timeoutS"), 0, 0)
		bounds(prop(exec, "ttlS"), 0, 0).Default = jsonValue(relaytype.DefaultTTLS)
		bounds(prop(exec, "maxAttempts"), 0, relaytype.MaxMaxAttempts).Default = jsonValue(relaytype.DefaultMaxAttempts)
		prop(exec, "maxBudgetUsd").Minimum = ptr(0.0)
	})
}

// listInputSchema is the input schema of jobs_list.
func listInputSchema() *jsonschema.Schema {
	return schemaFor[listArgs](func(s *jsonschema.Schema) {
		prop(s, "state").Enum = enum(relaytype.AllStates...).Enum
		bounds(prop(s, "limit"), 1, maxListLimit).Default = jsonValue(defaultListLimit)
		bounds(prop(s, "offset"), 0, 0).Default = jsonValue(0)
		prop(s, "allProjects").Default = jsonValue(false)
	})
}

// waitInputSchema is the input schema of jobs_wait.
func waitInputSchema() *jsonschema.Schema {
	return schemaFor[waitArgs](func(s *jsonschema.Schema) {
		bounds(prop(s, "timeoutS"), 1, maxWaitS).Default = jsonValue(defaultWaitS)
	})
}

// followupInputSchema is the input schema of jobs_followup.
func followupInputSchema() *jsonschema.Schema {
	return schemaFor[followupArgs](func(s *jsonschema.Schema) {
		prop(s, "instruction").MaxLength = ptr(relaytype.MaxDescriptionLen)
	})
}

// asksListInputSchema is the input schema of asks_list.
func asksListInputSchema() *jsonschema.Schema {
	return schemaFor[asksListArgs](func(s *jsonschema.Schema) {
		st := prop(s, "status")
		st.Enum = append(enum(askListStatuses...).Enum, "")
		st.Default = jsonValue(relaytype.StatusPending)
	})
}

// asksAnswerInputSchema is the input schema of asks_answer.
func asksAnswerInputSchema() *jsonschema.Schema {
	return schemaFor[asksAnswerArgs](func(s *jsonschema.Schema) {
		st := prop(s, "status")
		st.Enum = enum(answerStatuses...).Enum
		st.Default = jsonValue(relaytype.StatusAnswered)
	})
}
