package mcpserver

import (
	"bytes"
	"errors"
	"fmt"
)

// maxParts bounds the top-level members or elements scanJSON records; a
// JSON-RPC message has a handful, and a batch this many at most.
const maxParts = 1000

// errJSONSyntax is wrapped by every error scanJSON returns.
var errJSONSyntax = errors.New("invalid JSON")

// jsonScan describes one JSON text: the kind of its top-level value, how
// deep objects and arrays nest in it, and the parts of its top level (the
// members of an object, the elements of an array) as slices of the text.
type jsonScan struct {
	// kind is the first byte of the top-level value: '{', '[', '"', 't',
	// 'f', 'n', or '0' for any number.
	kind byte
	// depth is the deepest nesting of objects and arrays (0 for a scalar).
	depth int
	// parts counts the top-level object's members or array's elements.
	parts int
	// members are the top-level object's members, in order; the first
	// maxParts only.
	members []jsonMember
	// elems are the top-level array's elements, in order; the first
	// maxParts only.
	elems [][]byte
}

// jsonMember is one member of an object: its key as the raw string token
// (quotes and escapes included) and its value.
type jsonMember struct {
	key   []byte
	value []byte
}

// scanJSON checks that b is exactly one JSON value (RFC 8259; whitespace
// around it allowed) and describes it. Unlike encoding/json it puts no limit
// on nesting and never recurses, so that any depth can be measured and
// refused with a precise error; its stack costs one byte per level.
func scanJSON(b []byte) (jsonScan, error) {
	const (
		stValue = iota
		stAfterValue
		stKey
	)
	var (
		s        jsonScan
		stack    []byte // '{' or '[' per open container
		i        int
		key      []byte // key of the current top-level member
		valStart = -1   // start of the current top-level member or element
	)
	n := len(b)
	skipWS := func() {
		for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	fail := func(what string) (jsonScan, error) {
		if i >= n {
			return jsonScan{}, fmt.Errorf("%w: unexpected end of input, %s", errJSONSyntax, what)
		}
		return jsonScan{}, fmt.Errorf("%w: %s at offset %d", errJSONSyntax, what, i)
	}
	// valueDone records a value that ends at i if it is a top-level member
	// or element.
	valueDone := func() {
		if len(stack) == 1 && valStart >= 0 {
			s.parts++
			if s.parts > maxParts {
				valStart = -1
				return
			}
			if stack[0] == '{' {
				s.members = append(s.members, jsonMember{key: key, value: b[valStart:i]})
			} else {
				s.elems = append(s.elems, b[valStart:i])
			}
			valStart = -1
		}
	}
	skipWS()
	if i < n {
		s.kind = b[i]
		if s.kind == '-' || (s.kind >= '0' && s.kind <= '9') {
			s.kind = '0'
		}
	}
	state := stValue
	for {
		skipWS()
		switch state {
		case stValue:
			if i >= n {
				return fail("expected a value")
			}
			if len(stack) == 1 {
				valStart = i
			}
			switch c := b[i]; {
			case c == '{' || c == '[':
				stack = append(stack, c)
				s.depth = max(s.depth, len(stack))
				i++
				skipWS()
				end := byte('}')
				if c == '[' {
					end = ']'
				}
				if i < n && b[i] == end {
					i++
					stack = stack[:len(stack)-1]
					valueDone()
					state = stAfterValue
				} else if c == '{' {
					state = stKey
				}
			case c == '"':
				j, err := scanString(b, i)
				if err != nil {
					return jsonScan{}, err
				}
				i = j
				valueDone()
				state = stAfterValue
			case c == '-' || (c >= '0' && c <= '9'):
				j, ok := scanNumber(b, i)
				if !ok {
					return fail("malformed number")
				}
				i = j
				valueDone()
				state = stAfterValue
			case c == 't' || c == 'f' || c == 'n':
				lit := literal(c)
				if !bytes.HasPrefix(b[i:], lit) {
					return fail("invalid literal")
				}
				i += len(lit)
				valueDone()
				state = stAfterValue
			default:
				return fail(fmt.Sprintf("invalid character %q looking for a value", c))
			}
		case stKey:
			if i >= n || b[i] != '"' {
				return fail("expected a string key")
			}
			j, err := scanString(b, i)
			if err != nil {
				return jsonScan{}, err
			}
			if len(stack) == 1 {
				key = b[i:j]
			}
			i = j
			skipWS()
			if i >= n || b[i] != ':' {
				return fail("expected ':' after an object key")
			}
			i++
			state = stValue
		case stAfterValue:
			if len(stack) == 0 {
				if i != n {
					return fail("invalid data after the top-level value")
				}
				return s, nil
			}
			if i >= n {
				return fail("unclosed object or array")
			}
			top := stack[len(stack)-1]
			switch c := b[i]; {
			case c == ',':
				i++
				if top == '{' {
					state = stKey
				} else {
					state = stValue
				}
			case c == '}' && top == '{', c == ']' && top == '[':
				i++
				stack = stack[:len(stack)-1]
				valueDone()
			default:
				return fail(fmt.Sprintf("invalid character %q after a value", c))
			}
		}
	}
}

func literal(c byte) []byte {
	switch c {
	case 't':
		return []byte("true")
	case 'f':
		return []byte("false")
	}
	return []byte("null")
}

// scanString returns the offset just past the string token that starts at
// b[i] (a '"').
func scanString(b []byte, i int) (int, error) {
	start := i
	n := len(b)
	for i++; i < n; {
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= n {
				return 0, fmt.Errorf("%w: unterminated string at offset %d", errJSONSyntax, start)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > n || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return 0, fmt.Errorf("%w: invalid \\u escape at offset %d", errJSONSyntax, i)
				}
				i += 6
			default:
				return 0, fmt.Errorf("%w: invalid escape at offset %d", errJSONSyntax, i)
			}
		case c < 0x20:
			return 0, fmt.Errorf("%w: control character in a string at offset %d", errJSONSyntax, i)
		default:
			i++
		}
	}
	return 0, fmt.Errorf("%w: unterminated string at offset %d", errJSONSyntax, start)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber returns the offset just past the number that starts at b[i],
// and whether it is well formed.
func scanNumber(b []byte, i int) (int, bool) {
	n := len(b)
	if b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
	case i < n && b[i] >= '1' && b[i] <= '9':
		for i < n && isDigit(b[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < n && b[i] == '.' {
		i++
		if i >= n || !isDigit(b[i]) {
			return i, false
		}
		for i < n && isDigit(b[i]) {
			i++
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= n || !isDigit(b[i]) {
			return i, false
		}
		for i < n && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}
