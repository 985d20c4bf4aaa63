package role

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/mcp-task-relay/mcp-task-relay/internal/strictyaml"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Built-in role ids.
const (
	RoleClarifier        = "clarifier"
	RoleDiffPlanner      = "diff_planner"
	RoleFinder           = "finder"
	RolePolicyDecider    = "policy_decider"
	RoleRiskAssessor     = "risk_assessor"
	RoleSchemaSummarizer = "schema_summarizer"
	RoleTestPlanner      = "test_planner"
)

// SourceBuiltin is the Source of a role embedded in the binary.
const SourceBuiltin = "builtin"

// ErrUnknownRole is wrapped by Catalog.Resolve when no role matches.
var ErrUnknownRole = errors.New("unknown role")

//go:embed roles/*.yaml
var builtinRoles embed.FS

// Role is one answering persona of the Answer Runner, read from a
// role.NAME@vN.yaml file. A Role from a Catalog is shared: treat it as
// read-only.
type Role struct {
	// ID is the role's name without the "role." prefix ("finder").
	ID string
	// Version is "v" followed by a number ("v1").
	Version string
	// Purpose says in a sentence what the role is for.
	Purpose string
	// System is the role's instructions to the model.
	System string
	// InputSchema describes the envelope facts the role reads; it is
	// informational. Empty when the file has none.
	InputSchema json.RawMessage
	// OutputSchema is a JSON Schema object, or a JSON string naming a
	// schema of the Schemata ("artifacts/diff_plan"), that answer_json
	// must satisfy. Empty means the role answers in plain text.
	OutputSchema json.RawMessage
	// ToolWhitelist lists the tools the role may use.
	ToolWhitelist []string
	Limits        Limits
	// Guardrails are rules the answer must keep, shown to the model.
	Guardrails []string
	// Examples show the model a question and a good answer.
	Examples []Example
	// Source is SourceBuiltin or the path of the file the role came from.
	Source string
}

// Limits bound a role's answers. Zero means no limit of the role's own.
type Limits struct {
	MaxTokens    int
	MaxToolCalls int
}

// Example is an input and the output the role should produce for it, as
// JSON converted from the role file's YAML.
type Example struct {
	Input  json.RawMessage
	Output json.RawMessage
}

// Ref returns "id@version".
func (r *Role) Ref() string { return r.ID + "@" + r.Version }

// Allows reports whether tool is on the role's whitelist.
func (r *Role) Allows(tool string) bool {
	for _, t := range r.ToolWhitelist {
		if t == tool {
			return true
		}
	}
	return false
}

// DefaultRole returns the id of the built-in role that answers asks of
// type t that name no role: clarifier for CLARIFICATION and CHOICE (and
// unknown types), finder for RESOURCE_FETCH, policy_decider for
// POLICY_DECISION and APPROVAL.
func DefaultRole(t relaytype.AskType) string {
	switch t {
	case relaytype.AskResourceFetch:
		return RoleFinder
	case relaytype.AskPolicyDecision, relaytype.AskApproval:
		return RolePolicyDecider
	}
	return RoleClarifier
}

// Catalog holds the roles the Answer Runner can take, by id and version.
// It is immutable once loaded and safe for concurrent use.
type Catalog struct {
	byID map[string]map[string]*Role
	// shared holds the output schemas of the built-in roles that compile
	// the same whatever the Schemata (shared, read-only; see builtinSet).
	shared map[*Role]sharedSchema
}

// builtinSet is the embedded roles, parsed, and the output schemas of
// those whose schema is an inline object that refers to nothing outside
// itself ($ref, $id, anchors): such a schema compiles to the same
// validator with any Schemata, so it is compiled once per process, when
// an ask first needs it, rather than for every project.
type builtinSet struct {
	roles  []*Role
	shared map[*Role]sharedSchema
}

// sharedSchema is a built-in role's self-contained output schema: its
// key in a Schemata's cache of inline schemas, and its compilation, done
// once.
type sharedSchema struct {
	key     string
	compile func() (*jsonschema.Schema, error)
}

// builtinCatalog parses the embedded role files once per process, for
// every LoadCatalog: the files are part of the binary, so each parse would
// give the same roles, and the roles (read-only, see Role) and their
// compiled schemas (safe for concurrent use) can be shared. An error is
// returned by every call.
var builtinCatalog = sync.OnceValues(loadBuiltin)

// PrepareBuiltin parses the embedded roles ahead of the first LoadCatalog
// (a service does it while its store opens). What it finds wrong,
// LoadCatalog reports.
func PrepareBuiltin() { _, _ = builtinCatalog() }

func loadBuiltin() (*builtinSet, error) {
	entries, err := fs.ReadDir(builtinRoles, "roles")
	if err != nil {
		return nil, fmt.Errorf("read built-in roles: %w", err)
	}
	b := &builtinSet{shared: map[*Role]sharedSchema{}}
	for _, e := range entries {
		data, err := builtinRoles.ReadFile("roles/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read built-in role %s: %w", e.Name(), err)
		}
		r, err := parseRoleFile(e.Name(), "builtin:"+e.Name(), data)
		if err != nil {
			return nil, err
		}
		r.Source = SourceBuiltin
		b.roles = append(b.roles, r)
		if !selfContained(r.OutputSchema) {
			continue
		}
		key, err := inlineKey(bytes.TrimSpace(r.OutputSchema))
		if err != nil {
			continue
		}
		raw := r.OutputSchema
		b.shared[r] = sharedSchema{key: key, compile: sync.OnceValues(func() (*jsonschema.Schema, error) {
			empty, err := LoadSchemata("")
			if err != nil {
				return nil, err
			}
			return empty.Compile(raw)
		})}
	}
	return b, nil
}

// selfContained reports whether raw is an inline schema object that names
// no other schema and no id of its own.
func selfContained(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	for _, kw := range []string{`"$ref"`, `"$dynamicRef"`, `"$recursiveRef"`, `"$id"`, `"$anchor"`, `"$dynamicAnchor"`} {
		if bytes.Contains(raw, []byte(kw)) {
			return false
		}
	}
	return true
}

var (
	roleFileRE = regexp.MustCompile(`^role\.([^@]+)@([^@]+)\.ya?ml$`)
	roleIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	versionRE  = regexp.MustCompile(`^v(0|[1-9][0-9]{0,8})$`)
)

// LoadCatalog returns the built-in roles overlaid with the role files of
// dirs, in order: a file role.NAME@vN.yaml replaces the role of the same id
// and version loaded before it, or adds one. A dir that does not exist is
// skipped; other files in a dir are ignored. Files are parsed strictly: a
// YAML error, an unknown or duplicate key, a missing id, version, purpose
// or system, a version that is not v<N>, or a file name that disagrees with
// the id and version inside fails the load with an error naming the file
// and, where there is one, the field (a *strictyaml.FieldError).
func LoadCatalog(dirs ...string) (*Catalog, error) {
	b, err := builtinCatalog()
	if err != nil {
		return nil, err
	}
	c := &Catalog{byID: map[string]map[string]*Role{}, shared: b.shared}
	for _, r := range b.roles {
		c.add(r)
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read prompts dir: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasPrefix(name, "role.") ||
				!(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			path := filepath.Join(dir, name)
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read role: %w", err)
			}
			r, err := parseRoleFile(name, path, data)
			if err != nil {
				return nil, err
			}
			r.Source = path
			c.add(r)
		}
	}
	return c, nil
}

func (c *Catalog) add(r *Role) {
	vs := c.byID[r.ID]
	if vs == nil {
		vs = map[string]*Role{}
		c.byID[r.ID] = vs
	}
	vs[r.Version] = r
}

// Resolve returns the role ref names. A ref is an id with an optional
// "role." prefix and an optional "@vN" (or "@N") version: "finder",
// "role.finder", "finder@v2", "role.finder@v2". Without a version it
// returns the highest-numbered version of the role. An unknown ref fails
// with an error wrapping ErrUnknownRole that lists what is known.
func (c *Catalog) Resolve(ref string) (*Role, error) {
	id, version, err := ParseRoleRef(ref)
	if err != nil {
		return nil, err
	}
	vs := c.byID[id]
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownRole, ref, strings.Join(c.ids(), ", "))
	}
	if version == "" {
		var best *Role
		for _, r := range vs {
			if best == nil || versionNumber(r.Version) > versionNumber(best.Version) {
				best = r
			}
		}
		return best, nil
	}
	r, ok := vs[version]
	if !ok {
		known := make([]string, 0, len(vs))
		for v := range vs {
			known = append(known, v)
		}
		sortVersions(known)
		return nil, fmt.Errorf("%w %q: role %s has versions %s", ErrUnknownRole, ref, id, strings.Join(known, ", "))
	}
	return r, nil
}

// Roles returns every role, sorted by id, then by version number.
func (c *Catalog) Roles() []*Role {
	var out []*Role
	for _, vs := range c.byID {
		for _, r := range vs {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return versionNumber(out[i].Version) < versionNumber(out[j].Version)
	})
	return out
}

// CheckSchemas compiles every role's output schema with s, so that a role
// naming a schema s does not have, or carrying an invalid one, is found at
// start-up rather than at the first ask. The error names the role's file.
// A built-in role's self-contained schema is not compiled here: it
// compiles whatever s holds (the package's tests compile every one), and
// s.Compile takes it, compiled once per process, from the built-in set.
func (c *Catalog) CheckSchemas(s *Schemata) error {
	for _, r := range c.Roles() {
		if len(r.OutputSchema) == 0 {
			continue
		}
		if sh, ok := c.shared[r]; ok {
			s.share(sh.key, sh.compile)
			continue
		}
		if _, err := s.Compile(r.OutputSchema); err != nil {
			return &strictyaml.FieldError{File: r.Source, Field: "output_schema", Msg: "does not compile: " + err.Error()}
		}
	}
	return nil
}

func (c *Catalog) ids() []string {
	ids := make([]string, 0, len(c.byID))
	for id := range c.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ParseRoleRef splits a role reference ("role.finder@v2", "finder",
// "finder@2") into its id and version ("" when it names none).
func ParseRoleRef(ref string) (id, version string, err error) {
	s := strings.TrimPrefix(strings.TrimSpace(ref), "role.")
	id, version, _ = strings.Cut(s, "@")
	if !roleIDRE.MatchString(id) {
		return "", "", fmt.Errorf("%w %q: not a role reference (want id, role.id, id@vN)", ErrUnknownRole, ref)
	}
	if version != "" {
		if _, err := strconv.Atoi(version); err == nil {
			version = "v" + version
		}
		if !versionRE.MatchString(version) {
			return "", "", fmt.Errorf("%w %q: version must be v<N>", ErrUnknownRole, ref)
		}
	}
	return id, version, nil
}

func versionNumber(v string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(v, "v"))
	return n
}

func sortVersions(vs []string) {
	sort.Slice(vs, func(i, j int) bool { return versionNumber(vs[i]) < versionNumber(vs[j]) })
}

var roleKeys = []string{
	"id", "version", "purpose", "system", "input_schema", "output_schema",
	"tool_whitelist", "limits", "guardrails", "examples",
}

// parseRoleFile parses the role file called name (its base name), shown
// as file in errors.
func parseRoleFile(name, file string, data []byte) (*Role, error) {
	m := roleFileRE.FindStringSubmatch(name)
	if m == nil {
		return nil, fmt.Errorf("%s: file name must be role.NAME@vN.yaml", file)
	}
	wantID, wantVersion := m[1], m[2]
	if !versionRE.MatchString(wantVersion) {
		return nil, fmt.Errorf("%s: file name must be role.NAME@vN.yaml: version %q is not v<N>", file, wantVersion)
	}
	r, err := parseRole(file, data)
	if err != nil {
		return nil, err
	}
	if r.ID != wantID {
		return nil, &strictyaml.FieldError{File: file, Field: "id", Msg: fmt.Sprintf("is %q, but the file name says %q", r.ID, wantID)}
	}
	if r.Version != wantVersion {
		return nil, &strictyaml.FieldError{File: file, Field: "version", Msg: fmt.Sprintf("is %q, but the file name says %q", r.Version, wantVersion)}
	}
	return r, nil
}

// parseRole parses a role's YAML. It accepts the seed's spellings too: an
// id with a "role." prefix, an integer version, and schemas given as JSON
// text in a YAML string.
func parseRole(file string, data []byte) (*Role, error) {
	root, err := strictyaml.Root(file, data)
	if err != nil {
		return nil, err
	}
	fields, err := strictyaml.Fields(file, "", "", root, roleKeys)
	if err != nil {
		return nil, err
	}
	fe := func(field, format string, a ...any) error {
		return &strictyaml.FieldError{File: file, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	r := &Role{}
	for _, k := range []string{"id", "version", "purpose", "system"} {
		n, ok := fields[k]
		if !ok || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil, fe(k, "is required")
		}
		if n.Kind != yaml.ScalarNode {
			return nil, fe(k, "must be a string")
		}
		v := strings.TrimSpace(n.Value)
		if v == "" {
			return nil, fe(k, "is required")
		}
		switch k {
		case "id":
			v = strings.TrimPrefix(v, "role.")
			if !roleIDRE.MatchString(v) {
				return nil, fe(k, "is %q: use letters, digits, '_' and '-'", n.Value)
			}
			r.ID = v
		case "version":
			if n.Tag == "!!int" {
				v = "v" + v
			}
			if !versionRE.MatchString(v) {
				return nil, fe(k, "is %q: must be v<N>, such as v1", n.Value)
			}
			r.Version = v
		case "purpose":
			r.Purpose = v
		case "system":
			r.System = strings.TrimRight(n.Value, " \t\r\n")
		}
	}
	if n, ok := fields["input_schema"]; ok {
		if r.InputSchema, err = yamlSchema(n); err != nil {
			return nil, fe("input_schema", "%v", err)
		}
	}
	if n, ok := fields["output_schema"]; ok {
		if r.OutputSchema, err = yamlSchema(n); err != nil {
			return nil, fe("output_schema", "%v", err)
		}
	}
	if n, ok := fields["tool_whitelist"]; ok {
		if r.ToolWhitelist, err = strictyaml.Strings(n); err != nil {
			return nil, fe("tool_whitelist", "%v", err)
		}
	}
	if n, ok := fields["guardrails"]; ok {
		if r.Guardrails, err = strictyaml.Strings(n); err != nil {
			return nil, fe("guardrails", "%v", err)
		}
	}
	if n, ok := fields["limits"]; ok && !strictyaml.IsNull(n) {
		lf, err := strictyaml.Fields(file, "", "limits.", n, []string{"max_tokens", "max_tool_calls"})
		if err != nil {
			return nil, err
		}
		for _, l := range []struct {
			key string
			dst *int
		}{{"max_tokens", &r.Limits.MaxTokens}, {"max_tool_calls", &r.Limits.MaxToolCalls}} {
			k, dst := l.key, l.dst
			ln, ok := lf[k]
			if !ok {
				continue
			}
			if err := ln.Decode(dst); err != nil || *dst < 0 {
				return nil, fe("limits."+k, "must be a non-negative integer, not %q", ln.Value)
			}
		}
	}
	if n, ok := fields["examples"]; ok && !strictyaml.IsNull(n) {
		if n.Kind != yaml.SequenceNode {
			return nil, fe("examples", "must be a list of {input, output}")
		}
		for i, en := range n.Content {
			prefix := fmt.Sprintf("examples[%d].", i)
			ef, err := strictyaml.Fields(file, "", prefix, en, []string{"input", "output"})
			if err != nil {
				return nil, err
			}
			var ex Example
			if in, ok := ef["input"]; ok {
				if ex.Input, err = yamlJSON(in); err != nil {
					return nil, fe(prefix+"input", "%v", err)
				}
			}
			out, ok := ef["output"]
			if !ok {
				return nil, fe(prefix+"output", "is required")
			}
			if ex.Output, err = yamlJSON(out); err != nil {
				return nil, fe(prefix+"output", "%v", err)
			}
			r.Examples = append(r.Examples, ex)
		}
	}
	return r, nil
}

// yamlSchema converts a schema field: a mapping (or boolean) is the schema
// itself; a string holding JSON text is parsed as the schema (the seed's
// style); any other string names a schema of the Schemata; null is none.
func yamlSchema(n *yaml.Node) (json.RawMessage, error) {
	if strictyaml.IsNull(n) {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		s := strings.TrimSpace(n.Value)
		if s == "" {
			return nil, nil
		}
		if strings.HasPrefix(s, "{") {
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, fmt.Errorf("holds invalid JSON: %w", err)
			}
			return compactJSON([]byte(s))
		}
		return json.Marshal(s)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		return yamlJSON(n)
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("must be a JSON Schema mapping or the name of a schema (line %d)", n.Line)
	}
	return yamlJSON(n)
}

// yamlJSON converts a YAML value to JSON, with map keys sorted.
func yamlJSON(n *yaml.Node) (json.RawMessage, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	v, err := jsonValue(v)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", n.Line, err)
	}
	return json.Marshal(v)
}

// jsonValue turns a decoded YAML value into one encoding/json can write:
// maps must have string keys, numbers must be finite.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("key %v is not a string", k)
			}
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []any:
		for i, e := range x {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%v is not a JSON number", x)
		}
	}
	return v, nil
}

func compactJSON(raw []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
