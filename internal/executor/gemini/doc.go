// Package gemini drives the Gemini CLI (`gemini -p PROMPT -o stream-json`)
// as a relay executor: its command line, approval modes and workspace
// trust, a Gemini home of the run's own with the relay's MCP endpoint and
// policy, its event stream, exit codes, sessions (carried over to a
// follow-up's new workspace) and token usage, and its health check.
package gemini
