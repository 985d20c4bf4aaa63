// Package httpapi owns the Ask/Answer HTTP API that executors and
// answerers talk to: creating asks (POST /asks), long-polling for their
// answers (GET /asks/{askId}/answer?wait=), recording answers
// (POST /answers), listing a job's asks, and streaming a job's audit log
// as Server-Sent Events (GET /jobs/{jobId}/events), resumable with
// Last-Event-ID out of the stored log.
//
// # Authorization
//
// Every route but GET /healthz and GET /attestation-key needs
// "Authorization: Bearer <token>".
// The operator token may do everything. A job token (ask.Tokens.Mint)
// may only create asks for its own job, read the answers to them, and read
// its own job, its artifacts and its log; at /mcp it reaches the executor
// endpoint, where the operator token reaches the orchestrators' MCP
// server. Anything else, including another job's ask, is 403 FORBIDDEN. An ask
// that does not exist is 404 ASK_NOT_FOUND for every caller (ask ids are
// random UUIDs chosen by the executor, so a 404 tells nothing useful about
// other jobs, and it tells an executor that its POST was lost).
//
// With Config.AuthNone no token is checked; Serve then refuses any
// listener that is not on a loopback address.
//
// # Browsers, DNS rebinding and slow clients
//
// Before any route, authentication included, every request (REST, SSE,
// /mcp) is checked:
//
//   - Host: on a loopback listener only localhost, 127.0.0.1 and [::1],
//     the listener's address and Config.BindHost at the listener's port,
//     and Config.AllowedHosts are served; any other Host is 403 FORBIDDEN
//     (field "Host"), so a web page whose name was rebound to 127.0.0.1
//     reaches nothing. Other listeners check Host only when AllowedHosts
//     is set.
//   - Origin, when present: the relay's own origin (plain http at a Host
//     it accepts) and Config.AllowedOrigins; any other, "null" included,
//     is 403 FORBIDDEN (field "Origin"), as the MCP transport requires.
//   - POST with a body: Content-Type must be application/json (or
//     application/*+json), else 415 UNSUPPORTED_MEDIA_TYPE, so that no
//     page can post without a CORS preflight, which this API never
//     grants. A POST without a body (cancel) may omit it.
//
// Serve bounds reading headers (Config.ReadHeaderTimeout), whole requests
// (Config.ReadTimeout: a body still arriving then gets 408
// REQUEST_TIMEOUT and its connection is closed), idle connections and
// header size. Responses have no overall deadline: long polls and event
// streams outlive the read timeouts, and streams bound each write.
//
// # Long polls and streams
//
// A parked GET /asks/{askId}/answer is woken by ask.Service the moment
// the answer is stored in this process. SSE streams subscribe to the
// relay's changes before replaying the stored log, so no event falls
// between replay and live, and on every change of their job they read the
// log after the last event sent; the heartbeat also re-reads it, which
// catches events written by another process. When Serve's context ends,
// long polls answer 204 and streams end at once, so that shutdown is not
// held up by clients.
package httpapi
