package mcpserver

import (
	"context"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Followups is the optional part of Jobs that starts follow-up jobs;
// *relay.Relay has it. jobs_followup is offered when Jobs implements it.
type Followups interface {
	Followup(ctx context.Context, parentID, instruction string) (*relaytype.Job, error)
}

type followupArgs struct {
	JobID       string `json:"jobId" jsonschema:"finished job"`
	Instruction string `json:"instruction" jsonschema:"what next"`
}

func (s *Server) addFollowupTool() {
	f, ok := s.jobs.(Followups)
	if !ok {
		return
	}
	addTool(s, followupTool, func(ctx context.Context, in *followupArgs) (submitResult, error) {
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
