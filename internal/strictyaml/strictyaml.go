// Package strictyaml is the one strict YAML reader of the relay's own
// files (config.yaml and service.yaml, role files, policy.yaml): exactly
// one document, keys that are strings and are not given twice, merge keys
// ("<<") expanded, and only the keys a file may hold. It works on
// yaml.Node trees, so every error can name the line, and each caller turns
// the nodes into its own types.
package strictyaml

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrMultipleDocuments is wrapped by the *SyntaxError of a file that holds
// more than one YAML document.
var ErrMultipleDocuments = errors.New("only one YAML document is allowed")

// SyntaxError is YAML that does not parse, or holds more than one
// document.
type SyntaxError struct {
	// Line is the 1-based line of the problem, or 0 when unknown.
	Line int
	// Msg is the parser's message, without its "yaml: line N:" prefix.
	Msg string
	// Err is ErrMultipleDocuments for a second document, else nil.
	Err error
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap returns Err.
func (e *SyntaxError) Unwrap() error { return e.Err }

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(err error) *SyntaxError {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SyntaxError{Line: line, Msg: m[2]}
	}
	return &SyntaxError{Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// Document parses data as exactly one YAML document and returns its root
// node, or nil for an empty document. The error is a *SyntaxError.
func Document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(err)
		}
		return nil, &SyntaxError{Line: extra.Line, Msg: ErrMultipleDocuments.Error(), Err: ErrMultipleDocuments}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	return root, nil
}

// Pair is one key and its value in a mapping.
type Pair struct {
	Key, Value *yaml.Node
}

// KeyError is a bad key of a mapping.
type KeyError struct {
	// Node is the key (or the merge value) at fault, for its line.
	Node *yaml.Node
	// Key is the key's name when it has one ("" for a key that is not a
	// string and for a bad merge).
	Key string
	// Msg says what is wrong.
	Msg string
	// Duplicate is set for a key given twice.
	Duplicate bool
}

func (e *KeyError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("line %d: %s", e.Node.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: key %q: %s", e.Node.Line, e.Key, e.Msg)
}

// Pairs returns the key/value pairs of mapping n in order, with aliases
// resolved and merge keys ("<<") expanded: explicit keys win over merged
// ones, and earlier merge sources over later ones. Keys that are not
// strings and explicit keys given twice are reported, and left out.
func Pairs(n *yaml.Node) ([]Pair, []*KeyError) {
	n = Resolve(n)
	var merged, out []Pair
	var errs []*KeyError
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			m, e := mergePairs(v)
			merged, errs = append(merged, m...), append(errs, e...)
			continue
		}
		if k.Kind != yaml.ScalarNode || IsNull(k) {
			errs = append(errs, &KeyError{Node: k, Msg: "keys must be strings, got " + Describe(k)})
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			errs = append(errs, &KeyError{Node: k, Key: k.Value, Msg: fmt.Sprintf("duplicate key (first set on line %d)", prev.Line), Duplicate: true})
			continue
		}
		seen[k.Value] = k
		out = append(out, Pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.Key.Value]; !ok {
			seen[p.Key.Value] = p.Key
			out = append(out, p)
		}
	}
	return out, errs
}

func mergePairs(v *yaml.Node) ([]Pair, []*KeyError) {
	v = Resolve(v)
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, s := range v.Content {
			srcs = append(srcs, Resolve(s))
		}
	}
	if len(srcs) == 0 {
		return nil, []*KeyError{{Node: v, Msg: "merge key << must refer to a mapping, got " + Describe(v)}}
	}
	var (
		out  []Pair
		errs []*KeyError
	)
	for _, s := range srcs {
		if s.Kind != yaml.MappingNode {
			errs = append(errs, &KeyError{Node: s, Msg: "merge key << must refer to a mapping, got " + Describe(s)})
			continue
		}
		p, e := Pairs(s)
		out, errs = append(out, p...), append(errs, e...)
	}
	return out, errs
}

// FieldError reports a bad field of a file read with Fields, naming both.
type FieldError struct {
	// File is the path of the file, or "builtin:NAME" for an embedded one.
	File string
	// Where locates the field's parent when the file has several ("rules[2] (no-prod-writes)").
	Where string
	// Field is the dotted path of the field ("limits.max_tokens").
	Field string
	// Msg says what is wrong ("is required").
	Msg string
}

func (e *FieldError) Error() string {
	where := ""
	if e.Where != "" {
		where = e.Where + ": "
	}
	return fmt.Sprintf("%s: %sfield %q %s", e.File, where, e.Field, e.Msg)
}

// Root parses data as one YAML document whose root is a mapping (an empty
// document is an empty mapping); file names it in errors.
func Root(file string, data []byte) (*yaml.Node, error) {
	root, err := Document(data)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %w", file, err)
	}
	if root == nil {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	if root = Resolve(root); root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: line %d: the document must be a mapping of fields", file, root.Line)
	}
	return root, nil
}

// Fields returns the values of mapping n by key, failing with a
// *FieldError on a key not in known, one given twice or one that is not a
// string. prefix is the dotted path of n ("limits."), where locates it
// (see FieldError.Where).
func Fields(file, where, prefix string, n *yaml.Node, known []string) (map[string]*yaml.Node, error) {
	n = Resolve(n)
	if n.Kind != yaml.MappingNode {
		name := strings.TrimSuffix(prefix, ".")
		if name == "" {
			name = "(document)"
		}
		return nil, &FieldError{File: file, Where: where, Field: name, Msg: fmt.Sprintf("must be a mapping (line %d)", n.Line)}
	}
	pairs, errs := Pairs(n)
	if len(errs) > 0 {
		e := errs[0]
		switch {
		case e.Duplicate:
			return nil, &FieldError{File: file, Where: where, Field: prefix + e.Key, Msg: fmt.Sprintf("is given twice (line %d)", e.Node.Line)}
		case strings.HasPrefix(e.Msg, "merge key"):
			return nil, &FieldError{File: file, Where: where, Field: prefix + "<<", Msg: fmt.Sprintf("%s (line %d)", strings.TrimPrefix(e.Msg, "merge key << "), e.Node.Line)}
		}
		return nil, &FieldError{File: file, Where: where, Field: prefix + "?", Msg: fmt.Sprintf("has a key that is not a string (line %d)", e.Node.Line)}
	}
	out := make(map[string]*yaml.Node, len(pairs))
	for _, p := range pairs {
		if !slices.Contains(known, p.Key.Value) {
			return nil, &FieldError{File: file, Where: where, Field: prefix + p.Key.Value,
				Msg: fmt.Sprintf("is unknown (line %d); known fields: %s", p.Key.Line, strings.Join(known, ", "))}
		}
		out[p.Key.Value] = p.Value
	}
	return out, nil
}

// Strings decodes a list of non-empty strings, trimmed; null is an empty
// list.
func Strings(n *yaml.Node) ([]string, error) {
	n = Resolve(n)
	if IsNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("must be a list of strings (line %d)", n.Line)
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		e = Resolve(e)
		if e.Kind != yaml.ScalarNode || IsNull(e) || strings.TrimSpace(e.Value) == "" {
			return nil, fmt.Errorf("item %d must be a non-empty string (line %d)", i, e.Line)
		}
		out = append(out, strings.TrimSpace(e.Value))
	}
	return out, nil
}

// Resolve follows aliases to the node they stand for.
func Resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is null (~, null, or nothing).
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe renders a node for "got ..." in messages without naming Go
// types: "a mapping", "a list", "null" or the quoted scalar.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if IsNull(n) {
		return "null"
	}
	return strconv.Quote(n.Value)
}
