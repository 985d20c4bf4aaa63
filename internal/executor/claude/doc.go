// Package claude drives Claude Code (`claude -p --output-format
// stream-json`) as a relay executor: its command line, permission modes and
// the relay's MCP endpoint for asks and approvals, its stream-json output,
// its sessions and its usage and cost.
package claude
