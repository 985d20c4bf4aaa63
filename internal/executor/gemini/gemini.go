package gemini

import (
	"cmp"
	"errors"
	"fmt"
	"maps"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Adapter drives the Gemini CLI in headless mode:
//
//	gemini -p PROMPT -o stream-json --approval-mode MODE [-m MODEL] [--resume SESSION]
//
// prints one JSON event per line (init, message, tool_use, tool_result,
// error, result) and exits 0 on success; the other exit codes are in
// exitReasons. Each run gets a Gemini home of its own under
// executor.Request.MetaDir (see writeRunHome) whose settings add the
// relay's MCP endpoint and the rules of the run; GEMINI_CLI_HOME points
// the CLI at it.
type Adapter struct{}

var (
	_ executor.Adapter = Adapter{}
	_ executor.Resumer = Adapter{}
	_ executor.Checker = Adapter{}
)

// Gemini approval modes (--approval-mode). Headless, gemini cannot ask, so
// a tool call that would need a confirmation is refused (and such tools
// are not offered to the model).
const (
	// ApprovalPlan is gemini's read-only research mode.
	ApprovalPlan = "plan"
	// ApprovalDefault offers the read-only tools only (headless).
	ApprovalDefault = "default"
	// ApprovalAutoEdit adds the file-editing tools; the shell only runs
	// the commands a policy allows.
	ApprovalAutoEdit = "auto_edit"
	// ApprovalYolo allows every tool.
	ApprovalYolo = "yolo"
)

// approvalRank orders the modes from the most to the least restrictive.
var approvalRank = map[string]int{ApprovalPlan: 0, ApprovalDefault: 1, ApprovalAutoEdit: 2, ApprovalYolo: 3}

// askPolicyModes maps the job's execution.askPolicy to the mode that
// lets the agent do what the policy allows without asking. Headless
// gemini cannot ask for an approval of its own tools, so what a mode does
// not allow is refused, and the agent asks the relay instead (relay_ask,
// relay_approve, the relay's ask command), which every mode allows:
//
//   - untrusted: edit files, run no command but the relay's ask
//     (auto_edit);
//   - on-request: the same; the agent asks for anything more (auto_edit);
//   - on-failure: run everything, ask when something fails (yolo);
//   - never: run everything, never ask (yolo).
var askPolicyModes = map[string]string{
	"untrusted":  ApprovalAutoEdit,
	"on-request": ApprovalAutoEdit,
	"on-failure": ApprovalYolo,
	"never":      ApprovalYolo,
}

// Kind returns "gemini".
func (Adapter) Kind() string { return "gemini" }

// DefaultBinary returns "gemini".
func (Adapter) DefaultBinary() string { return "gemini" }

// ApprovalMode returns the --approval-mode of a run: the job's askPolicy
// mapped to a mode (see askPolicyModes), but never more permissive than
// the configured approvalMode; else the configured mode; else auto_edit.
// A read-only job gets at most default, which offers no tool that writes.
func ApprovalMode(cfg *executor.AgentConfig, req *executor.Request) string {
	mode := cfg.ApprovalMode
	if m, ok := askPolicyModes[req.AskPolicy]; ok {
		if r, known := approvalRank[mode]; mode == "" || (known && approvalRank[m] < r) {
			mode = m
		}
	}
	if mode == "" {
		mode = ApprovalAutoEdit
	}
	if r, known := approvalRank[mode]; req.ReadOnly() && (!known || r > approvalRank[ApprovalDefault]) {
		mode = ApprovalDefault
	}
	return mode
}

// Argv returns the gemini command line for req, and sets the run's
// environment in req.Env (Agent.Run reads it after Argv):
//
//   - GEMINI_CLI_TRUST_WORKSPACE=true trusts the job's workspace for the
//     run: gemini refuses to run headless in an untrusted folder (exit 55),
//     and every job runs in a new one. (The --skip-trust flag does the
//     same, but some gemini versions reject it as unknown.)
//   - When req.MetaDir is set, Argv writes the run's Gemini home there
//     (settings with the relay's MCP server, a policy file; see
//     writeRunHome) and points GEMINI_CLI_HOME at it.
//   - NO_PROXY gets the relay's host (see noProxy).
func (Adapter) Argv(cfg *executor.AgentConfig, req *executor.Request) ([]string, error) {
	if req.Prompt == "" {
		return nil, errors.New("gemini: request without a prompt")
	}
	mode := ApprovalMode(cfg, req)
	argv := []string{cfg.Binary, "-p", req.Prompt, "-o", "stream-json", "--approval-mode", mode}
	if model := cmp.Or(req.Model, cfg.Model); model != "" {
		argv = append(argv, "-m", model)
	}
	if req.ResumeSessionID != "" {
		argv = append(argv, "--resume", req.ResumeSessionID)
	}
	env := map[string]string{envTrust: "true"}
	if np := noProxy(envLookup(cfg, req), req.RelayMCPURL); np != "" {
		env["NO_PROXY"] = np
	}
	if req.MetaDir != "" {
		home, err := writeRunHome(cfg, req, mode)
		if err != nil {
			return nil, fmt.Errorf("gemini: %w", err)
		}
		env[envHome] = home
	}
	if req.Env == nil {
		req.Env = map[string]string{}
	}
	maps.Copy(req.Env, env)
	return append(argv, cfg.ExtraArgs...), nil
}
