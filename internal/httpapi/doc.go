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
