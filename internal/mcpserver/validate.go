package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	jsv "github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// argValidator checks a tool's arguments against the input schema the
// tool advertises, compiled once, and reports the first violation as a
// contract error naming the field: a *relaytype.SpecError (INVALID_SPEC)
// inside jobs_submit's spec, an *argError (INVALID_REQUEST) elsewhere.
type argValidator struct {
	schema *jsv.Schema
	// enums holds the allowed values of the top-level string arguments
	// that have an enum, by argument name.
	enums map[string][]string
	// spec is set when the "spec" argument is a JobSpec.
	spec bool
}

// newArgValidator compiles the input schema s of tool, encoded as data.
func newArgValidator(tool string, s *jsonschema.Schema, data []byte) (*argValidator, error) {
	doc, err := jsv.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode input schema of %s: %w", tool, err)
	}
	c := jsv.NewCompiler()
	c.DefaultDraft(jsv.Draft2020)
	url := "urn:mcp-task-relay:tool:" + tool
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("add input schema of %s: %w", tool, err)
	}
	compiled, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compile input schema of %s: %w", tool, err)
	}
	v := &argValidator{schema: compiled, enums: map[string][]string{}}
	for name, p := range s.Properties {
		for _, e := range p.Enum {
			if str, ok := e.(string); ok {
				v.enums[name] = append(v.enums[name], str)
			}
		}
	}
	if p := s.Properties["spec"]; p != nil && p.Type == "object" {
		v.spec = true
	}
	return v, nil
}

// check validates raw arguments and returns them, normalized, for
// decoding. Absent arguments are {}. Before validation, what clients
// commonly send for "nothing" or in another spelling is normalized:
// a top-level argument that is null, or an empty string where an enum
// without "" is expected, is left out; an enum value in another case or with spaces
// around it is the enum's spelling; and a spec sent as a JSON-encoded
// string is the object inside.
func (v *argValidator) check(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	doc, err := decodeJSON(raw)
	if err != nil {
		return nil, &argError{Field: "arguments", Message: err.Error()}
	}
	args, ok := doc.(map[string]any)
	if !ok {
		return nil, &argError{Field: "arguments", Message: "must be a JSON object"}
	}
	v.normalize(args)
	if err := v.schema.Validate(args); err != nil {
		var ve *jsv.ValidationError
		if !errors.As(err, &ve) {
			return nil, fmt.Errorf("validate arguments: %w", err)
		}
		return nil, v.fieldError(args, ve)
	}
	out, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encode arguments: %w", err)
	}
	return out, nil
}

// decodeJSON decodes exactly one JSON value, keeping numbers as written.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return doc, nil
}

// normalize applies check's normalizations to args in place.
func (v *argValidator) normalize(args map[string]any) {
	for name, val := range args {
		switch val := val.(type) {
		case nil:
			delete(args, name)
		case string:
			allowed, ok := v.enums[name]
			if !ok {
				break
			}
			trimmed := strings.TrimSpace(val)
			if trimmed == "" && !slices.Contains(allowed, "") {
				delete(args, name)
				break
			}
			if i := slices.IndexFunc(allowed, func(e string) bool { return strings.EqualFold(e, trimmed) }); i >= 0 {
				args[name] = allowed[i]
			}
		}
	}
	if s, ok := args["spec"].(string); ok && v.spec {
		if inner, err := decodeJSON([]byte(s)); err == nil {
			if obj, ok := inner.(map[string]any); ok {
				args["spec"] = obj
			}
		}
	}
}

// fieldError turns the first violation in ve into a contract error.
func (v *argValidator) fieldError(args map[string]any, ve *jsv.ValidationError) error {
	leaf := firstLeaf(ve)
	path := instancePath(args, leaf.InstanceLocation)
	msg := ""
	unknown := "unknown argument"
	if v.spec && len(path) > 0 && path[0] == "spec" {
		unknown = "unknown field"
	}
	switch k := leaf.ErrorKind.(type) {
	case *kind.Required:
		path, msg = append(path, k.Missing[0]), "required"
	case *kind.AdditionalProperties:
		names := slices.Sorted(slices.Values(k.Properties))
		path, msg = append(path, names[0]), unknown
	case *kind.Type:
		msg = fmt.Sprintf("must be %s, not %s", typeNames(k.Want), k.Got)
		if len(path) == 1 && path[0] == "spec" && v.spec {
			msg = "must be a JSON object (the JobSpec), not " + k.Got
		}
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		msg = fmt.Sprintf("must be one of %s, not %s", strings.Join(want, ", "), jsonText(k.Got))
	case *kind.Pattern:
		msg = fmt.Sprintf("%q does not match %s", k.Got, k.Want)
	case *kind.MinLength:
		msg = fmt.Sprintf("is %d characters, at least %d required", k.Got, k.Want)
		if k.Got == 0 {
			msg = "must not be empty"
		}
	case *kind.MaxLength:
		msg = fmt.Sprintf("is %d characters, at most %d allowed", k.Got, k.Want)
	case *kind.Minimum:
		msg = fmt.Sprintf("must be at least %s, not %s", k.Want.RatString(), k.Got.RatString())
	case *kind.Maximum:
		msg = fmt.Sprintf("must be at most %s, not %s", k.Want.RatString(), k.Got.RatString())
	default:
		msg = "does not satisfy " + strings.Join(leaf.ErrorKind.KeywordPath(), "/")
	}
	if v.spec && len(path) > 0 && path[0] == "spec" {
		field := "spec"
		if len(path) > 1 {
			field = joinPath(path[1:])
		}
		return &relaytype.SpecError{Field: field, Message: msg}
	}
	return &argError{Field: joinPath(path), Message: msg}
}

// firstLeaf returns the first violation without causes in ve's tree, in
// the order of the instance locations, so that the error reported for a
// given input does not vary.
func firstLeaf(ve *jsv.ValidationError) *jsv.ValidationError {
	var leaves []*jsv.ValidationError
	var walk func(*jsv.ValidationError)
	walk = func(e *jsv.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, e)
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return slices.MinFunc(leaves, func(a, b *jsv.ValidationError) int {
		return slices.Compare(a.InstanceLocation, b.InstanceLocation)
	})
}

// instancePath returns the steps of loc in doc, with array indices as
// "[i]".
func instancePath(doc any, loc []string) []string {
	path := make([]string, 0, len(loc))
	for _, tok := range loc {
		switch cur := doc.(type) {
		case []any:
			i, _ := strconv.Atoi(tok)
			path = append(path, "["+tok+"]")
			if i >= 0 && i < len(cur) {
				doc = cur[i]
			}
		case map[string]any:
			path = append(path, tok)
			doc = cur[tok]
		default:
			path = append(path, tok)
		}
	}
	return path
}

// joinPath joins path steps into a field path such as
// context.codeSnippets[0].from.
func joinPath(path []string) string {
	var b strings.Builder
	for _, p := range path {
		if b.Len() > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// typeNames names JSON types the way a client thinks of them: "an
// integer", "a string or a number".
func typeNames(types []string) string {
	out := make([]string, len(types))
	for i, t := range types {
		switch t {
		case "integer", "object", "array":
			out[i] = "an " + t
		default:
			out[i] = "a " + t
		}
	}
	return strings.Join(out, " or ")
}

// jsonText is v as compact JSON, for messages.
func jsonText(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}
