// Package gemini drives the Gemini CLI (`gemini -p --output-format json`)
// as a relay executor: its command line and approval modes, its JSON
// result, its exit codes, its sessions and its token usage.
package gemini
