package relaytype

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxEnvelopeDepth is how deeply a context envelope may nest objects and
// arrays. The envelope object itself is level 1, so a value at
// facts.a.b is at level 3 when it is an object or an array.
const MaxEnvelopeDepth = 32

// maxEnvelopePathLen bounds the Path of an EnvelopeError; longer paths
// are cut and end in "…".
const maxEnvelopePathLen = 512

// Sentinel errors of CheckEnvelope; an *EnvelopeError wraps one of them.
var (
	// ErrEnvelopeTooLarge: the envelope is larger than MaxEnvelopeBytes.
	ErrEnvelopeTooLarge = errors.New("context envelope too large")
	// ErrEnvelopeTooDeep: the envelope nests deeper than MaxEnvelopeDepth.
	ErrEnvelopeTooDeep = errors.New("context envelope nested too deeply")
	// ErrEnvelopeKey: a key the TypeScript SDK hashes differently.
	ErrEnvelopeKey = errors.New("context envelope key not portable")
	// ErrEnvelopeNotObject: the envelope is not one valid JSON object.
	ErrEnvelopeNotObject = errors.New("context envelope is not a JSON object")
)

// EnvelopeError is a context envelope that CheckEnvelope refuses.
type EnvelopeError struct {
	// Path is where in the envelope the problem is: empty for the whole
	// envelope, else keys joined by "." with "[i]" for array elements
	// ("facts.a[0].b"). Paths longer than 512 bytes are cut and end in
	// "…".
	Path string
	// Message says what is wrong, without the path.
	Message string
	// Err is one of ErrEnvelopeTooLarge, ErrEnvelopeTooDeep,
	// ErrEnvelopeKey and ErrEnvelopeNotObject.
	Err error
}

// Field returns the request field the error is about: "context_envelope",
// or "context_envelope." followed by Path.
func (e *EnvelopeError) Field() string {
	if e.Path == "" {
		return "context_envelope"
	}
	return "context_envelope." + e.Path
}

func (e *EnvelopeError) Error() string {
	return fmt.Sprintf("%s: %s: %s", CodeInvalidRequest, e.Field(), e.Message)
}

// Unwrap returns the sentinel error.
func (e *EnvelopeError) Unwrap() error { return e.Err }

// Code returns CodeInvalidRequest.
func (e *EnvelopeError) Code() ErrorCode { return CodeInvalidRequest }

// CheckEnvelope checks the raw JSON of a context envelope before anything
// parses or canonicalises it: at most MaxEnvelopeBytes (surrounding
// whitespace aside), one JSON object, objects and arrays nested at most
// MaxEnvelopeDepth deep, and no key that the TypeScript SDK would hash
// differently from RFC 8785 (see CheckEnvelopeKeys). It reads raw once,
// in time and memory linear in its size (constant memory unless keys
// carry escapes), so that a hostile envelope costs no more than its
// bytes. Errors are *EnvelopeError; the first problem found is reported.
func CheckEnvelope(raw []byte) error {
	// Only JSON's own whitespace: bytes.TrimSpace would also drop \f, \v
	// and Unicode spaces, which make the text invalid JSON.
	raw = bytes.Trim(raw, " \t\r\n")
	if len(raw) > MaxEnvelopeBytes {
		return &EnvelopeError{Message: fmt.Sprintf("is %d bytes, at most %d allowed", len(raw), MaxEnvelopeBytes),
			Err: ErrEnvelopeTooLarge}
	}
	notObject := &EnvelopeError{Message: "must be a JSON object", Err: ErrEnvelopeNotObject}
	if len(raw) == 0 || raw[0] != '{' {
		return notObject
	}
	if err := scanEnvelope(raw); err != nil {
		return err
	}
	// The scan tolerates invalid JSON (it never reads past raw and keeps
	// at most MaxEnvelopeDepth frames); validity is checked once the
	// depth is known to be small.
	if !json.Valid(raw) {
		return notObject
	}
	return nil
}

// envFrame is one open object or array during scanEnvelope.
type envFrame struct {
	object  bool
	wantKey bool   // objects: the next string is a key
	key     []byte // objects: the current key, raw (between the quotes)
	index   int    // arrays: the current element
}

// scanEnvelope walks raw byte by byte, tracking only the open containers
// and the current key or index of each, and reports the first container
// nested deeper than MaxEnvelopeDepth or the first key CheckEnvelopeKeys
// would refuse.
func scanEnvelope(raw []byte) error {
	var stack [MaxEnvelopeDepth]envFrame
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			if depth == MaxEnvelopeDepth {
				return &EnvelopeError{Path: envelopePath(stack[:depth]),
					Message: fmt.Sprintf("nests objects and arrays more than %d levels deep", MaxEnvelopeDepth),
					Err:     ErrEnvelopeTooDeep}
			}
			stack[depth] = envFrame{object: c == '{', wantKey: c == '{'}
			depth++
		case '}', ']':
			if depth == 0 {
				return nil // invalid JSON; json.Valid reports it
			}
			depth--
		case ',':
			if depth == 0 {
				continue
			}
			if top := &stack[depth-1]; top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		case '"':
			end := stringEnd(raw, i)
			if depth > 0 {
				if top := &stack[depth-1]; top.object && top.wantKey {
					top.key, top.wantKey = raw[i+1:min(end, len(raw))], false
					if msg := keyProblem(top.key); msg != "" {
						return &EnvelopeError{Path: envelopePath(stack[:depth]), Message: msg, Err: ErrEnvelopeKey}
					}
				}
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote that closes the JSON string
// opening at raw[start], or len(raw) if it is not closed.
func stringEnd(raw []byte, start int) int {
	for j := start + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(raw)
}

// keyProblem returns why the raw (still escaped) object key k would hash
// differently in the TypeScript SDK, or "" if it would not.
func keyProblem(k []byte) string {
	if bytes.IndexByte(k, '\\') >= 0 {
		k = []byte(unescapeKey(k))
	}
	if string(k) == "__proto__" || arrayIndexKey(k) {
		return fmt.Sprintf("key %q is ordered or dropped differently by JavaScript; rename it so the hash matches the TypeScript SDK", k)
	}
	return ""
}

// arrayIndexKey is isArrayIndex over bytes: a decimal integer without
// leading zeros below 2³²−1.
func arrayIndexKey(k []byte) bool {
	if len(k) == 0 || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return false
	}
	var n uint64
	for _, c := range k {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	return n < 1<<32-1
}

// unescapeKey decodes the raw text of a JSON string (without its quotes);
// text that does not decode is returned as is.
func unescapeKey(k []byte) string {
	var s string
	quoted := make([]byte, 0, len(k)+2)
	quoted = append(append(append(quoted, '"'), k...), '"')
	if err := json.Unmarshal(quoted, &s); err != nil {
		return string(k)
	}
	return s
}

// envelopePath renders the location the open containers lead to, in the
// form of CheckEnvelopeKeys ("facts.a[0].b"), cut at maxEnvelopePathLen.
func envelopePath(stack []envFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if b.Len() > maxEnvelopePathLen {
			break
		}
		switch {
		case !f.object:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		case f.key != nil:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			if bytes.IndexByte(f.key, '\\') >= 0 {
				b.WriteString(unescapeKey(f.key))
			} else {
				b.Write(f.key)
			}
		}
	}
	p := b.String()
	if len(p) > maxEnvelopePathLen {
		p = strings.ToValidUTF8(p[:maxEnvelopePathLen], "") + "…"
	}
	return p
}
