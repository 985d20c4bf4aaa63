package relaytype_test

import (
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// nestedEnvelope returns an envelope whose facts.x holds n nested arrays
// ([[[…]]]) when arrays is set, else n nested objects ({"a":{"a":…}}).
func nestedEnvelope(n int, arrays bool) []byte {
	var b strings.Builder
	b.WriteString(`{"job_snapshot":{},"facts":{"x":`)
	if arrays {
		b.WriteString(strings.Repeat("[", n) + strings.Repeat("]", n))
	} else {
		b.WriteString(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
	}
	b.WriteString("}}")
	return []byte(b.String())
}

// checkEnvelope runs CheckEnvelope and returns its *EnvelopeError, if any.
func checkEnvelope(t *testing.T, raw []byte) *relaytype.EnvelopeError {
	t.Helper()
	err := relaytype.CheckEnvelope(raw)
	if err == nil {
		return nil
	}
	var ee *relaytype.EnvelopeError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, relaytype.CodeInvalidRequest, relaytype.CodeOf(err))
	return ee
}

// totalAlloc returns how many bytes f allocates on the heap.
func totalAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestCheckEnvelopeAcceptsEveryVector(t *testing.T) {
	t.Parallel()
	for name, v := range loadVectors(t, "envelope_vectors.json") {
		require.NoError(t, relaytype.CheckEnvelope([]byte(v.Envelope)), name)
	}
}

// CheckEnvelope refuses what CheckEnvelopeKeys refuses, at the same path.
func TestCheckEnvelopeRefusesDivergentKeys(t *testing.T) {
	t.Parallel()
	for name, v := range loadVectors(t, "envelope_divergences.json") {
		ee := checkEnvelope(t, []byte(v.Envelope))
		require.NotNil(t, ee, name)
		require.ErrorIs(t, ee, relaytype.ErrEnvelopeKey, name)
		require.True(t, strings.HasPrefix(ee.Field(), "context_envelope.facts."), ee.Field())
	}
	for in, path := range map[string]string{
		`{"tool_caps":{"db":[{"0":true}]}}`:                      "tool_caps.db[0].0",
		`{"facts":{"a":[1,2,{"x":1,"4294967294":2}]}}`:           "facts.a[2].4294967294",
		`{"facts":{"\u0031\u0030":1}}`:                           "facts.10",
		`{"facts":{"\u005f_proto__":1}}`:                         "facts.__proto__",
		`{"facts":{"s":"{\"9\":[","t":{"k\"":{"\"1":{"7":0}}}}}`: `facts.t.k"."1.7`,
	} {
		ee := checkEnvelope(t, []byte(in))
		require.NotNil(t, ee, in)
		require.ErrorIs(t, ee, relaytype.ErrEnvelopeKey, in)
		require.Equal(t, path, ee.Path, in)
		require.Equal(t, "context_envelope."+path, ee.Field(), in)
		require.Error(t, relaytype.CheckEnvelopeKeys([]byte(in)), in)
	}
	for _, ok := range []string{
		`{"a":{"01":1,"4294967295":2,"-1":3,"1.5":4,"x1":5,"":6}}`,
		`{"facts":{"v":"10","w":["__proto__",{"k":"9"}]}}`, // values, not keys
	} {
		require.NoError(t, relaytype.CheckEnvelope([]byte(ok)), ok)
	}
}

func TestCheckEnvelopeDepth(t *testing.T) {
	t.Parallel()
	// The envelope is level 1 and facts level 2, so facts.x holds up to
	// MaxEnvelopeDepth-2 more levels.
	inner := relaytype.MaxEnvelopeDepth - 2
	for _, arrays := range []bool{false, true} {
		require.NoError(t, relaytype.CheckEnvelope(nestedEnvelope(inner, arrays)))
		ee := checkEnvelope(t, nestedEnvelope(inner+1, arrays))
		require.NotNil(t, ee)
		require.ErrorIs(t, ee, relaytype.ErrEnvelopeTooDeep)
		require.Contains(t, ee.Message, "32 levels")
		want := "facts.x" + strings.Repeat(".a", inner)
		if arrays {
			want = "facts.x" + strings.Repeat("[0]", inner)
		}
		require.Equal(t, want, ee.Path)
	}
	// Brackets inside strings are text.
	require.NoError(t, relaytype.CheckEnvelope([]byte(`{"facts":{"s":"`+strings.Repeat(`[{\"`, 100)+`"}}`)))
	// A long path is cut.
	long := `{"job_snapshot":{},"facts":` + strings.Repeat(`{"`+strings.Repeat("k", 100)+`":`, 40) + "1" + strings.Repeat("}", 41)
	ee := checkEnvelope(t, []byte(long))
	require.ErrorIs(t, ee, relaytype.ErrEnvelopeTooDeep)
	require.LessOrEqual(t, len(ee.Path), 512+len("…"))
	require.True(t, strings.HasSuffix(ee.Path, "…"), ee.Path)
}

func TestCheckEnvelopeSizeAndShape(t *testing.T) {
	t.Parallel()
	pad := func(n int) []byte {
		prefix := `{"job_snapshot":{},"facts":{"pad":"`
		return []byte(prefix + strings.Repeat("x", n-len(prefix)-3) + `"}}`)
	}
	require.Len(t, pad(relaytype.MaxEnvelopeBytes), relaytype.MaxEnvelopeBytes)
	require.NoError(t, relaytype.CheckEnvelope(pad(relaytype.MaxEnvelopeBytes)))
	require.NoError(t, relaytype.CheckEnvelope(append(append([]byte("\n  "), pad(relaytype.MaxEnvelopeBytes)...), ' ')))
	ee := checkEnvelope(t, pad(relaytype.MaxEnvelopeBytes+1))
	require.ErrorIs(t, ee, relaytype.ErrEnvelopeTooLarge)
	require.Equal(t, "context_envelope", ee.Field())
	require.Contains(t, ee.Message, "65537 bytes")

	for _, in := range []string{``, ` `, `null`, `[1]`, `"x"`, `{`, `{"a":1`, `{"a":1} {}`, `{"a":]}`, `{"a":1}]`,
		`{"a":"unterminated}`, `}{`, `{"a":1,}`} {
		ee := checkEnvelope(t, []byte(in))
		require.NotNil(t, ee, in)
		require.ErrorIs(t, ee, relaytype.ErrEnvelopeNotObject, in)
		require.Equal(t, "context_envelope", ee.Field(), in)
		require.EqualError(t, ee, "INVALID_REQUEST: context_envelope: must be a JSON object")
	}
}

// TestCheckEnvelopeHostileNestingIsCheap reproduces the finding: a 20 KB
// envelope of nested arrays cost ~160 MB in CheckEnvelopeKeys (a path
// string per level) before the ask was refused. CheckEnvelope refuses it
// in linear time and almost no memory. Not parallel: TotalAlloc counts
// every goroutine's allocations.
func TestCheckEnvelopeHostileNestingIsCheap(t *testing.T) {
	for _, arrays := range []bool{true, false} {
		raw := nestedEnvelope(9980, true)
		if !arrays {
			raw = nestedEnvelope(3320, false)
		}
		require.True(t, json.Valid(raw))
		require.InDelta(t, 20000, len(raw), 100)
		var err error
		used := totalAlloc(func() { err = relaytype.CheckEnvelope(raw) })
		require.ErrorIs(t, err, relaytype.ErrEnvelopeTooDeep)
		require.Less(t, used, uint64(10<<20), "CheckEnvelope allocated %d bytes", used)
		require.Less(t, used, uint64(64<<10), "CheckEnvelope allocated %d bytes", used)
	}
}

// wideEnvelope returns an accepted envelope of about n bytes: a path of
// long keys nested MaxEnvelopeDepth deep, then many short keys. Key
// paths cost CheckEnvelopeKeys O(depth × key length) each; CheckEnvelope
// reads each byte once.
func wideEnvelope(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"job_snapshot":{},"facts":`)
	levels := relaytype.MaxEnvelopeDepth - 3
	for range levels {
		b.WriteString(`{"` + strings.Repeat("k", n/4/levels) + `":`)
	}
	b.WriteString(`{"k0":0`)
	for i := 1; b.Len() < n-2*levels-10; i++ {
		b.WriteString(`,"k":[1,"x"]`)
	}
	b.WriteString("}" + strings.Repeat("}", levels) + "}")
	return []byte(b.String())
}

// TestCheckEnvelopeLinear checks that the check's memory does not grow
// with the envelope: four times the bytes allocate no more than the small
// envelope does (a quadratic check builds strings per level or per key).
// Its speed is measured by BenchmarkCheckEnvelope, not asserted here. Not
// parallel: AllocsPerRun needs the process to itself.
func TestCheckEnvelopeLinear(t *testing.T) {
	small, big := wideEnvelope(relaytype.MaxEnvelopeBytes/4), wideEnvelope(relaytype.MaxEnvelopeBytes)
	require.NoError(t, relaytype.CheckEnvelope(small))
	require.NoError(t, relaytype.CheckEnvelope(big))
	require.Less(t, len(big), relaytype.MaxEnvelopeBytes+1)

	allocSmall := testing.AllocsPerRun(10, func() { _ = relaytype.CheckEnvelope(small) })
	allocBig := testing.AllocsPerRun(10, func() { _ = relaytype.CheckEnvelope(big) })
	// A few allocations of slack: the race detector adds some at random.
	require.LessOrEqual(t, allocBig, allocSmall+4, "allocations grow with the envelope")
	require.Less(t, allocBig, 16.0)
}

// BenchmarkCheckEnvelope measures the check on an envelope at the size
// limit.
func BenchmarkCheckEnvelope(b *testing.B) {
	raw := wideEnvelope(relaytype.MaxEnvelopeBytes)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		_ = relaytype.CheckEnvelope(raw)
	}
}

// FuzzCheckEnvelope compares CheckEnvelope with a reference built from
// encoding/json and CheckEnvelopeKeys.
func FuzzCheckEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"job_snapshot":{},"role":"default"}`,
		`{"facts":{"10":1}}`,
		`{"facts":{"\u0031":[{"__proto__":1}]}}`,
		`{"a":"\"{[","b":[[[[{"c":"]"}]]]]}`,
		string(nestedEnvelope(31, true)),
		string(nestedEnvelope(40, false)),
		`{"a":1`, `[1]`, `{"a":}`, `{"\\":1,"x\\\"9":2}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := relaytype.CheckEnvelope(raw)
		depth, derr := jsonDepth(raw)
		valid := derr == nil && json.Valid(raw)
		switch {
		case err == nil:
			require.True(t, valid, "accepted invalid JSON %q", raw)
			require.LessOrEqual(t, depth, relaytype.MaxEnvelopeDepth)
			require.NoError(t, relaytype.CheckEnvelopeKeys(raw))
		case errors.Is(err, relaytype.ErrEnvelopeTooDeep):
			if valid {
				require.Greater(t, depth, relaytype.MaxEnvelopeDepth)
			}
		case errors.Is(err, relaytype.ErrEnvelopeKey):
			if valid && depth <= relaytype.MaxEnvelopeDepth {
				require.Error(t, relaytype.CheckEnvelopeKeys(raw), "%q", raw)
			}
		case errors.Is(err, relaytype.ErrEnvelopeNotObject):
			if valid && len(raw) <= relaytype.MaxEnvelopeBytes && depth <= relaytype.MaxEnvelopeDepth {
				trimmed := strings.TrimSpace(string(raw))
				require.False(t, strings.HasPrefix(trimmed, "{"), "refused the object %q", raw)
			}
		}
	})
}

// jsonDepth returns the deepest nesting of objects and arrays in raw,
// using encoding/json's tokenizer.
func jsonDepth(raw []byte) (int, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest, nil
		}
		if err != nil {
			return deepest, err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}
