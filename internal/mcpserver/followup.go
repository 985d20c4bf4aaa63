package mcpserver

import (
	"context"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Followups is the optional part of Jobs that starts follow-up jobs;
// *relay.Relay has it. jobs_followup is offered when Jobs implements it.
type Followups interface {
	Followup(ctx context.Context, parentID, instruction string) (*relaytype.Job, error)
}

type followupArgs struct {
	JobID       string `json:"jobId" jsonschema:"the finished job to continue"`
	Instruction string `json:"instruction" jsonschema:"what to do next, on top of the parent's changes"`
}

func (s *Server) addFollowupTool() {
	f, ok := s.jobs.(Followups)
	if !ok {
		return
	}
	addTool(s, &mcp.Tool{
		Name:  "jobs_followup",
		Title: "Continue a finished job",
		Description: `Start a job continuing a finished one (same repository, baseline and executor): the parent's patch applied, the agent's session resumed. ` +
			`Drive it like any job. Its patch.diff is against the original baseline; incremental.diff holds its own change. ` +
			errorHelp + ` ILLEGAL_TRANSITION: the parent has not finished.`,
		InputSchema: followupInputSchema(),
		// The result is jobs_submit's, described there.
		OutputSchema: schemaFor[submitResult](describeOnly()),
		Annotations:  &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, func(ctx context.Context, in *followupArgs) (submitResult, error) {
		parent := strings.TrimSpace(in.JobID)
		if parent == "" {
			return submitResult{}, &relaytype.RequestError{Field: "jobId", Message: "required"}
		}
		job, err := f.Followup(ctx, parent, in.Instruction)
		if err != nil {
			return submitResult{}, err
		}
		return submitResult{JobID: job.ID, Created: true, State: job.State, StateVersion: job.StateVersion, BaselineCommit: job.BaselineCommit}, nil
	})
}
