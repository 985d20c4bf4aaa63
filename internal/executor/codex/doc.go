// Package codex drives the Codex CLI (`codex exec --json`) as a relay
// executor: its command line (sandbox, approval policy, and the relay's
// executor MCP endpoint configured for the run with -c options, its token
// read from the environment), its JSONL event stream, its sessions (for
// follow-ups with `codex exec resume`, whose token usage it reports per
// run although codex states the thread's running total), and a health
// check for doctor (version and auth mode).
//
// The end-to-end tests in cmd/mcp-task-relay run the real CLI against
// codextest, a fake Responses API.
package codex
