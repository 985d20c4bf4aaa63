package mcpserver

import (
	"bytes"
	"io"
	"mime"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// GuardHTTP wraps a Streamable HTTP MCP handler (mcp.StreamableHTTPHandler)
// so that a POSTed JSON body that is not JSON-RPC 2.0 is answered with HTTP
// 400 and a JSON-RPC error object, -32700 or -32600 with the id rules of
// LineTransport, where the SDK answers a plain-text 400; and so that ids
// the SDK would alter (1.5 becomes 1) or objects nested deeper than
// DefaultMaxDepth are refused the same way. A valid error response with a
// null id, which answers nothing, gets 202 Accepted. Batches pass to the
// handler, which accepts or refuses them by protocol version, once each
// element is a valid message. Bodies over maxBody bytes (0:
// mcp.DefaultMaxRequestBodyBytes) pass unread, for the handler to refuse.
func GuardHTTP(next http.Handler, maxBody int64) http.Handler {
	if maxBody <= 0 {
		maxBody = mcp.DefaultMaxRequestBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			http.Error(w, "failed to read body", http.StatusBadRequest)
			return
		}
		if int64(len(body)) > maxBody {
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			next.ServeHTTP(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rerr, drop := checkBody(body, r.Header.Get("MCP-Protocol-Version"))
		switch {
		case rerr != nil:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(rerr.encode())
		case drop:
			w.WriteHeader(http.StatusAccepted)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// checkBody checks a POSTed body as LineTransport checks a line, at the
// protocol version of the request's header (none: 2025-03-26, as the SDK
// assumes). drop is true for a lone error response with a null id.
func checkBody(body []byte, version string) (rerr *rpcError, drop bool) {
	data := bytes.Trim(body, " \t\r\n")
	if len(data) == 0 {
		return nil, false // the handler refuses an empty body
	}
	sc, err := scanJSON(data)
	if err != nil {
		return &rpcError{code: jsonrpc.CodeParseError, message: "Parse error: " + err.Error(), id: nullID}, false
	}
	if sc.kind != '[' {
		msg, rerr := checkMessage(sc, DefaultMaxDepth)
		return rerr, rerr == nil && msg == nil
	}
	switch {
	case len(sc.elems) == 0:
		return invalidRequest(nullID, "empty batch"), false
	case version >= batchesUntil:
		return invalidRequest(nullID, "JSON-RPC batches are not supported in protocol version %s", version), false
	case sc.parts > maxParts:
		return invalidRequest(nullID, "batch of more than %d messages", maxParts), false
	}
	for _, elem := range sc.elems {
		esc, err := scanJSON(elem)
		if err != nil { // cannot happen: elem is part of a valid text
			return &rpcError{code: jsonrpc.CodeParseError, message: "Parse error: " + err.Error(), id: nullID}, false
		}
		if _, rerr := checkMessage(esc, DefaultMaxDepth); rerr != nil {
			return rerr, false
		}
	}
	return nil, false
}
