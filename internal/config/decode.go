package config

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
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
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		cfg.origins = d.origins
		return cfg, nil
	case err != nil:
		return nil, d.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, d.syntaxError(err)
		}
		return nil, &Error{Source: d.pos(&extra), Msg: "only one YAML document is allowed", Err: ErrInvalid}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
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

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntaxError(err error) error {
	msg := err.Error()
	src := d.file
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		src = d.file + ":" + m[1]
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if src == "" {
		src = "config"
	}
	return &Error{Source: src, Msg: "invalid YAML: " + msg, Err: ErrInvalid}
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
	n = resolveAlias(n)
	if path != "" {
		d.origins[path] = d.pos(n)
	}
	if isNull(n) {
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
			d.fail(n, path, "must be a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "must be an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "must be true or false, got %s", describe(n))
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
			d.fail(n, path, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			item = resolveAlias(item)
			if isNull(item) || item.Kind != yaml.ScalarNode {
				d.fail(item, fmt.Sprintf("%s[%d]", path, i), "must be a string, got %s", describe(item))
				continue
			}
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for _, p := range d.pairs(n, path) {
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(p.val, ev, join(path, p.key.Value))
			m.SetMapIndex(reflect.ValueOf(p.key.Value), ev)
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
		d.fail(n, path, "must be a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		i, ok := fields[key]
		if !ok {
			d.errs = append(d.errs, &Error{
				Source: d.pos(p.key),
				Path:   join(path, key),
				Msg:    suggest(path, key, fields),
				Err:    ErrUnknownKey,
			})
			continue
		}
		d.decode(p.val, v.Field(i), join(path, key))
	}
}

func (d *decoder) decodeExecutors(n *yaml.Node, e *Executors, path string) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of executor names to executors, got %s", describe(n))
		return
	}
	for _, p := range d.pairs(n, path) {
		name := p.key.Value
		sub := join(path, name)
		if name == executorsDefaultKey {
			val := resolveAlias(p.val)
			d.origins[sub] = d.pos(val)
			switch {
			case isNull(val):
			case val.Kind == yaml.ScalarNode:
				e.Default = val.Value
			default:
				d.fail(val, sub, "must be the name of an executor, got %s", describe(val))
			}
			continue
		}
		var ex Executor
		d.decode(p.val, reflect.ValueOf(&ex).Elem(), sub)
		if e.ByName == nil {
			e.ByName = map[string]Executor{}
		}
		e.ByName[name] = ex
	}
}

type pair struct{ key, val *yaml.Node }

// pairs returns the key/value pairs of a mapping with merge keys ("<<")
// expanded: explicit keys win over merged ones, and an explicit key that
// appears twice is an error.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var merged, out []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "keys must be strings, got %s", describe(k))
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			d.fail(k, join(path, k.Value), "duplicate key (first set on line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key
			out = append(out, p)
		}
	}
	return out
}

func (d *decoder) mergePairs(v *yaml.Node, path string) []pair {
	v = resolveAlias(v)
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, s := range v.Content {
			srcs = append(srcs, resolveAlias(s))
		}
	}
	var out []pair
	for _, s := range srcs {
		if s.Kind != yaml.MappingNode {
			d.fail(s, path, "merge key << must refer to a mapping, got %s", describe(s))
			continue
		}
		// Earlier sources win, as in YAML merge semantics.
		out = append(out, d.pairs(s, path)...)
	}
	if len(srcs) == 0 {
		d.fail(v, path, "merge key << must refer to a mapping, got %s", describe(v))
	}
	return out
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

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe renders a node for "got ..." in messages without naming Go types.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if isNull(n) {
		return "null"
	}
	return strconv.Quote(n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
