package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mcp-task-relay/mcp-task-relay/internal/strictyaml"
)

// executorsDefaultKey is the key of the executors mapping that names the
// default executor instead of defining one.
const executorsDefaultKey = "default"

// Parse decodes a config.yaml document strictly: unknown keys, duplicate
// keys and values of the wrong type are errors naming the key path and
// name:LINE, where name is how the file is called in messages. The result
// holds only what the document sets: no defaults, and relative paths are
// left as written (Load resolves them against the config dir).
func Parse(data []byte, name string) (*Config, error) {
	d := &decoder{file: name, origins: map[string]string{}}
	cfg := &Config{}
	root, err := strictyaml.Document(data)
	if err != nil {
		return nil, d.syntaxError(err)
	}
	if root == nil {
		cfg.origins = d.origins
		return cfg, nil
	}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	if err := errors.Join(d.errs...); err != nil {
		return nil, err
	}
	cfg.origins = d.origins
	return cfg, nil
}

// UnmarshalYAML decodes the executors mapping with the same strict rules as
// Parse, so that Executors also works with yaml.Unmarshal.
func (e *Executors) UnmarshalYAML(n *yaml.Node) error {
	d := &decoder{origins: map[string]string{}}
	d.decodeExecutors(n, e, "executors")
	return errors.Join(d.errs...)
}

// decoder walks a yaml.Node tree against a Go struct by its yaml tags,
// collecting every error rather than stopping at the first.
type decoder struct {
	file    string
	origins map[string]string
	errs    []error
}

// syntaxError turns an error of strictyaml.Document into an *Error.
func (d *decoder) syntaxError(err error) error {
	var se *strictyaml.SyntaxError
	if !errors.As(err, &se) {
		se = &strictyaml.SyntaxError{Msg: err.Error()}
	}
	src := d.file
	if se.Line > 0 {
		src = d.pos(&yaml.Node{Line: se.Line})
	}
	if src == "" {
		src = "config"
	}
	if errors.Is(err, strictyaml.ErrMultipleDocuments) {
		return &Error{Source: src, Msg: se.Msg, Err: ErrInvalid}
	}
	return &Error{Source: src, Msg: "invalid YAML: " + se.Msg, Err: ErrInvalid}
}

func (d *decoder) pos(n *yaml.Node) string {
	if d.file == "" {
		return "line " + strconv.Itoa(n.Line)
	}
	return d.file + ":" + strconv.Itoa(n.Line)
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Source: d.pos(n), Path: path, Msg: fmt.Sprintf(format, args...), Err: ErrInvalid})
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = strictyaml.Resolve(n)
	if path != "" {
		d.origins[path] = d.pos(n)
	}
	if strictyaml.IsNull(n) {
		return // zero means default
	}
	if e, ok := v.Addr().Interface().(*Executors); ok {
		d.decodeExecutors(n, e, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "must be a string, got %s", strictyaml.Describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "must be an integer, got %s", strictyaml.Describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "must be true or false, got %s", strictyaml.Describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		before := len(d.errs)
		d.decode(n, p.Elem(), path)
		if len(d.errs) == before {
			v.Set(p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "must be a list, got %s", strictyaml.Describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			item = strictyaml.Resolve(item)
			if strictyaml.IsNull(item) || item.Kind != yaml.ScalarNode {
				d.fail(item, fmt.Sprintf("%s[%d]", path, i), "must be a string, got %s", strictyaml.Describe(item))
				continue
			}
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping, got %s", strictyaml.Describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for _, p := range d.pairs(n, path) {
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(p.Value, ev, join(path, p.Key.Value))
			m.SetMapIndex(reflect.ValueOf(p.Key.Value), ev)
		}
		v.Set(m)
	default:
		// A schema field of a kind the decoder does not know is a bug here,
		// not a user error.
		panic(fmt.Sprintf("config: cannot decode %s into %s", path, v.Type()))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping, got %s", strictyaml.Describe(n))
		return
	}
	fields := yamlFields(v.Type())
	for _, p := range d.pairs(n, path) {
		key := p.Key.Value
		i, ok := fields[key]
		if !ok {
			d.errs = append(d.errs, &Error{
				Source: d.pos(p.Key),
				Path:   join(path, key),
				Msg:    suggest(path, key, fields),
				Err:    ErrUnknownKey,
			})
			continue
		}
		d.decode(p.Value, v.Field(i), join(path, key))
	}
}

func (d *decoder) decodeExecutors(n *yaml.Node, e *Executors, path string) {
	n = strictyaml.Resolve(n)
	if strictyaml.IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of executor names to executors, got %s", strictyaml.Describe(n))
		return
	}
	for _, p := range d.pairs(n, path) {
		name := p.Key.Value
		sub := join(path, name)
		if name == executorsDefaultKey {
			val := strictyaml.Resolve(p.Value)
			d.origins[sub] = d.pos(val)
			switch {
			case strictyaml.IsNull(val):
			case val.Kind == yaml.ScalarNode:
				e.Default = val.Value
			default:
				d.fail(val, sub, "must be the name of an executor, got %s", strictyaml.Describe(val))
			}
			continue
		}
		var ex Executor
		d.decode(p.Value, reflect.ValueOf(&ex).Elem(), sub)
		if e.ByName == nil {
			e.ByName = map[string]Executor{}
		}
		e.ByName[name] = ex
	}
}

// pairs returns the key/value pairs of a mapping with merge keys ("<<")
// expanded (strictyaml.Pairs), recording its bad keys as errors.
func (d *decoder) pairs(n *yaml.Node, path string) []strictyaml.Pair {
	pairs, errs := strictyaml.Pairs(n)
	for _, e := range errs {
		at := path
		if e.Duplicate {
			at = join(path, e.Key)
		}
		d.fail(e.Node, at, "%s", e.Msg)
	}
	return pairs
}

// yamlFields maps the yaml tag names of t's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		fields[name] = i
	}
	return fields
}

// suggest names the known key closest to an unknown one, if any is close.
func suggest(path, key string, fields map[string]int) string {
	best, bestDist := "", len(key)/3+1
	for name := range fields {
		dist := editDistance(strings.ToLower(key), strings.ToLower(name))
		if dist < bestDist || (dist == bestDist && best != "" && name < best) {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", join(path, best))
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes cost 1, so
// "agrv" is one edit from "argv".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
