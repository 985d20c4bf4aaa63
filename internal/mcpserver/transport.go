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
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Defaults of LineTransport.
const (
	// DefaultMaxFrame bounds one inbound line, in bytes (its newline not
	// counted): 16 MiB, the SDK's own limit.
	DefaultMaxFrame = 16 << 20
	// DefaultMaxDepth bounds how deep objects and arrays may nest in one
	// message. MCP messages nest a handful of levels; tool arguments a few
	// more.
	DefaultMaxDepth = 128
)

// batchesUntil is the first protocol version without JSON-RPC batches
// (2025-06-18 removed them; 2025-03-26 and 2024-11-05 have them).
const batchesUntil = "2025-06-18"

// ErrFrameTooLong means that an inbound line is longer than the
// transport's MaxFrame. The line is skipped and answered with an error;
// the session goes on.
var ErrFrameTooLong = errors.New("JSON-RPC frame too long")

// LineTransport is an mcp.Transport over newline-delimited JSON-RPC 2.0
// (MCP's stdio framing) that survives whatever its peer sends. The SDK's
// own IOTransport ends the session on the first line it cannot decode;
// this one reads and checks each line itself and answers a bad one with a
// JSON-RPC error, then goes on with the next:
//
//   - a line longer than MaxFrame is read to its newline, discarded and
//     answered with -32600 Invalid Request (id null);
//   - a leading UTF-8 byte order mark is dropped; a line that is empty or
//     only whitespace is skipped without a reply;
//   - a line that is not exactly one JSON value gets -32700 Parse error
//     (id null);
//   - JSON that is not a JSON-RPC 2.0 request, notification or response
//     (not an object, "jsonrpc" other than "2.0", an id that is not a
//     string or an integer of at most 2^53 in magnitude, a null request id, no or
//     a non-string "method", params neither object nor array, a malformed
//     response, repeated members, objects and arrays nested deeper than
//     MaxDepth, a request id that is still in flight) gets -32600 Invalid
//     Request, echoing the id of a request whose id is valid and null
//     otherwise; an error response with a null id is valid JSON-RPC but
//     answers nothing, so it is dropped without a reply (a peer echoing
//     these errors back cannot start a loop);
//   - a batch (a JSON array) is handled as the negotiated protocol version
//     says: after an initialize that settled on 2025-03-26 or older, its
//     elements are checked one by one, the good ones handed to the server,
//     and one array answers the batch (an error per bad element, a
//     response per request); before initialize and from 2025-06-18 on,
//     which have no batches, the whole line gets one -32600 (id null), as
//     does an empty array.
//
// Every good message reaches the server as the peer sent it. Error replies
// and the server's own messages are written whole, one line each, under one
// mutex, so they never interleave.
//
// When the input ends (the peer closed its end, as a client does to end a
// stdio session, or as a script piping requests in does once it has written
// them), the session ends only after every request read so far has been
// answered, so that no request in flight loses its response; DrainTimeout
// bounds that wait.
type LineTransport struct {
	// Reader carries the peer's messages. Closed when the session ends.
	Reader io.ReadCloser
	// Writer carries the server's messages and the error replies. Closed
	// when the session ends.
	Writer io.WriteCloser
	// MaxFrame bounds one inbound line in bytes. Defaults to
	// DefaultMaxFrame.
	MaxFrame int
	// MaxDepth bounds the nesting of objects and arrays in one message.
	// Defaults to DefaultMaxDepth.
	MaxDepth int
	// Logger receives a warning per rejected line (never its content):
	// the first ten of a session, then every thousandth. Defaults to
	// discarding.
	Logger *slog.Logger
	// DrainTimeout bounds how long the session waits, once the input has
	// ended, for the responses to the requests still in flight. Defaults
	// to DefaultDrainTimeout.
	DrainTimeout time.Duration
}

// DefaultDrainTimeout is LineTransport's default DrainTimeout: longer than
// the longest call a client can make (jobs_wait waits at most 50 s).
const DefaultDrainTimeout = 60 * time.Second

// Connect implements mcp.Transport. It starts the goroutine that reads
// lines; like the SDK's, it ends when the Reader returns an error, which
// closing it should cause.
func (t *LineTransport) Connect(context.Context) (mcp.Connection, error) {
	c := &lineConn{
		rc: t.Reader, wc: t.Writer, maxFrame: t.MaxFrame, maxDepth: t.MaxDepth, log: t.Logger,
		drainTimeout: t.DrainTimeout,
		frames:       make(chan frame), closed: make(chan struct{}),
		inflight: map[jsonrpc.ID]*batchSlot{}, answered: make(chan struct{}, 1),
	}
	if c.drainTimeout <= 0 {
		c.drainTimeout = DefaultDrainTimeout
	}
	if c.maxFrame <= 0 {
		c.maxFrame = DefaultMaxFrame
	}
	if c.maxDepth <= 0 {
		c.maxDepth = DefaultMaxDepth
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	go c.readLines()
	return c, nil
}

// frame is one inbound line, or the error that ended the input.
type frame struct {
	data    []byte
	tooLong bool
	err     error
}

// lineConn is a LineTransport's connection.
type lineConn struct {
	rc       io.ReadCloser
	wc       io.WriteCloser
	maxFrame int
	maxDepth int
	log      *slog.Logger
	// drainTimeout bounds the wait for in-flight responses at the end of
	// the input.
	drainTimeout time.Duration

	frames chan frame
	// queue holds messages read but not yet returned (the rest of a
	// batch), and rejected counts the lines and batch elements refused.
	// Only Read uses them, and Read calls are serialized.
	queue    []jsonrpc.Message
	rejected int

	// wmu serializes whole-line writes.
	wmu sync.Mutex

	// mu guards the fields below, which Read and Write share.
	mu sync.Mutex
	// version is the protocol version the initialize response settled on.
	version string
	// initID is the id of the initialize request awaiting its response.
	initID *jsonrpc.ID
	// inflight holds the ids of the peer's requests not yet answered:
	// with the batch slot that awaits the response, or nil.
	inflight map[jsonrpc.ID]*batchSlot
	// writing counts the responses taken out of inflight whose lines are
	// not written yet.
	writing int
	// answered receives a signal (never blocking) whenever a response to
	// a request of inflight has been written.
	answered chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

// batch collects the replies to one inbound batch.
type batch struct {
	replies [][]byte // one per request or rejected element, in order
	pending int      // requests not yet answered
}

// batchSlot is where the response to one request of a batch goes.
type batchSlot struct {
	b *batch
	i int
}

// readLines reads the input line by line and hands each to Read.
func (c *lineConn) readLines() {
	br := bufio.NewReaderSize(c.rc, 64<<10)
	for {
		data, tooLong, err := readFrame(br, c.maxFrame)
		if len(data) > 0 || tooLong {
			select {
			case c.frames <- frame{data: data, tooLong: tooLong}:
			case <-c.closed:
				return
			}
		}
		if err != nil {
			select {
			case c.frames <- frame{err: err}:
			case <-c.closed:
			}
			return
		}
	}
}

// readFrame reads one line without its newline. A line longer than limit
// is read to its end but not kept: tooLong reports it. The last line of the
// input needs no newline.
func readFrame(br *bufio.Reader, limit int) (data []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if err == nil {
			chunk = chunk[:len(chunk)-1]
		}
		if !tooLong {
			if len(data)+len(chunk) > limit {
				tooLong, data = true, nil
			} else {
				data = append(data, chunk...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return data, tooLong, err
		}
	}
}

// Read implements mcp.Connection: it returns the next good message,
// answering every bad line on the way.
func (c *lineConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(c.queue) > 0 {
			msg := c.queue[0]
			c.queue = c.queue[1:]
			return msg, nil
		}
		var f frame
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, io.EOF
		case f = <-c.frames:
		}
		if f.err != nil {
			if errors.Is(f.err, io.EOF) {
				if err := c.drain(ctx); err != nil {
					return nil, err
				}
			}
			return nil, f.err
		}
		if err := c.accept(f); err != nil {
			return nil, err
		}
	}
}

// drain waits, at the end of the input, until every request read so far
// has been answered, the connection is closed, ctx is done or the drain
// timeout passes; only the first two are not errors.
func (c *lineConn) drain(ctx context.Context) error {
	timer := time.NewTimer(c.drainTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		n := len(c.inflight) + c.writing
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-c.answered:
		case <-c.closed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			c.log.Warn("mcp session: input ended; requests still unanswered after the drain timeout are dropped",
				"requests", n, "timeout", c.drainTimeout.String())
			return fmt.Errorf("mcpserver: %d requests unanswered %s after the input ended", n, c.drainTimeout)
		}
	}
}

// rpcError is a JSON-RPC error reply to a bad line or batch element.
type rpcError struct {
	code    int64
	message string
	id      json.RawMessage // the request's id, or null
}

var nullID = json.RawMessage("null")

func invalidRequest(id json.RawMessage, format string, args ...any) *rpcError {
	return &rpcError{code: jsonrpc.CodeInvalidRequest, message: "Invalid Request: " + fmt.Sprintf(format, args...), id: id}
}

func (e *rpcError) encode() []byte {
	type wire struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc.Error  `json:"error"`
	}
	werr := &jsonrpc.Error{Code: e.code, Message: e.message}
	b, err := json.Marshal(wire{"2.0", e.id, werr})
	if err != nil {
		// Only an id that is not JSON could fail; ids are re-encoded, so
		// this is a fallback that cannot fail in turn.
		b, _ = json.Marshal(wire{"2.0", nullID, werr})
	}
	return b
}

// accept checks one line: it queues the messages to hand to the server
// and writes the replies to what is wrong. It fails only when a reply
// cannot be written.
func (c *lineConn) accept(f frame) error {
	if f.tooLong {
		return c.reject(invalidRequest(nullID, "%v: longer than %d bytes", ErrFrameTooLong, c.maxFrame), 0)
	}
	data := bytes.TrimPrefix(f.data, []byte("\xef\xbb\xbf"))
	data = bytes.Trim(data, " \t\r\n")
	if len(data) == 0 {
		return nil
	}
	sc, err := scanJSON(data)
	if err != nil {
		return c.reject(&rpcError{code: jsonrpc.CodeParseError, message: "Parse error: " + err.Error(), id: nullID}, len(data))
	}
	if sc.kind == '[' {
		return c.acceptBatch(sc, len(data))
	}
	msg, rerr := checkMessage(sc, c.maxDepth)
	if rerr != nil {
		return c.reject(rerr, len(data))
	}
	if msg == nil {
		c.log.Debug("dropped an error response with a null id")
		return nil
	}
	c.mu.Lock()
	rerr = c.trackLocked(msg, nil)
	c.mu.Unlock()
	if rerr != nil {
		return c.reject(rerr, len(data))
	}
	c.queue = append(c.queue, msg)
	return nil
}

// trackLocked records a request of the peer as in flight, to be answered
// in slot (nil: on its own line), or refuses it when its id is in flight
// already. The first initialize is remembered so that its response tells
// the protocol version.
func (c *lineConn) trackLocked(msg jsonrpc.Message, slot *batchSlot) *rpcError {
	req, ok := msg.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		return nil
	}
	if _, busy := c.inflight[req.ID]; busy {
		// Not echoed: the error would be taken for the answer to the
		// request that holds the id.
		return invalidRequest(nullID, "request id %s is already in use", idJSON(req.ID))
	}
	c.inflight[req.ID] = slot
	if req.Method == "initialize" && c.version == "" && c.initID == nil {
		id := req.ID
		c.initID = &id
	}
	return nil
}

// acceptBatch handles a line that is a JSON array.
func (c *lineConn) acceptBatch(sc jsonScan, size int) error {
	if len(sc.elems) == 0 {
		return c.reject(invalidRequest(nullID, "empty batch"), size)
	}
	c.mu.Lock()
	version := c.version
	c.mu.Unlock()
	if version == "" {
		return c.reject(invalidRequest(nullID, "JSON-RPC batches are not accepted before initialize"), size)
	}
	if version >= batchesUntil {
		return c.reject(invalidRequest(nullID, "JSON-RPC batches are not supported in protocol version %s", version), size)
	}
	if sc.parts > maxParts {
		return c.reject(invalidRequest(nullID, "batch of more than %d messages", maxParts), size)
	}
	msgs := make([]jsonrpc.Message, len(sc.elems))
	errs := make([]*rpcError, len(sc.elems))
	for i, elem := range sc.elems {
		esc, err := scanJSON(elem)
		if err != nil { // cannot happen: elem is part of a valid text
			errs[i] = &rpcError{code: jsonrpc.CodeParseError, message: "Parse error: " + err.Error(), id: nullID}
			continue
		}
		msgs[i], errs[i] = checkMessage(esc, c.maxDepth)
		if req, ok := msgs[i].(*jsonrpc.Request); ok && req.Method == "initialize" {
			msgs[i], errs[i] = nil, invalidRequest(idJSON(req.ID), "initialize must not be part of a batch")
		}
	}
	b := &batch{}
	var queue []jsonrpc.Message
	c.mu.Lock()
	for i, msg := range msgs {
		rerr := errs[i]
		if rerr == nil && msg != nil {
			slot := &batchSlot{b: b, i: len(b.replies)}
			if rerr = c.trackLocked(msg, slot); rerr == nil {
				queue = append(queue, msg)
				if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
					b.replies = append(b.replies, nil)
					b.pending++
				}
			}
		}
		if rerr != nil {
			c.logReject("batch element", rerr, len(sc.elems[i]))
			b.replies = append(b.replies, rerr.encode())
		}
	}
	done := b.pending == 0 && len(b.replies) > 0
	c.mu.Unlock()
	c.queue = append(c.queue, queue...)
	if done {
		return c.writeLine(joinBatch(b.replies))
	}
	return nil
}

// Rejections logged: the first logFirst of a session, then every
// logEvery-th, so that a flood of bad lines cannot flood the log.
const (
	logFirst = 10
	logEvery = 1000
)

// logReject logs a rejected line or batch element, within the limits.
func (c *lineConn) logReject(what string, e *rpcError, size int) {
	c.rejected++
	if c.rejected <= logFirst || c.rejected%logEvery == 0 {
		c.log.Warn("rejected a malformed JSON-RPC "+what, "code", e.code, "reason", e.message, "bytes", size,
			"rejected_in_session", c.rejected)
	}
}

// reject logs and answers one bad line.
func (c *lineConn) reject(e *rpcError, size int) error {
	c.logReject("line", e, size)
	return c.writeLine(e.encode())
}

func joinBatch(replies [][]byte) []byte {
	out := []byte{'['}
	out = append(out, bytes.Join(replies, []byte{','})...)
	return append(out, ']')
}

// writeLine writes one message and its newline in a single write.
func (c *lineConn) writeLine(data []byte) error {
	line := make([]byte, 0, len(data)+1)
	line = append(append(line, data...), '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.wc.Write(line); err != nil {
		return fmt.Errorf("mcpserver: write: %w", err)
	}
	return nil
}

// Write implements mcp.Connection. The response to a request of a batch
// waits for the batch's other responses and goes out with them.
func (c *lineConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("mcpserver: encode message: %w", err)
	}
	if resp, ok := msg.(*jsonrpc.Response); ok {
		var out []byte
		c.mu.Lock()
		slot, tracked := c.inflight[resp.ID]
		delete(c.inflight, resp.ID)
		if tracked {
			// Counted until its line is written: the end of the input
			// waits for it (drain).
			c.writing++
		}
		if c.initID != nil && *c.initID == resp.ID {
			c.initID = nil
			var res struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			if resp.Error == nil && json.Unmarshal(resp.Result, &res) == nil {
				c.version = res.ProtocolVersion
			}
		}
		if tracked && slot != nil {
			slot.b.replies[slot.i] = data
			slot.b.pending--
			if slot.b.pending == 0 {
				out = joinBatch(slot.b.replies)
			}
		}
		c.mu.Unlock()
		if tracked {
			defer c.written()
		}
		if tracked && slot != nil {
			if out == nil {
				return nil
			}
			data = out
		}
	}
	return c.writeLine(data)
}

// written records that a tracked response has been written (or joined
// its batch) and wakes a drain waiting for it.
func (c *lineConn) written() {
	c.mu.Lock()
	c.writing--
	c.mu.Unlock()
	select {
	case c.answered <- struct{}{}:
	default:
	}
}

// Close implements mcp.Connection: it closes the Reader and the Writer.
func (c *lineConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.closeErr = errors.Join(c.rc.Close(), c.wc.Close())
	})
	return c.closeErr
}

// SessionID implements mcp.Connection; a line stream has none.
func (c *lineConn) SessionID() string { return "" }

// checkMessage turns one JSON object into the message it stands for, or
// says what makes it an invalid JSON-RPC 2.0 message. Both are nil for an
// error response with a null id, which is valid but answers nothing.
func checkMessage(sc jsonScan, maxDepth int) (jsonrpc.Message, *rpcError) {
	if sc.kind != '{' {
		return nil, invalidRequest(nullID, "a JSON-RPC message must be an object")
	}
	if sc.parts > maxParts {
		return nil, invalidRequest(nullID, "more than %d members", maxParts)
	}
	fields := map[string][]byte{}
	for _, m := range sc.members {
		k, err := decodeString(m.key)
		if err != nil {
			return nil, invalidRequest(nullID, "bad member name")
		}
		switch k {
		case "jsonrpc", "id", "method", "params", "result", "error":
			if _, dup := fields[k]; dup {
				return nil, invalidRequest(nullID, "member %q appears more than once", k)
			}
			fields[k] = m.value
		}
	}
	rawID, hasID := fields["id"]
	id, idOK := parseID(rawID)
	_, hasMethod := fields["method"]
	_, hasResult := fields["result"]
	_, hasError := fields["error"]
	// The id is echoed only for what is meant as a request: a response's
	// id names one of the server's own requests.
	echo := nullID
	if hasID && idOK && id.IsValid() && (hasMethod || !hasResult && !hasError) {
		echo = idJSON(id)
	}
	if sc.depth > maxDepth {
		return nil, invalidRequest(echo, "objects and arrays nested deeper than %d levels", maxDepth)
	}
	if v, err := decodeString(fields["jsonrpc"]); err != nil || v != "2.0" {
		return nil, invalidRequest(echo, `"jsonrpc" must be "2.0"`)
	}
	if hasID && !idOK {
		return nil, invalidRequest(nullID, "id must be a string or an integer of at most 2^53 in magnitude")
	}
	if hasMethod {
		method, err := decodeString(fields["method"])
		if err != nil {
			return nil, invalidRequest(echo, `"method" must be a string`)
		}
		if hasResult || hasError {
			return nil, invalidRequest(echo, "a request has no result or error")
		}
		if hasID && !id.IsValid() {
			return nil, invalidRequest(nullID, "a request id must not be null")
		}
		params := fields["params"]
		switch {
		case params == nil || string(params) == "null":
			params = nil
		case params[0] != '{' && params[0] != '[':
			return nil, invalidRequest(echo, `"params" must be an object or an array`)
		}
		return &jsonrpc.Request{ID: id, Method: method, Params: params}, nil
	}
	if !hasResult && !hasError {
		return nil, invalidRequest(echo, `"method" is missing`)
	}
	if hasResult && hasError {
		return nil, invalidRequest(nullID, "a response has a result or an error, not both")
	}
	if !hasID {
		return nil, invalidRequest(nullID, "a response needs an id")
	}
	if hasResult {
		if !id.IsValid() {
			return nil, invalidRequest(nullID, "a result needs a non-null id")
		}
		return &jsonrpc.Response{ID: id, Result: fields["result"]}, nil
	}
	werr, ok := parseWireError(fields["error"])
	if !ok {
		return nil, invalidRequest(nullID, `"error" must be an object with an integer code and a string message`)
	}
	if !id.IsValid() {
		return nil, nil
	}
	return &jsonrpc.Response{ID: id, Error: werr}, nil
}

// maxExactID is the largest integer a float64 holds exactly (2^53).
const maxExactID = 1 << 53

// parseID parses an id member: a string, an integer of at most 2^53 in
// magnitude, or null (the zero ID). ok is false for any other value.
func parseID(raw []byte) (id jsonrpc.ID, ok bool) {
	switch {
	case raw == nil || string(raw) == "null":
		return jsonrpc.ID{}, true
	case raw[0] == '"':
		s, err := decodeString(raw)
		if err != nil {
			return jsonrpc.ID{}, false
		}
		id, err := jsonrpc.MakeID(s)
		return id, err == nil
	case raw[0] == '-' || isDigit(raw[0]):
		// The SDK carries numeric ids as float64 on their way in, so only
		// integers it can hold exactly are answered faithfully.
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n > maxExactID || n < -maxExactID {
			return jsonrpc.ID{}, false
		}
		id, err := jsonrpc.MakeID(float64(n))
		return id, err == nil
	}
	return jsonrpc.ID{}, false
}

// idJSON encodes a valid id as JSON.
func idJSON(id jsonrpc.ID) json.RawMessage {
	b, err := json.Marshal(id.Raw())
	if err != nil {
		return nullID
	}
	return b
}

// decodeString decodes a JSON string token; it fails on anything else.
func decodeString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", errNotString
	}
	if plainASCII(raw) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %w", errNotString, err)
	}
	return s, nil
}

var errNotString = errors.New("not a JSON string")

// plainASCII reports whether a string token needs no decoding: no escapes,
// no bytes outside ASCII (which encoding/json would check as UTF-8).
func plainASCII(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// parseWireError parses the error member of a response.
func parseWireError(raw []byte) (*jsonrpc.Error, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	sc, err := scanJSON(raw)
	if err != nil || sc.parts > maxParts {
		return nil, false
	}
	var (
		werr            jsonrpc.Error
		hasCode, hasMsg bool
	)
	for _, m := range sc.members {
		k, err := decodeString(m.key)
		if err != nil {
			return nil, false
		}
		switch k {
		case "code":
			if hasCode || len(m.value) == 0 || (m.value[0] != '-' && !isDigit(m.value[0])) {
				return nil, false
			}
			code, err := strconv.ParseInt(string(m.value), 10, 64)
			if err != nil {
				f, ferr := strconv.ParseFloat(string(m.value), 64)
				if ferr != nil || f != float64(int64(f)) {
					return nil, false
				}
				code = int64(f)
			}
			werr.Code, hasCode = code, true
		case "message":
			s, err := decodeString(m.value)
			if hasMsg || err != nil {
				return nil, false
			}
			werr.Message, hasMsg = s, true
		case "data":
			werr.Data = m.value
		}
	}
	return &werr, hasCode && hasMsg
}
