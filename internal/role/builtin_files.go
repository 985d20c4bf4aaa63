package role

import (
	"io/fs"
	"path"
)

// BuiltinRoleFiles returns the role files embedded in the binary, by file
// name (role.NAME@vN.yaml) to contents, so that they can be written out for
// editing: a copy in the prompts dir overrides the built-in role.
func BuiltinRoleFiles() map[string][]byte {
	names, err := fs.Glob(builtinRoles, "roles/*.yaml")
	if err != nil {
		// The pattern is a constant; Glob fails only on a malformed one.
		panic("answer: built-in roles: " + err.Error())
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		data, err := builtinRoles.ReadFile(name)
		if err != nil {
			// Glob listed it from the same embedded tree.
			panic("answer: built-in role " + name + ": " + err.Error())
		}
		out[path.Base(name)] = data
	}
	return out
}
