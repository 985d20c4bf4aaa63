// Package claude drives Claude Code (`claude -p --output-format
// stream-json`) as a relay executor: its command line, permission modes and
// the relay's MCP endpoint for asks and approvals, its stream-json output,
// its sessions and its usage and cost.
//
// Permissions follow the job: a read-only job runs in dontAsk mode without
// the write tools and without a permission prompt tool, so nothing but the
// allowed read-only tools runs and nothing is put to an approval; otherwise
// execution.askPolicy picks the mode (untrusted: default, on-request and
// on-failure: acceptEdits, never: acceptEdits without asking), and
// permission prompts go to the relay's relay_approve tool (see
// permissionsFor).
//
// Asks may wait long: the relay's MCP server gets a tool timeout above the
// ask deadline in the run's MCP configuration, and the run's environment
// raises claude's MCP idle timeout and its default Bash timeout (which
// would kill the relay's ask command after 2 minutes) to the same.
//
// Claude keeps sessions per working directory; a follow-up runs in a new
// workspace, so PrepareResume moves the parent's session there before
// `claude --resume`. Parse takes the run's usage from the result's
// modelUsage (the run's own, whole even when claude stops with an error),
// reports a stop at --max-budget-usd as OverBudget, and puts claude's own
// error messages into FailureSummary. Check runs `claude --version` and
// `claude auth status --json` for doctor.
//
// The claudetest subpackage is a fake Anthropic Messages API for tests
// that run the real CLI.
package claude
