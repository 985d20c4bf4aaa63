package relay

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadGlob is wrapped by the errors of CompileGlob.
var ErrBadGlob = errors.New("invalid glob")

// Glob is a compiled path pattern, as scope.fileGlobs and scope.readPaths
// use them. Patterns and paths are slash-separated and relative to the
// repository root, and a pattern matches a path as a whole, segment by
// segment:
//
//   - "*" matches any run of characters within one segment (never "/"),
//     the empty run and a leading "." included;
//   - "?" matches one character (not "/");
//   - "[abc]", "[a-z]", "[!a-z]" and "[^a-z]" match one character (not
//     "/") in, or not in, the class; a "]" right after "[" or "[!" is a
//     member;
//   - "**" as a whole segment matches zero or more whole segments, so
//     "src/**" matches everything below src, "**/*.go" every .go file
//     and "a/**/b" a/b, a/x/b, a/x/y/b ("**" inside a segment, as in
//     "a**b", is "*");
//   - "\" makes the next character literal;
//   - a trailing "/" is short for "/**" ("docs/" is "docs/**"), and a
//     leading "./" is ignored.
//
// Matching is case-sensitive. A pattern without "/" matches top-level
// paths only: "*.go" matches main.go, not cmd/main.go (use "**/*.go").
type Glob struct {
	pattern string
	// segs are the pattern's segments; "**" stands for any number of
	// segments.
	segs []string
}

// CompileGlob checks pattern and returns it compiled. It refuses an empty
// pattern, an absolute one, a "." or ".." segment, an empty segment
// ("a//b"), an unclosed "[" and a trailing "\", with an error wrapping
// ErrBadGlob.
func CompileGlob(pattern string) (*Glob, error) {
	bad := func(format string, a ...any) (*Glob, error) {
		return nil, fmt.Errorf("%w %q: %s", ErrBadGlob, pattern, fmt.Sprintf(format, a...))
	}
	p := pattern
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	switch {
	case strings.TrimSpace(pattern) == "":
		return bad("empty")
	case strings.HasPrefix(p, "/"):
		return bad("must be relative to the repository root")
	case p == "":
		return bad("names no file")
	}
	if strings.HasSuffix(p, "/") {
		p += "**"
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		switch s {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("%q segment: paths are relative to the repository root", s)
		}
		if err := checkSegment(s); err != nil {
			return bad("%v", err)
		}
	}
	return &Glob{pattern: pattern, segs: segs}, nil
}

// String returns the pattern as given.
func (g *Glob) String() string { return g.pattern }

// checkSegment reports an unclosed class or a trailing escape in one
// segment of a pattern.
func checkSegment(s string) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return errors.New(`trailing "\"`)
			}
			i++
		case '[':
			end, ok := classEnd(s, i)
			if !ok {
				return errors.New(`unclosed "["`)
			}
			i = end - 1
		}
	}
	return nil
}

// classEnd returns the index just past the class that starts at s[i]
// ('['), and whether the class is closed.
func classEnd(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && (s[j] == '!' || s[j] == '^') {
		j++
	}
	first := true
	for ; j < len(s); j++ {
		switch {
		case s[j] == ']' && !first:
			return j + 1, true
		case s[j] == '\\':
			j++
		}
		first = false
	}
	return 0, false
}

// Match reports whether path, slash-separated and relative to the
// repository root, matches the pattern. A path with an empty, "." or ".."
// segment, or a leading "/", matches nothing.
func (g *Glob) Match(path string) bool {
	if path == "" || strings.HasPrefix(path, "/") {
		return false
	}
	names := strings.Split(path, "/")
	for _, n := range names {
		if n == "" || n == "." || n == ".." {
			return false
		}
	}
	return matchSegments(g.segs, names)
}

// MatchDirOrBelow reports whether path or one of its parent directories
// matches the pattern: a pattern that names a directory covers what is
// in it.
func (g *Glob) MatchDirOrBelow(path string) bool {
	for p := path; p != ""; {
		if g.Match(p) {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// matchSegments matches pattern segments against path segments: a table
// of which suffixes match, so that several "**" never backtrack
// exponentially.
func matchSegments(pat, names []string) bool {
	// ok[i][j]: pat[i:] matches names[j:].
	ok := make([][]bool, len(pat)+1)
	for i := range ok {
		ok[i] = make([]bool, len(names)+1)
	}
	ok[len(pat)][len(names)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := len(names); j >= 0; j-- {
			if pat[i] == "**" {
				ok[i][j] = ok[i+1][j] || (j < len(names) && ok[i][j+1])
				continue
			}
			ok[i][j] = j < len(names) && ok[i+1][j+1] && matchSegment(pat[i], names[j])
		}
	}
	return ok[0][0]
}

// matchSegment matches one pattern segment against one path segment. A
// "*" is retried one character further on a mismatch (the last "*" only,
// which suffices: a match never needs an earlier one to take more).
func matchSegment(pat, name string) bool {
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px, nx = px+1, nx+w
					continue
				}
			case '[':
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					if end, in := matchClass(pat, px, r); in {
						px, nx = end, nx+w
						continue
					}
				}
			case '\\':
				if nx < len(name) && px+1 < len(pat) {
					pr, pw := utf8.DecodeRuneInString(pat[px+1:])
					r, w := utf8.DecodeRuneInString(name[nx:])
					if pr == r {
						px, nx = px+1+pw, nx+w
						continue
					}
				}
			default:
				if nx < len(name) && name[nx] == c {
					px, nx = px+1, nx+1
					continue
				}
			}
		}
		if starPx >= 0 && starNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[starNx:])
			starNx += w
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}

// matchClass reports whether r is in the class that starts at pat[i]
// ('[') and returns the index just past it. An unclosed class (which
// CompileGlob refuses) matches nothing.
func matchClass(pat string, i int, r rune) (int, bool) {
	end, closed := classEnd(pat, i)
	if !closed {
		return 0, false
	}
	j := i + 1
	negate := pat[j] == '!' || pat[j] == '^'
	if negate {
		j++
	}
	in := false
	for first := true; j < end-1; first = false {
		if pat[j] == ']' && !first {
			break
		}
		lo, w := classRune(pat, j)
		j += w
		hi := lo
		if j+1 < end-1 && pat[j] == '-' {
			hi, w = classRune(pat, j+1)
			j += 1 + w
		}
		if lo <= r && r <= hi {
			in = true
		}
	}
	return end, in != negate
}

// classRune returns the (possibly escaped) character at pat[j] of a class
// and how many bytes it takes.
func classRune(pat string, j int) (rune, int) {
	if pat[j] == '\\' && j+1 < len(pat) {
		r, w := utf8.DecodeRuneInString(pat[j+1:])
		return r, 1 + w
	}
	return utf8.DecodeRuneInString(pat[j:])
}
