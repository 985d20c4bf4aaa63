package relay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// maxNamedPaths caps the paths a scope failure names; the rest are
// counted.
const maxNamedPaths = 20

// CheckScope validates the paths and patterns of a spec's scope, as Admit
// does before a job is queued: every scope.fileGlobs entry must compile
// (see Glob), and every scope.readPaths entry must be a path relative to
// the repository root (no leading "/", no ".." segment) or a valid glob.
// The error is a *relaytype.SpecError naming the entry.
func CheckScope(s *relaytype.Scope) error {
	for i, g := range s.FileGlobs {
		if _, err := CompileGlob(g); err != nil {
			return &relaytype.SpecError{Field: fmt.Sprintf("scope.fileGlobs[%d]", i), Message: err.Error()}
		}
	}
	for i, p := range s.ReadPaths {
		if _, err := compileReadPath(p); err != nil {
			return &relaytype.SpecError{Field: fmt.Sprintf("scope.readPaths[%d]", i), Message: err.Error()}
		}
	}
	return nil
}

// readPath is one compiled scope.readPaths entry.
type readPath struct {
	// all is set for an entry that names the whole repository ("." or
	// "./").
	all bool
	// dir is a plain path: it covers itself and everything below it.
	dir string
	// glob is set for an entry with glob characters: it covers what it
	// matches and everything below that.
	glob *Glob
}

// compileReadPath compiles a scope.readPaths entry: a file or directory
// relative to the repository root ("src", "src/", "./src/api.go"), or a
// glob (an entry with "*", "?", "[" or "\") as in fileGlobs.
func compileReadPath(p string) (readPath, error) {
	if strings.ContainsAny(p, `*?[\`) {
		g, err := CompileGlob(p)
		if err != nil {
			return readPath{}, err
		}
		return readPath{glob: g}, nil
	}
	if strings.TrimSpace(p) == "" {
		return readPath{}, errors.New("empty path")
	}
	if strings.HasPrefix(p, "/") {
		return readPath{}, fmt.Errorf("%q must be relative to the repository root", p)
	}
	c := path.Clean(p)
	if c == "." {
		return readPath{all: true}, nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return readPath{}, fmt.Errorf("%q leads out of the repository", p)
	}
	return readPath{dir: c}, nil
}

// covers reports whether the clean relative path p is the entry or lies
// below it.
func (r readPath) covers(p string) bool {
	switch {
	case r.all:
		return true
	case r.glob != nil:
		return r.glob.MatchDirOrBelow(p)
	}
	return p == r.dir || strings.HasPrefix(p, r.dir+"/")
}

// InReadPaths reports whether the file p (a repository-relative path as a
// code snippet names it) lies inside scope.readPaths: it is, once cleaned
// ("src/../x" is "x"), one of the entries or below one. Every path is
// inside an empty readPaths; a path that leads out of the repository is
// inside none, nor is one any entry fails to compile for.
func InReadPaths(readPaths []string, p string) bool {
	if len(readPaths) == 0 {
		return true
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.HasPrefix(c, "/") {
		return false
	}
	for _, e := range readPaths {
		if r, err := compileReadPath(e); err == nil && r.covers(c) {
			return true
		}
	}
	return false
}

// ScopeError is the failure of a patch that touches paths outside
// scope.fileGlobs.
type ScopeError struct {
	// Globs are the job's scope.fileGlobs.
	Globs []string
	// Outside are the offending paths, sorted.
	Outside []string
}

// ErrOutOfScope is what errors.Is finds in a *ScopeError.
var ErrOutOfScope = errors.New("patch touches files outside scope.fileGlobs")

func (e *ScopeError) Error() string {
	names := e.Outside
	more := ""
	if len(names) > maxNamedPaths {
		more = fmt.Sprintf(" and %d more", len(names)-maxNamedPaths)
		names = names[:maxNamedPaths]
	}
	noun := "paths"
	if len(e.Outside) == 1 {
		noun = "path"
	}
	return fmt.Sprintf("scope.fileGlobs: the patch touches %d %s outside %s: %s%s",
		len(e.Outside), noun, strings.Join(e.Globs, ", "), strings.Join(names, ", "), more)
}

// Is makes errors.Is(err, ErrOutOfScope) true.
func (e *ScopeError) Is(target error) bool { return target == ErrOutOfScope }

// CheckFileGlobs returns a *ScopeError when patch touches a path that no
// glob of globs matches: a file added, modified (content or mode),
// deleted, or renamed or copied from or to it. An empty globs allows
// every path. A glob that does not compile (CheckScope refuses those at
// submit) is an error wrapping ErrBadGlob.
func CheckFileGlobs(globs []string, patch []byte) error {
	if len(globs) == 0 {
		return nil
	}
	compiled := make([]*Glob, 0, len(globs))
	for i, g := range globs {
		c, err := CompileGlob(g)
		if err != nil {
			return fmt.Errorf("scope.fileGlobs[%d]: %w", i, err)
		}
		compiled = append(compiled, c)
	}
	var outside []string
	for _, p := range PatchPaths(patch) {
		in := false
		for _, g := range compiled {
			if g.Match(p) {
				in = true
				break
			}
		}
		if !in {
			outside = append(outside, p)
		}
	}
	if len(outside) == 0 {
		return nil
	}
	return &ScopeError{Globs: globs, Outside: outside}
}

// PatchPaths returns, sorted and without repeats, every path a git patch
// (as the relay's `git diff` writes it: a/ and b/ prefixes) touches: both
// sides of each file's header (`diff --git`, `---`/`+++`, `rename
// from`/`to`, `copy from`/`to`), so a rename yields its source and its
// destination and /dev/null is left out. Names git quotes (C-style, for
// control characters, quotes and backslashes) are unquoted. Only header
// lines are read: hunk lines never start a file header, whatever they
// contain.
func PatchPaths(patch []byte) []string {
	seen := map[string]bool{}
	add := func(name string, prefix string) {
		name, ok := strings.CutPrefix(name, prefix)
		if ok && name != "" {
			seen[name] = true
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(patch))
	sc.Buffer(make([]byte, 0, 64*1024), len(patch)+1)
	header := false
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "diff --git "); ok {
			header = true
			a, b := splitGitHeader(rest)
			add(a, "a/")
			add(b, "b/")
			continue
		}
		if !header {
			continue
		}
		switch {
		case strings.HasPrefix(line, "@@"), strings.HasPrefix(line, "GIT binary patch"), strings.HasPrefix(line, "Binary files "):
			// The file's header is over; what follows is its content.
			header = false
		case strings.HasPrefix(line, "--- "):
			add(headerName(line[4:]), "a/")
		case strings.HasPrefix(line, "+++ "):
			add(headerName(line[4:]), "b/")
		case strings.HasPrefix(line, "rename from "), strings.HasPrefix(line, "copy from "):
			_, name, _ := strings.Cut(line, " from ")
			add(unquoteName(name), "")
		case strings.HasPrefix(line, "rename to "), strings.HasPrefix(line, "copy to "):
			_, name, _ := strings.Cut(line, " to ")
			add(unquoteName(name), "")
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// headerName returns the name of a ---/+++ line: unquoted, without the
// tab git appends to a name that contains a space.
func headerName(s string) string {
	if strings.HasPrefix(s, `"`) {
		return unquoteName(s)
	}
	return strings.TrimSuffix(s, "\t")
}

// splitGitHeader splits what follows "diff --git " into its two names
// (with their a/ and b/ prefixes). Unquoted names may contain spaces:
// when both are unquoted the line is read as the same name twice (git's
// own reading), which holds for every entry but a rename or copy, whose
// names the rename/copy lines give anyway.
func splitGitHeader(rest string) (string, string) {
	if strings.HasPrefix(rest, `"`) {
		a, tail, ok := cutQuoted(rest)
		if !ok {
			return "", ""
		}
		tail = strings.TrimPrefix(tail, " ")
		if strings.HasPrefix(tail, `"`) {
			b, _, _ := cutQuoted(tail)
			return a, b
		}
		return a, tail
	}
	if i := strings.Index(rest, ` "b/`); i >= 0 && strings.HasSuffix(rest, `"`) {
		b, _, _ := cutQuoted(rest[i+1:])
		return rest[:i], b
	}
	if n := len(rest); n%2 == 1 {
		a, b := rest[:n/2], rest[n/2+1:]
		if rest[n/2] == ' ' && strings.HasPrefix(a, "a/") && strings.HasPrefix(b, "b/") && a[2:] == b[2:] {
			return a, b
		}
	}
	if i := strings.Index(rest, " b/"); i >= 0 {
		return rest[:i], rest[i+1:]
	}
	return "", ""
}

// unquoteName undoes git's C-style quoting of a name, if it is quoted.
func unquoteName(s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	name, _, ok := cutQuoted(s)
	if !ok {
		return s
	}
	return name
}

// cutQuoted reads the C-style quoted string at the start of s (as git
// writes names: \a \b \t \n \v \f \r \" \\ and three-digit octal bytes)
// and returns it unquoted and what follows it.
func cutQuoted(s string) (name, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			switch e := s[i]; e {
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'v':
				b.WriteByte('\v')
			case 'f':
				b.WriteByte('\f')
			case 'r':
				b.WriteByte('\r')
			case '0', '1', '2', '3':
				if i+3 > len(s) {
					return "", "", false
				}
				v, err := strconv.ParseUint(s[i:i+3], 8, 8)
				if err != nil {
					return "", "", false
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}
