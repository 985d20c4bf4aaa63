package strictyaml_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/strictyaml"
)

func TestDocument(t *testing.T) {
	t.Parallel()
	root, err := strictyaml.Document([]byte(""))
	require.NoError(t, err)
	require.Nil(t, root, "an empty document has no root")

	root, err = strictyaml.Document([]byte("a: 1\n"))
	require.NoError(t, err)
	require.Equal(t, "a", root.Content[0].Value)

	_, err = strictyaml.Document([]byte("a: 1\n---\nb: 2\n"))
	var se *strictyaml.SyntaxError
	require.True(t, errors.As(err, &se))
	require.ErrorIs(t, err, strictyaml.ErrMultipleDocuments)
	require.Equal(t, 2, se.Line)

	_, err = strictyaml.Document([]byte("a: b\nc: d: e\n"))
	require.True(t, errors.As(err, &se))
	require.Equal(t, 2, se.Line)
	require.Equal(t, "line 2: mapping values are not allowed in this context", err.Error())
}

func TestPairs(t *testing.T) {
	t.Parallel()
	root, err := strictyaml.Document([]byte(`base: &base {x: 1, y: 2}
m:
  <<: *base
  y: 3
  z: 4
  z: 5
  [1]: list key
`))
	require.NoError(t, err)
	pairs, errs := strictyaml.Pairs(root.Content[3])
	got := map[string]string{}
	for _, p := range pairs {
		got[p.Key.Value] = p.Value.Value
	}
	require.Equal(t, map[string]string{"x": "1", "y": "3", "z": "4"}, got, "explicit keys win over merged ones; the first of a duplicate stays")
	require.Len(t, errs, 2)
	require.True(t, errs[0].Duplicate)
	require.Equal(t, "z", errs[0].Key)
	require.Equal(t, "duplicate key (first set on line 5)", errs[0].Msg)
	require.Equal(t, "keys must be strings, got a list", errs[1].Msg)

	root, err = strictyaml.Document([]byte("<<: 3\n"))
	require.NoError(t, err)
	_, errs = strictyaml.Pairs(root)
	require.Len(t, errs, 1)
	require.Equal(t, `merge key << must refer to a mapping, got "3"`, errs[0].Msg)
}

func TestFields(t *testing.T) {
	t.Parallel()
	known := []string{"id", "limits"}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown", "id: a\nname: b\n", `f.yaml: field "name" is unknown (line 2); known fields: id, limits`},
		{"twice", "id: a\nid: b\n", `f.yaml: field "id" is given twice (line 2)`},
		{"not a mapping", "- a\n", `f.yaml: line 1: the document must be a mapping of fields`},
		{"bad yaml", "id: [a\n", `f.yaml: invalid YAML: line 1: did not find expected ',' or ']'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, err := strictyaml.Root("f.yaml", []byte(tc.doc))
			if err == nil {
				_, err = strictyaml.Fields("f.yaml", "", "", root, known)
			}
			require.EqualError(t, err, tc.want)
		})
	}

	root, err := strictyaml.Root("f.yaml", []byte("id: a\nlimits: {max: 1}\n"))
	require.NoError(t, err)
	f, err := strictyaml.Fields("f.yaml", "", "", root, known)
	require.NoError(t, err)
	_, err = strictyaml.Fields("f.yaml", "rules[0] (r)", "limits.", f["limits"], []string{"min"})
	var fe *strictyaml.FieldError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, "limits.max", fe.Field)
	require.Equal(t, `f.yaml: rules[0] (r): field "limits.max" is unknown (line 2); known fields: min`, err.Error())

	empty, err := strictyaml.Root("f.yaml", nil)
	require.NoError(t, err)
	f, err = strictyaml.Fields("f.yaml", "", "", empty, known)
	require.NoError(t, err)
	require.Empty(t, f)
}

func TestStrings(t *testing.T) {
	t.Parallel()
	root, err := strictyaml.Document([]byte("a: [' x ', y]\nb: ~\nc: [x, '']\nd: x\n"))
	require.NoError(t, err)
	f, err := strictyaml.Fields("f.yaml", "", "", root, []string{"a", "b", "c", "d"})
	require.NoError(t, err)
	got, err := strictyaml.Strings(f["a"])
	require.NoError(t, err)
	require.Equal(t, []string{"x", "y"}, got)
	got, err = strictyaml.Strings(f["b"])
	require.NoError(t, err)
	require.Nil(t, got)
	_, err = strictyaml.Strings(f["c"])
	require.EqualError(t, err, "item 1 must be a non-empty string (line 3)")
	_, err = strictyaml.Strings(f["d"])
	require.EqualError(t, err, "must be a list of strings (line 4)")
}
