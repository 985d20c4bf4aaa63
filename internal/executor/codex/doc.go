// Package codex drives the Codex CLI (`codex exec --json`) as a relay
// executor: its command line, its JSONL event stream, its sessions (for
// follow-ups with `codex exec resume`) and its token usage.
package codex
