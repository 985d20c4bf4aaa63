package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lineSession is a Server session over a LineTransport on pipes, driven
// with raw lines.
type lineSession struct {
	in    *io.PipeWriter
	lines chan []byte // every line the server wrote
	done  chan error  // Run's result
	seq   int
	// initialized is set once the handshake is done: before it, probe
	// sends ping, which the server answers then, rather than tools/list.
	initialized bool
}

// startLineSession runs a session of srv (a new Server when nil) over a
// LineTransport with the given frame limit (0: the default) and does the
// initialize handshake at protocol version (empty: none).
func startLineSession(t testing.TB, srv *Server, maxFrame int, protocol string) *lineSession {
	t.Helper()
	return startLineSessionWith(t, srv, LineTransport{MaxFrame: maxFrame}, protocol)
}

// startLineSessionWith is startLineSession with the transport's settings
// taken from lt (its Reader and Writer are the session's pipes).
func startLineSessionWith(t testing.TB, srv *Server, lt LineTransport, protocol string) *lineSession {
	t.Helper()
	if srv == nil {
		var err error
		srv, err = New(Config{Jobs: newFakeJobs(), Logger: slog.New(slog.DiscardHandler), Version: "test"})
		require.NoError(t, err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &lineSession{in: inW, lines: make(chan []byte, 1024), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		lt.Reader, lt.Writer = inR, outW
		s.done <- srv.Run(ctx, &lt)
	}()
	go func() {
		defer close(s.lines)
		br := bufio.NewReader(outR)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			s.lines <- line
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = inW.Close()
		_ = outR.Close()
	})
	if protocol != "" {
		s.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`, protocol))
		r := s.next(t)
		require.Equal(t, `"init"`, string(r.ID), "initialize: %s", r.raw)
		require.Nil(t, r.Error, "initialize: %s", r.raw)
		s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		s.initialized = true
	}
	return s
}

// send writes line and a newline.
func (s *lineSession) send(t testing.TB, line string) {
	t.Helper()
	_, err := io.WriteString(s.in, line+"\n")
	require.NoError(t, err)
}

// reply is one JSON-RPC response line.
type reply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw []byte
}

// nextLine returns the next line the server writes.
func (s *lineSession) nextLine(t testing.TB) []byte {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		require.True(t, ok, "the server closed its output")
		return line
	case err := <-s.done:
		t.Fatalf("the session ended: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("no reply")
	}
	return nil
}

// next returns the next line the server writes, which must be one
// response object.
func (s *lineSession) next(t testing.TB) reply {
	t.Helper()
	line := s.nextLine(t)
	var r reply
	require.NoError(t, json.Unmarshal(line, &r), "reply %q", line)
	r.raw = line
	return r
}

// probe sends tools/list (ping before initialize) and requires its
// answer as the next line.
func (s *lineSession) probe(t testing.TB) {
	t.Helper()
	s.seq++
	id := fmt.Sprintf(`"probe-%d"`, s.seq)
	method := "ping"
	if s.initialized {
		method = "tools/list"
	}
	s.send(t, `{"jsonrpc":"2.0","id":`+id+`,"method":"`+method+`"}`)
	r := s.next(t)
	require.Equal(t, id, string(r.ID), "the reply to %s: %s", method, r.raw)
	require.Nil(t, r.Error, "%s: %s", method, r.raw)
	if s.initialized {
		require.Contains(t, string(r.Result), "jobs_submit")
	}
}

// malformedCase is one hand-made line and what it must get: an error
// reply with code and id, a result with id (code 0), or nothing (id "").
type malformedCase struct {
	name string
	line string
	code int64
	id   string
}

func deepParams(levels int) string {
	return `{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":` + strings.Repeat("[", levels) + strings.Repeat("]", levels) + `}}`
}

// malformedCases are the hand-made bad lines of the review, and a few good
// ones that look odd.
func malformedCases() []malformedCase {
	return []malformedCase{
		{"garbage", "this is not json", -32700, "null"},
		{"truncated object", `{"jsonrpc":"2.0","id":1,"method":`, -32700, "null"},
		{"two values on a line", `{"jsonrpc":"2.0","id":1,"method":"ping"} {}`, -32700, "null"},
		{"NUL bytes", "\x00\x00\x00", -32700, "null"},
		{"invalid UTF-8", "\xff\xfe\xfd", -32700, "null"},
		{"unclosed deep nesting", strings.Repeat("[", 10000), -32700, "null"},
		{"BOM then request", "\xef\xbb\xbf" + `{"jsonrpc":"2.0","id":"bom","method":"ping"}`, 0, `"bom"`},
		{"BOM alone", "\xef\xbb\xbf", 0, ""},
		{"CRLF", `{"jsonrpc":"2.0","id":"crlf","method":"ping"}` + "\r", 0, `"crlf"`},
		{"empty batch", `[]`, -32600, "null"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`, -32600, "null"},
		{"id object", `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, -32600, "null"},
		{"id array", `{"jsonrpc":"2.0","id":[1],"method":"ping"}`, -32600, "null"},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, -32600, "null"},
		{"id float", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, -32600, "null"},
		{"id float with zero fraction", `{"jsonrpc":"2.0","id":2.0,"method":"ping"}`, -32600, "null"},
		{"id exponent", `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`, -32600, "null"},
		{"id huge number", `{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}`, -32600, "null"},
		{"id past 2^53", `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, -32600, "null"},
		{"id 2^53", `{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}`, 0, "9007199254740992"},
		{"id negative", `{"jsonrpc":"2.0","id":-3,"method":"ping"}`, 0, "-3"},
		{"id null request", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, -32600, "null"},
		{"missing jsonrpc", `{"id":5,"method":"ping"}`, -32600, "5"},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":5,"method":"ping"}`, -32600, "5"},
		{"jsonrpc number", `{"jsonrpc":2.0,"id":"five","method":"ping"}`, -32600, `"five"`},
		{"method not a string", `{"jsonrpc":"2.0","id":6,"method":42}`, -32600, "6"},
		{"method null", `{"jsonrpc":"2.0","id":"m","method":null}`, -32600, `"m"`},
		{"missing method", `{"jsonrpc":"2.0","id":7}`, -32600, "7"},
		{"params a string", `{"jsonrpc":"2.0","id":"p","method":"tools/list","params":"x"}`, -32600, `"p"`},
		{"request with result", `{"jsonrpc":"2.0","id":"r","method":"ping","result":{}}`, -32600, `"r"`},
		{"repeated id", `{"jsonrpc":"2.0","id":10,"id":{},"method":"ping"}`, -32600, "null"},
		{"deep nesting 10k", deepParams(10000), -32600, "8"},
		{"deep nesting past the limit", deepParams(DefaultMaxDepth), -32600, "8"},
		{"nesting at the limit", deepParams(DefaultMaxDepth - 2), 0, "8"},
		{"17 MiB line", `{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"` + strings.Repeat("a", 17<<20) + `"}}`, -32600, "null"},
		{"empty line", "", 0, ""},
		{"whitespace line", " \t  \r", 0, ""},
		{"scalar", "42", -32600, "null"},
		{"null", "null", -32600, "null"},
		{"string", `"hello"`, -32600, "null"},
		{"response with result and error", `{"jsonrpc":"2.0","id":3,"result":{},"error":{"code":1,"message":"x"}}`, -32600, "null"},
		{"response without id", `{"jsonrpc":"2.0","result":{}}`, -32600, "null"},
		{"response with a bad error", `{"jsonrpc":"2.0","id":3,"error":"bad"}`, -32600, "null"},
		{"result with null id", `{"jsonrpc":"2.0","id":null,"result":{}}`, -32600, "null"},
		{"error response with null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`, 0, ""},
		{"response to no request", `{"jsonrpc":"2.0","id":99,"result":{}}`, 0, ""},
		{"unknown method", `{"jsonrpc":"2.0","id":12,"method":"no/such/method"}`, -32601, "12"},
		{"too many members", `{"jsonrpc":"2.0","id":13,"method":"ping"` + strings.Repeat(`,"x":0`, maxParts) + `}`, -32600, "null"},
		{"notification with odd params", `{"jsonrpc":"2.0","method":"notifications/whatever","params":{"a":[1,2]}}`, 0, ""},
	}
}

// check sends c's line and requires its reply, then that the session
// still answers tools/list.
func (c malformedCase) check(t testing.TB, s *lineSession) {
	t.Helper()
	s.send(t, c.line)
	if c.id != "" {
		r := s.next(t)
		require.Equal(t, c.id, string(r.ID), "reply: %.300s", r.raw)
		if c.code == 0 {
			require.Nil(t, r.Error, "reply: %.300s", r.raw)
		} else {
			require.NotNil(t, r.Error, "reply: %.300s", r.raw)
			require.Equal(t, c.code, r.Error.Code, "reply: %.300s", r.raw)
		}
	}
	s.probe(t)
}

func TestLineTransportMalformed(t *testing.T) {
	t.Parallel()
	for _, c := range malformedCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startLineSession(t, nil, 0, legacyProtocol)
			c.check(t, s)
		})
	}
}

// TestLineTransportOneSession sends every bad line, in turn, into one
// session.
func TestLineTransportOneSession(t *testing.T) {
	t.Parallel()
	s := startLineSession(t, nil, 0, legacyProtocol)
	for _, c := range malformedCases() {
		c.check(t, s)
	}
	require.NoError(t, s.in.Close())
	select {
	case err := <-s.done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return at the end of the input")
	}
}

func TestLineTransportBeforeInitialize(t *testing.T) {
	t.Parallel()
	s := startLineSession(t, nil, 0, "")
	for _, c := range []malformedCase{
		{"garbage", "}{", -32700, "null"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, -32600, "null"},
		{"id float", `{"jsonrpc":"2.0","id":0.5,"method":"ping"}`, -32600, "null"},
	} {
		c.check(t, s)
	}
}

// TestLineTransportBatch2025_03_26 checks batches where the protocol has
// them: one array answers each batch, an element at a time.
func TestLineTransportBatch2025_03_26(t *testing.T) {
	t.Parallel()
	s := startLineSession(t, nil, 0, "2025-03-26")
	s.send(t, `[{"jsonrpc":"2.0","id":1,"method":"ping"},`+
		`{"jsonrpc":"2.0","method":"notifications/whatever"},`+
		`42,`+
		`{"jsonrpc":"2.0","id":{"bad":1},"method":"ping"},`+
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"},`+
		`{"jsonrpc":"2.0","id":2,"method":"ping"},`+
		`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{}},`+
		`{"jsonrpc":"2.0","id":4,"method":"ping","params":{"x":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`}}]`)
	var replies []reply
	line := s.nextLine(t)
	require.NoError(t, json.Unmarshal(line, &replies), "batch reply %s", line)
	require.Len(t, replies, 7, "batch reply %s", line)
	type want struct {
		id   string
		code int64
	}
	wants := []want{{"1", 0}, {"null", -32600}, {"null", -32600}, {"2", 0}, {"null", -32600}, {"3", -32600}, {"4", -32600}}
	for i, w := range wants {
		r := replies[i]
		require.Equal(t, w.id, string(r.ID), "element %d of %s", i, line)
		if w.code == 0 {
			require.Nil(t, r.Error, "element %d of %s", i, line)
		} else {
			require.NotNil(t, r.Error, "element %d of %s", i, line)
			require.Equal(t, w.code, r.Error.Code, "element %d of %s", i, line)
		}
	}
	require.Contains(t, string(replies[3].Result), "jobs_submit")

	// A batch of notifications only gets no reply; one of bad elements
	// only gets its errors at once.
	s.send(t, `[{"jsonrpc":"2.0","method":"notifications/a"},{"jsonrpc":"2.0","method":"notifications/b"}]`)
	s.send(t, `[1,true]`)
	line = s.nextLine(t)
	require.NoError(t, json.Unmarshal(line, &replies), "batch reply %s", line)
	require.Len(t, replies, 2)
	for _, r := range replies {
		require.Equal(t, "null", string(r.ID))
		require.EqualValues(t, -32600, r.Error.Code)
	}
	for _, c := range []malformedCase{
		{"empty batch", "[]", -32600, "null"},
		{"garbage in a batch", "[1,", -32700, "null"},
		{"batch too long", "[" + strings.Repeat(`{"jsonrpc":"2.0","method":"notifications/x"},`, maxParts) + "1]", -32600, "null"},
	} {
		c.check(t, s)
	}
	s.probe(t)
}

// TestLineTransportRequestIDInFlight checks that a request reusing the id
// of one still running is refused without taking its id, and that the id
// is free again once answered.
func TestLineTransportRequestIDInFlight(t *testing.T) {
	t.Parallel()
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: fake, Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	s := startLineSession(t, srv, 0, legacyProtocol)
	job := s.submitSeed(t, 50)

	// jobs_wait holds id 51 until the job changes or it is canceled.
	s.send(t, `{"jsonrpc":"2.0","id":51,"method":"tools/call","params":{"name":"jobs_wait","arguments":{"jobId":"`+job+`","timeoutS":30}}}`)
	s.send(t, `{"jsonrpc":"2.0","id":51,"method":"ping"}`)
	r := s.next(t)
	require.Equal(t, "null", string(r.ID), "%s", r.raw)
	require.NotNil(t, r.Error, "%s", r.raw)
	require.EqualValues(t, -32600, r.Error.Code)
	require.Contains(t, r.Error.Message, "51")
	s.probe(t)
	s.send(t, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":51}}`)
	for {
		line := s.nextLine(t)
		if bytes.Contains(line, []byte(`"id":51`)) {
			break
		}
	}
	s.send(t, `{"jsonrpc":"2.0","id":51,"method":"ping"}`)
	r = s.next(t)
	require.Equal(t, "51", string(r.ID), "%s", r.raw)
	require.Nil(t, r.Error, "%s", r.raw)
}

// submitSeed submits the seed spec and returns the job id.
func (s *lineSession) submitSeed(t testing.TB, id int) string {
	t.Helper()
	s.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"jobs_submit","arguments":{"spec":%s}}}`, id, seedSpec))
	r := s.next(t)
	require.Equal(t, strconv.Itoa(id), string(r.ID), "%s", r.raw)
	var sub struct {
		StructuredContent struct {
			JobID string `json:"jobId"`
		} `json:"structuredContent"`
	}
	require.NoError(t, json.Unmarshal(r.Result, &sub), "%s", r.raw)
	require.NotEmpty(t, sub.StructuredContent.JobID, "%s", r.raw)
	return sub.StructuredContent.JobID
}

// rest returns every line the server writes until it closes its output,
// and the session's end.
func (s *lineSession) rest(t testing.TB) (lines []string, end error) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				select {
				case end = <-s.done:
				case <-timeout:
					t.Fatal("the output closed but the session did not end")
				}
				return lines, end
			}
			lines = append(lines, string(line))
		case <-timeout:
			t.Fatalf("the session did not end; lines so far: %q", lines)
		}
	}
}

// TestLineTransportAnswersInFlightAtEndOfInput: a peer that writes its
// requests and then closes its end (a script piping requests into the
// relay, or a client ending its session) still gets the answer to every
// request it sent, including one that takes a while, and then the session
// ends.
func TestLineTransportAnswersInFlightAtEndOfInput(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{legacyProtocol, "2025-03-26"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			s := startLineSession(t, nil, 0, protocol)
			job := s.submitSeed(t, 1)
			// jobs_wait holds id 2 for a second: the job does not change.
			s.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"jobs_wait","arguments":{"jobId":"`+job+`","timeoutS":1}}}`)
			s.send(t, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)
			if protocol == "2025-03-26" {
				// A batch is answered as one line, after its slowest request.
				s.send(t, `[{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"jobs_wait","arguments":{"jobId":"`+job+`","timeoutS":1}}},{"jsonrpc":"2.0","id":5,"method":"ping"}]`)
			}
			require.NoError(t, s.in.Close())
			lines, end := s.rest(t)
			got := map[string]bool{}
			for _, line := range lines {
				var rs []reply
				if strings.HasPrefix(line, "[") {
					require.NoError(t, json.Unmarshal([]byte(line), &rs), "%s", line)
				} else {
					var r reply
					require.NoError(t, json.Unmarshal([]byte(line), &r), "%s", line)
					rs = []reply{r}
				}
				for _, r := range rs {
					require.Nil(t, r.Error, "%s", line)
					got[string(r.ID)] = true
				}
			}
			want := map[string]bool{"2": true, "3": true}
			if protocol == "2025-03-26" {
				want["4"], want["5"] = true, true
			}
			require.Equal(t, want, got, "the ids answered after the input ended (%d lines)", len(lines))
			require.NoError(t, ignoreEOF(end))
		})
	}
}

// TestLineTransportDrainTimeout: a request still unanswered DrainTimeout
// after the input ended no longer holds the session open.
func TestLineTransportDrainTimeout(t *testing.T) {
	t.Parallel()
	s := startLineSessionWith(t, nil, LineTransport{DrainTimeout: 200 * time.Millisecond}, legacyProtocol)
	job := s.submitSeed(t, 1)
	s.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"jobs_wait","arguments":{"jobId":"`+job+`","timeoutS":30}}}`)
	s.send(t, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	r := s.next(t)
	require.Equal(t, "3", string(r.ID), "%s", r.raw)
	start := time.Now()
	require.NoError(t, s.in.Close())
	lines, end := s.rest(t)
	require.Empty(t, lines, "jobs_wait (30 s) cannot have been answered")
	require.Less(t, time.Since(start), 20*time.Second, "the session outlived its drain timeout by far")
	require.ErrorContains(t, end, "1 requests unanswered")
}

// TestLineTransportFrameLimit checks the limit at its edge: a line of
// MaxFrame bytes is read, one byte more is refused and skipped to its
// newline.
func TestLineTransportFrameLimit(t *testing.T) {
	t.Parallel()
	const limit = 4096
	s := startLineSession(t, nil, limit, legacyProtocol)
	base := `{"jsonrpc":"2.0","id":"edge","method":"ping","params":{"pad":""}}`
	fit := strings.Replace(base, `""`, `"`+strings.Repeat("x", limit-len(base))+`"`, 1)
	require.Len(t, fit, limit)
	(malformedCase{"at the limit", fit, 0, `"edge"`}).check(t, s)
	over := strings.Replace(base, `""`, `"`+strings.Repeat("x", limit-len(base)+1)+`"`, 1)
	(malformedCase{"past the limit", over, -32600, "null"}).check(t, s)
	// The tail of a long line is not taken for a line of its own.
	(malformedCase{"long line with a request in its tail", strings.Repeat(" ", limit) + `{"jsonrpc":"2.0","id":"tail","method":"ping"}`, -32600, "null"}).check(t, s)
}

// FuzzScanJSON checks the scanner against encoding/json: the same texts
// are valid, and the top-level members and elements it finds are those
// encoding/json decodes.
func FuzzScanJSON(f *testing.F) {
	for _, c := range malformedCases() {
		if len(c.line) < 1<<16 {
			f.Add([]byte(c.line))
		}
	}
	for _, s := range []string{`{}`, `[]`, `[1,[2,{"a":"b\u00e9\n"}],-0.5e+3]`, `{"a":}`, `[1,]`, `"\x"`, `01`, `-`, `1.`, `1e`, `tru`, `nul`, `{"a" 1}`, `[1 2]`, " \t\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := scanJSON(b)
		if sc.depth >= 10000 || bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) >= 10000 {
			return // encoding/json refuses such depths outright
		}
		require.Equal(t, json.Valid(b), err == nil, "scanJSON error %v on %q", err, b)
		if err != nil {
			return
		}
		v := decodeAny(t, b)
		switch v := v.(type) {
		case map[string]any:
			require.Equal(t, byte('{'), sc.kind)
			keys := map[string]bool{}
			for _, m := range sc.members {
				k, err := decodeString(m.key)
				require.NoError(t, err)
				keys[k] = true
				require.True(t, json.Valid(m.value), "member value %q", m.value)
			}
			if sc.parts <= maxParts {
				require.Len(t, keys, len(v))
			}
		case []any:
			require.Equal(t, byte('['), sc.kind)
			require.Equal(t, len(v), sc.parts)
			require.Len(t, sc.elems, min(len(v), maxParts))
			for i, e := range sc.elems {
				require.Equal(t, v[i], decodeAny(t, e))
			}
		}
	})
}

// decodeAny decodes one JSON value, numbers as json.Number.
func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}

// countHandler counts the records logged at warning level.
type countHandler struct {
	slog.Handler
	warnings *atomic.Int64
}

func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warnings.Add(1)
	}
	return nil
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

// TestLineTransportLogLimit checks that a flood of bad lines logs the
// first few and then one in a thousand.
func TestLineTransportLogLimit(t *testing.T) {
	t.Parallel()
	var warnings atomic.Int64
	srv, err := New(Config{Jobs: newFakeJobs(), Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- srv.Run(context.Background(), &LineTransport{Reader: inR, Writer: outW,
			Logger: slog.New(countHandler{slog.DiscardHandler, &warnings})})
	}()
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	_, err = io.WriteString(inW, strings.Repeat("garbage\n", 2500))
	require.NoError(t, err)
	require.NoError(t, inW.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return at the end of the input")
	}
	require.EqualValues(t, logFirst+2, warnings.Load())
}

// ignoreEOF is err unless it says the input ended, the normal end of a
// line session.
func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
