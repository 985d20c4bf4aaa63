package mcpserver

import (
	"context"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Followups is the optional part of Jobs that starts follow-up jobs;
// *relay.Relay has it. jobs_followup is offered when Jobs implements it.
type Followups interface {
	Followup(ctx context.Context, parentID, instruction string) (*relaytype.Job, error)
}

var followupInputSchema = object("", []string{"jobId", "instruction"}, map[string]*jsonschema.Schema{
	"jobId":       str("Id of the finished job to continue."),
	"instruction": str("What to do next, in the same repository, on top of the parent job's changes (at most 10000 characters)."),
})

type followupArgs struct {
	JobID       string `json:"jobId"`
	Instruction string `json:"instruction"`
}

func (s *Server) addFollowupTool() {
	f, ok := s.jobs.(Followups)
	if !ok {
		return
	}
	addTool(s, &mcp.Tool{
		Name:  "jobs_followup",
		Title: "Continue a finished job",
		Description: `Start a new job that continues a finished one (jobId): same repository, baseline and executor; its workspace starts from the parent's result ` +
			`(the parent's patch applied) and a coding agent resumes its recorded session. Returns {jobId, created, state, stateVersion, baselineCommit} at once; ` +
			`then drive it like any job (jobs_wait, asks, artifacts). Its patch.diff is against the ORIGINAL baseline (parent's changes included); ` +
			`incremental.diff holds only the follow-up's own change. ` + errorHelp +
			` A parent that has not finished gives ILLEGAL_TRANSITION; an unknown jobId gives JOB_NOT_FOUND.`,
		InputSchema: followupInputSchema,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
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
