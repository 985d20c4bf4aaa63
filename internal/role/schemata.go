package role

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// schemataBase is the base URL the schemata are known by to the compiler,
// so that "$ref": "artifacts/test_plan.json" resolves between files. The
// .invalid domain is never fetched: the compiler loads nothing from
// outside the set.
const schemataBase = "https://schemata.mcp-task-relay.invalid/"

// maxInlineSchemas bounds the cache of compiled inline schemas (role
// schemas and per-ask output_schema overrides).
const maxInlineSchemas = 256

// Schemata is the set of named JSON Schemas of the config dir's schemata/
// folder, and the compiler for every output schema the Answer Runner
// validates against. It is safe for concurrent use.
type Schemata struct {
	dir   string
	names []string
	docs  map[string]any    // resource URL → parsed document
	urls  map[string]string // name → resource URL
	files map[string]string // resource URL → file path, for errors
	texts map[string][]byte // name → compact file contents

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	named    map[string]*jsonschema.Schema // name → compiled
	inline   map[string]*jsonschema.Schema // sha256 of canonical JSON → compiled
	order    []string                      // inline keys, oldest first
	// shared compiles the inline schemas compiled once for every set
	// (the built-in roles'), by key; see share.
	shared map[string]func() (*jsonschema.Schema, error)
}

// SchemaError is the error of Schemata.Validate: every way a document
// fails its schema. Its message lists one violation a line, each with the
// JSON pointer of the offending value, so that it can be sent back to a
// model as is.
type SchemaError struct {
	Violations []Violation
}

// Violation is one way a document fails its schema.
type Violation struct {
	// Pointer is the RFC 6901 JSON pointer of the value ("" for the whole
	// document).
	Pointer string
	Message string
}

func (e *SchemaError) Error() string {
	var b strings.Builder
	b.WriteString("the JSON does not match the output schema:")
	for _, v := range e.Violations {
		p := v.Pointer
		if p == "" {
			p = "(root)"
		}
		fmt.Fprintf(&b, "\n- %s: %s", p, v.Message)
	}
	return b.String()
}

// LoadSchemata reads every *.json file under dir, recursively, as a JSON
// Schema named by its path relative to dir without ".json"
// ("artifacts/diff_plan"). A dir that does not exist gives an empty set.
// A file that is not JSON or not a valid schema (including a $ref that
// resolves to nothing) fails the load with an error naming the file.
func LoadSchemata(dir string) (*Schemata, error) {
	s := &Schemata{
		dir:   dir,
		docs:  map[string]any{},
		urls:  map[string]string{},
		files: map[string]string{},
		texts: map[string][]byte{},
	}
	if dir != "" {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(d.Name(), ".json") {
				return nil
			}
			return s.addFile(dir, p)
		})
		if err != nil && !(errors.Is(err, fs.ErrNotExist) && isMissing(dir)) {
			return nil, err
		}
	}
	sort.Strings(s.names)
	s.reset()
	for _, name := range s.names {
		if _, err := s.compileNamed(name); err != nil {
			return nil, fmt.Errorf("%s: invalid schema: %w", s.files[s.urls[name]], err)
		}
	}
	return s, nil
}

func isMissing(dir string) bool {
	_, err := os.Stat(dir)
	return errors.Is(err, fs.ErrNotExist)
}

func (s *Schemata) addFile(dir, p string) error {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", p, err)
	}
	text, err := compactJSON(data)
	if err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", p, err)
	}
	u := schemataBase + escapePath(rel)
	name := strings.TrimSuffix(rel, ".json")
	s.texts[name] = text
	s.names = append(s.names, name)
	s.urls[name] = u
	s.docs[u] = doc
	s.files[u] = p
	// A schema with an absolute $id is known by it too, so that refs
	// written against the $id resolve.
	if obj, ok := doc.(map[string]any); ok {
		if id, ok := obj["$id"].(string); ok {
			if pu, err := url.Parse(id); err == nil && pu.IsAbs() {
				pu.Fragment = ""
				if other, dup := s.files[pu.String()]; dup && pu.String() != u {
					return fmt.Errorf("%s: $id %q is also the $id of %s", p, id, other)
				}
				if pu.String() != u {
					s.docs[pu.String()] = doc
					s.files[pu.String()] = p
				}
			}
		}
	}
	return nil
}

func escapePath(rel string) string {
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// newCompiler returns a compiler that knows the set's documents and loads
// nothing else: a $ref to a file or a web address fails instead of
// reading it.
func (s *Schemata) newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(closedLoader{})
	for u, doc := range s.docs {
		// The URLs are unique and not metaschemas, so this cannot fail.
		_ = c.AddResource(u, doc)
	}
	return c
}

// reset replaces the shared compiler; call with mu held or before use.
func (s *Schemata) reset() {
	s.compiler = s.newCompiler()
	s.named = map[string]*jsonschema.Schema{}
	s.inline = map[string]*jsonschema.Schema{}
	s.order = nil
}

type closedLoader struct{}

func (closedLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("%s is not in the schemata set; only schemata files can be referenced", u)
}

// Names returns the names of the set's schemata, sorted.
func (s *Schemata) Names() []string {
	return append([]string(nil), s.names...)
}

// Resolve returns the schema raw stands for as a JSON document: raw
// itself, compacted, when it is a schema, or the named file's contents
// when it is a name (as Compile accepts them). Prompts show the model
// this document.
func (s *Schemata) Resolve(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, errors.New("no schema given")
	}
	if raw[0] == '"' {
		var ref string
		if err := json.Unmarshal(raw, &ref); err != nil {
			return nil, fmt.Errorf("schema name: %w", err)
		}
		name, err := s.lookup(ref)
		if err != nil {
			return nil, err
		}
		return append(json.RawMessage(nil), s.texts[name]...), nil
	}
	c, err := compactJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	return c, nil
}

// Compile returns the compiled form of raw: a JSON Schema (an object or a
// boolean), or a JSON string naming a schema of the set. A name may be
// given as "diff_plan", "artifacts/diff_plan", "schemata/diff_plan" or
// "diff_plan.json"; a name without a folder also finds a schema in a
// sub-folder when only one has that name, and ".schema" before ".json" may
// be left out. An inline schema may $ref the set's files by relative path
// ("artifacts/diff_plan.json").
func (s *Schemata) Compile(raw json.RawMessage) (*jsonschema.Schema, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, errors.New("no schema given")
	}
	if raw[0] == '"' {
		var ref string
		if err := json.Unmarshal(raw, &ref); err != nil {
			return nil, fmt.Errorf("schema name: %w", err)
		}
		name, err := s.lookup(ref)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.compileNamed(name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, errors.New("a schema must be a JSON object, a boolean or the name of a schema")
	}
	key, err := inlineKey(raw)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	if sch, ok := s.inline[key]; ok {
		s.mu.Unlock()
		return sch, nil
	}
	shared := s.shared[key]
	s.mu.Unlock()
	if shared != nil {
		if sch, err := shared(); err == nil {
			return s.cache(key, sch), nil
		}
	}

	// A fresh compiler per inline schema, so that schemas sent with asks
	// do not pile up in the shared one.
	c := s.newCompiler()
	u := schemataBase + "inline-" + key + ".json"
	if err := c.AddResource(u, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(u)
	if err != nil {
		return nil, fmt.Errorf("invalid schema: %w", err)
	}
	return s.cache(key, sch), nil
}

// inlineKey is the cache key of the inline schema raw: the SHA-256 of its
// canonical JSON.
func inlineKey(raw json.RawMessage) (string, error) {
	canon, err := canonicalOrCompact(raw)
	if err != nil {
		return "", fmt.Errorf("schema is not valid JSON: %w", err)
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// cache records sch as the compiled inline schema of key, unless one is
// there already, and returns the one recorded.
func (s *Schemata) cache(key string, sch *jsonschema.Schema) *jsonschema.Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inline[key]; !ok {
		if len(s.order) >= maxInlineSchemas {
			delete(s.inline, s.order[0])
			s.order = s.order[1:]
		}
		s.inline[key] = sch
		s.order = append(s.order, key)
	}
	return s.inline[key]
}

// share makes compile the source of the compiled inline schema of key:
// Compile calls it, rather than compiling the schema itself, the first
// time it is asked for that schema. compile must return what this set
// would compile (see selfContained); when it fails, Compile compiles the
// schema itself and reports its own error.
func (s *Schemata) share(key string, compile func() (*jsonschema.Schema, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared == nil {
		s.shared = map[string]func() (*jsonschema.Schema, error){}
	}
	s.shared[key] = compile
}

// compileNamed compiles a schema of the set; call with mu held (or before
// the set is shared).
func (s *Schemata) compileNamed(name string) (*jsonschema.Schema, error) {
	if sch, ok := s.named[name]; ok {
		return sch, nil
	}
	sch, err := s.compiler.Compile(s.urls[name])
	if err != nil {
		return nil, err
	}
	s.named[name] = sch
	return sch, nil
}

// lookup finds the name of the schema ref refers to.
func (s *Schemata) lookup(ref string) (string, error) {
	q := strings.TrimSpace(ref)
	q = strings.TrimPrefix(q, "./")
	q = strings.TrimPrefix(q, "schemata/")
	q = strings.TrimSuffix(q, ".json")
	if q == "" {
		return "", errors.New("empty schema name")
	}
	if _, ok := s.urls[q]; ok {
		return q, nil
	}
	if _, ok := s.urls[q+".schema"]; ok {
		return q + ".schema", nil
	}
	var found []string
	if !strings.Contains(q, "/") {
		for _, n := range s.names {
			if b := path.Base(n); b == q || b == q+".schema" {
				found = append(found, n)
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		known := "none"
		if len(s.names) > 0 {
			known = strings.Join(s.names, ", ")
		}
		return "", fmt.Errorf("unknown schema %q (known: %s)", ref, known)
	}
	return "", fmt.Errorf("schema name %q is ambiguous: %s", ref, strings.Join(found, ", "))
}

// Validate checks the JSON document doc against schema. It returns a
// *SchemaError listing every violation, or an error saying doc is not
// JSON.
func (s *Schemata) Validate(schema *jsonschema.Schema, doc json.RawMessage) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("the answer is not valid JSON: %w", err)
	}
	err = schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	se := &SchemaError{}
	seen := map[Violation]bool{}
	collectViolations(ve, se, seen)
	if len(se.Violations) == 0 {
		se.Violations = append(se.Violations, Violation{Message: ve.Error()})
	}
	return se
}

// collectViolations appends the leaves of the error tree e, which are the
// actual violations; the inner nodes only group them.
func collectViolations(e *jsonschema.ValidationError, se *SchemaError, seen map[Violation]bool) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collectViolations(c, se, seen)
		}
		return
	}
	// The library formats a leaf as "at '<pointer>': <message>"; render
	// the message alone and take the pointer from InstanceLocation.
	bare := &jsonschema.ValidationError{SchemaURL: e.SchemaURL, ErrorKind: e.ErrorKind}
	msg := bare.Error()
	if _, after, ok := strings.Cut(msg, ": "); ok {
		msg = after
	}
	v := Violation{Pointer: jsonPointer(e.InstanceLocation), Message: msg}
	if !seen[v] {
		seen[v] = true
		se.Violations = append(se.Violations, v)
	}
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// canonicalOrCompact returns the RFC 8785 form of raw, or its compact form
// when it has numbers JCS cannot represent.
func canonicalOrCompact(raw []byte) ([]byte, error) {
	if c, err := relaytype.CanonicalJSON(raw); err == nil {
		return c, nil
	}
	return compactJSON(raw)
}
