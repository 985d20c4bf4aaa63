package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// statusAll is the asks_list status that lists every status.
const statusAll relaytype.AnswerStatus = "ALL"

type asksListArgs struct {
	JobID string `json:"jobId,omitempty" jsonschema:"filter"`
	// Status is a pointer so that an explicit "" (every status) differs
	// from an absent one (PENDING).
	Status *string `json:"status,omitempty" jsonschema:"ALL or \"\": any"`
}

func (s *Server) listAsks(ctx context.Context, in *asksListArgs) (asksResult, error) {
	status := relaytype.StatusPending
	if in.Status != nil {
		st := relaytype.AnswerStatus(strings.ToUpper(strings.TrimSpace(*in.Status)))
		switch {
		case st == statusAll || st == "":
			status = ""
		case slices.Contains(askListStatuses, st):
			status = st
		default:
			return asksResult{}, &argError{Field: "status", Message: fmt.Sprintf("must be one of %s, not %q", joinStatuses(askListStatuses), *in.Status)}
		}
	}
	jobID := strings.TrimSpace(in.JobID)
	if jobID != "" {
		if !relaytype.ValidJobID(jobID) {
			return asksResult{}, &argError{Field: "jobId", Message: fmt.Sprintf("%q is not a job id", in.JobID)}
		}
		if _, err := s.jobs.Get(ctx, jobID); err != nil {
			return asksResult{}, err
		}
	}
	return s.asksOf(ctx, jobID, status)
}

func joinStatuses(statuses []relaytype.AnswerStatus) string {
	out := make([]string, len(statuses))
	for i, st := range statuses {
		out[i] = string(st)
	}
	return strings.Join(out, ", ")
}

// jobAsks returns every ask of an existing job: the content of
// mcp://jobs/{jobId}/asks.
func (s *Server) jobAsks(ctx context.Context, jobID string) (asksResult, error) {
	if _, err := s.jobs.Get(ctx, jobID); err != nil {
		return asksResult{}, err
	}
	return s.asksOf(ctx, jobID, "")
}

// asksOf lists asks (of one job when jobID is set, in one status when
// status is) with the answers of those that have one.
func (s *Server) asksOf(ctx context.Context, jobID string, status relaytype.AnswerStatus) (asksResult, error) {
	asks, err := s.asks.List(ctx, jobID, status)
	if err != nil {
		return asksResult{}, fmt.Errorf("list asks: %w", err)
	}
	now := s.now()
	res := asksResult{Items: make([]askItem, 0, len(asks)), Total: len(asks)}
	for _, a := range asks {
		var ans *relaytype.AnswerRecord
		if a.Status != relaytype.StatusPending {
			if ans, err = s.asks.AnswerOf(ctx, a.AskID); err != nil {
				return asksResult{}, fmt.Errorf("answer of ask %s: %w", a.AskID, err)
			}
		}
		res.Items = append(res.Items, askView(a, ans, now))
	}
	return res, nil
}

type asksAnswerArgs struct {
	AskID      string          `json:"askId" jsonschema:"from asks_list"`
	Status     string          `json:"status,omitempty" jsonschema:"outcome"`
	AnswerText string          `json:"answerText,omitempty" jsonschema:"the answer"`
	AnswerJSON json.RawMessage `json:"answerJson,omitempty" jsonschema:"the answer, per the ask's outputSchema"`
	Error      string          `json:"error,omitempty" jsonschema:"why REJECTED or ERROR"`
}

// answerFields maps the wire field names the ask service reports in a
// RequestError to the names of asks_answer's arguments.
var answerFields = map[string]string{
	"ask_id":      "askId",
	"job_id":      "jobId",
	"status":      "status",
	"answer_text": "answerText",
	"answer_json": "answerJson",
	"error":       "error",
}

func (s *Server) answer(ctx context.Context, in *asksAnswerArgs) (answerResult, error) {
	askID := strings.TrimSpace(in.AskID)
	if askID == "" {
		return answerResult{}, &argError{Field: "askId", Message: "required"}
	}
	status := relaytype.StatusAnswered
	if st := strings.TrimSpace(in.Status); st != "" {
		status = relaytype.AnswerStatus(strings.ToUpper(st))
		if !slices.Contains(answerStatuses, status) {
			return answerResult{}, &argError{Field: "status", Message: fmt.Sprintf("must be one of %s, not %q", joinStatuses(answerStatuses), in.Status)}
		}
	}
	answerJSON := bytes.TrimSpace(in.AnswerJSON)
	if bytes.Equal(answerJSON, []byte("null")) {
		answerJSON = nil
	}
	rec, created, err := s.asks.Answer(ctx, &relaytype.Answer{
		AskID:       askID,
		Status:      status,
		AnswerText:  in.AnswerText,
		AnswerJSON:  json.RawMessage(answerJSON),
		Error:       in.Error,
		Attestation: &relaytype.Attestation{AnsweredBy: "orchestrator"},
	})
	var re *relaytype.RequestError
	if errors.As(err, &re) {
		field, ok := answerFields[re.Field]
		if !ok {
			field = re.Field
		}
		return answerResult{}, &argError{Field: field, Message: re.Message}
	}
	if err != nil {
		return answerResult{}, err
	}
	job, err := s.jobs.Get(ctx, rec.JobID)
	if err != nil {
		return answerResult{}, fmt.Errorf("job of ask %s: %w", rec.AskID, err)
	}
	return answerResult{AskID: rec.AskID, JobID: rec.JobID, Status: answerStatus(rec.Status), Created: created, JobState: job.State}, nil
}
