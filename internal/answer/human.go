package answer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// AnsweredByHuman is the attestation's answered_by of a Human's answers.
const AnsweredByHuman = relaytype.AnsweredByHuman

// HumanConfig configures a Human.
type HumanConfig struct {
	// Elicitor reaches the person, through a connected MCP client. When
	// nil, every ask is deferred to the orchestrator. Defaults to nil.
	Elicitor Elicitor
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// Human answers asks routed to a human by asking the person at a connected
// MCP client through an elicitation form: approve or reject for APPROVAL,
// one of the offered values for CHOICE, free text otherwise. When nobody
// can be asked, or the person dismisses the form, the ask is deferred (it
// waits for asks_answer or POST /answers until its deadline).
type Human struct {
	elicitor Elicitor
	log      *slog.Logger
}

var _ ask.Answerer = (*Human)(nil)

// NewHuman returns a Human.
func NewHuman(cfg HumanConfig) *Human {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Human{elicitor: cfg.Elicitor, log: cfg.Logger}
}

// Elicitation actions.
const (
	actionAccept  = "accept"
	actionDecline = "decline"
	actionCancel  = "cancel"
)

// Answer implements ask.Answerer. It returns an error wrapping
// ask.ErrDeferred when there is nobody to ask, when the person dismisses
// the form, and when the ask's deadline passes first (so that it is
// recorded as TIMEOUT, not ERROR); other failures of the elicitation are
// returned as they are.
func (h *Human) Answer(ctx context.Context, a *relaytype.AskRecord) (*relaytype.Answer, error) {
	att := &relaytype.Attestation{ContextHash: a.ContextHash, AnsweredBy: AnsweredByHuman}
	answer := func(status relaytype.AnswerStatus) *relaytype.Answer {
		return &relaytype.Answer{
			Type: "Answer", AskID: a.AskID, JobID: a.JobID, StepID: a.StepID,
			Status: status, Attestation: att,
		}
	}
	// A person must not be shown a context other than the one the
	// executor hashed.
	if got, err := relaytype.ContextHash(a.ContextEnvelope); err != nil || got != a.ContextHash {
		out := answer(relaytype.StatusError)
		if err != nil {
			out.Error = fmt.Sprintf("%s: the context envelope cannot be hashed: %v", relaytype.CodeContextMismatch, err)
		} else {
			out.Error = fmt.Sprintf("%s: context_hash %s, but the envelope hashes to %s", relaytype.CodeContextMismatch, a.ContextHash, got)
		}
		h.log.Warn("human ask not shown: context mismatch", "ask_id", a.AskID, "err", out.Error)
		return out, nil
	}
	if h.elicitor == nil {
		return nil, fmt.Errorf("ask %s: nobody to ask: %w", a.AskID, ask.ErrDeferred)
	}

	form := formFor(a)
	action, content, err := h.elicitor.Elicit(ctx, humanMessage(a, form.instruction), form.schema)
	switch {
	case errors.Is(err, ErrNoElicitor):
		return nil, fmt.Errorf("ask %s: %w: %w", a.AskID, err, ask.ErrDeferred)
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("ask %s: no answer from a human before the deadline: %w", a.AskID, ask.ErrDeferred)
	case err != nil:
		return nil, fmt.Errorf("elicit: %w", err)
	}
	h.log.Info("human answered", "ask_id", a.AskID, "action", action)

	switch action {
	case actionAccept:
	case actionDecline:
		comment, _ := content["comment"].(string)
		out := answer(relaytype.StatusRejected)
		out.Error = withHumanComment("declined by a human", strings.TrimSpace(comment))
		return out, nil
	case actionCancel:
		return nil, fmt.Errorf("ask %s: the person dismissed the form: %w", a.AskID, ask.ErrDeferred)
	default:
		return nil, fmt.Errorf("elicit: unknown action %q", action)
	}
	out := answer(relaytype.StatusAnswered)
	if err := form.read(content, out); err != nil {
		return nil, fmt.Errorf("elicit: %w", err)
	}
	return out, nil
}

// form is the elicitation form of one ask type.
type form struct {
	// instruction tells the person what to do with the form.
	instruction string
	schema      json.RawMessage
	// read fills an ANSWERED answer from the accepted form's content; it
	// may turn it into a REJECTED one.
	read func(content map[string]any, out *relaytype.Answer) error
}

// elicitSchema is the flat object schema of an elicitation form.
type elicitSchema struct {
	Type       string                    `json:"type"`
	Properties map[string]elicitProperty `json:"properties"`
	Required   []string                  `json:"required,omitempty"`
}

type elicitProperty struct {
	Type        string   `json:"type"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	MinLength   *int     `json:"minLength,omitempty"`
}

func humanJSON(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on the types above
	}
	return raw
}

// formFor returns the form asking a person to answer a.
func formFor(a *relaytype.AskRecord) form {
	one := 1
	switch a.AskType {
	case relaytype.AskApproval:
		return form{
			instruction: "Approve or reject this request.",
			schema: humanJSON(elicitSchema{
				Type: "object",
				Properties: map[string]elicitProperty{
					"approve": {Type: "boolean", Title: "Approve?", Description: "Check to approve the request; leave unchecked to reject it, which fails the job."},
					"comment": {Type: "string", Title: "Comment"},
				},
				Required: []string{"approve"},
			}),
			read: readApproval,
		}
	case relaytype.AskChoice:
		choice := elicitProperty{Type: "string", Title: "Choice", MinLength: &one}
		instruction := "Enter your choice."
		if enum := enumOf(a.Meta); len(enum) > 0 {
			choice = elicitProperty{Type: "string", Title: "Choice", Enum: enum}
			instruction = "Pick one of the options."
		}
		return form{
			instruction: instruction,
			schema: humanJSON(elicitSchema{
				Type:       "object",
				Properties: map[string]elicitProperty{"choice": choice},
				Required:   []string{"choice"},
			}),
			read: func(content map[string]any, out *relaytype.Answer) error {
				s, ok := content["choice"].(string)
				if !ok || strings.TrimSpace(s) == "" {
					return errors.New(`accepted form has no "choice"`)
				}
				if len(choice.Enum) > 0 && !slices.Contains(choice.Enum, s) {
					return fmt.Errorf("choice %q is not one of %q", s, choice.Enum)
				}
				out.AnswerText = s
				out.AnswerJSON = humanJSON(map[string]string{"choice": s})
				return nil
			},
		}
	default:
		return form{
			instruction: "Type your answer.",
			schema: humanJSON(elicitSchema{
				Type:       "object",
				Properties: map[string]elicitProperty{"answer": {Type: "string", Title: "Answer", MinLength: &one}},
				Required:   []string{"answer"},
			}),
			read: func(content map[string]any, out *relaytype.Answer) error {
				s, ok := content["answer"].(string)
				if !ok || strings.TrimSpace(s) == "" {
					return errors.New(`accepted form has no "answer"`)
				}
				out.AnswerText = s
				return nil
			},
		}
	}
}

// approval is the answer_json of an APPROVAL answered by a person.
type approval struct {
	Approved bool   `json:"approved"`
	Comment  string `json:"comment,omitempty"`
}

func readApproval(content map[string]any, out *relaytype.Answer) error {
	approve, ok := content["approve"].(bool)
	if !ok {
		return errors.New(`accepted form has no boolean "approve"`)
	}
	comment, _ := content["comment"].(string)
	comment = strings.TrimSpace(comment)
	out.AnswerJSON = humanJSON(approval{Approved: approve, Comment: comment})
	if !approve {
		out.Status = relaytype.StatusRejected
		out.Error = withHumanComment("declined by a human", comment)
		return nil
	}
	out.AnswerText = withHumanComment("approved", comment)
	return nil
}

func withHumanComment(s, comment string) string {
	if comment == "" {
		return s
	}
	return s + ": " + comment
}

// enumOf returns the string values of the enum of the single property of
// an ask's output schema (meta.prompt_overrides.output_schema), when it is
// an object schema with exactly one property carrying an enum of strings.
func enumOf(meta *relaytype.AskMeta) []string {
	if meta == nil || meta.PromptOverrides == nil || len(meta.PromptOverrides.OutputSchema) == 0 {
		return nil
	}
	var schema struct {
		Type       any `json:"type"`
		Properties map[string]struct {
			Enum []any `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(meta.PromptOverrides.OutputSchema, &schema); err != nil {
		return nil
	}
	if t, ok := schema.Type.(string); (schema.Type != nil && !ok) || (ok && t != "object") || len(schema.Properties) != 1 {
		return nil
	}
	var out []string
	for _, p := range schema.Properties {
		for _, v := range p.Enum {
			s, ok := v.(string)
			if !ok {
				return nil // a form's single-select offers strings only
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// humanMessage is the text shown above the form: what is asked, by which
// job, and the key facts of the context envelope.
func humanMessage(a *relaytype.AskRecord, instruction string) string {
	var env relaytype.Envelope
	_ = json.Unmarshal(a.ContextEnvelope, &env) // hashed above, so it is JSON
	var b strings.Builder
	fmt.Fprintf(&b, "%s requested by job %s", kindOf(a.AskType), a.JobID)
	if a.StepID != "" {
		fmt.Fprintf(&b, " (step %s)", a.StepID)
	}
	fmt.Fprintf(&b, ":\n\n%s\n\nContext:\n", strings.TrimSpace(a.Prompt))
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "- %s: %s\n", name, value)
		}
	}
	snap := env.JobSnapshot
	line("repo", snap.Repo)
	line("commit", snap.CommitSHA)
	line("profile", orDefaultValue(snap.EnvProfile, relaytype.DefaultEnvProfile))
	line("policy version", orDefaultValue(snap.PolicyVersion, relaytype.DefaultPolicyVersion))
	line("role", env.Role)
	if len(env.Facts) > 0 {
		keys := make([]string, 0, len(env.Facts))
		for k := range env.Facts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("- facts:\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "  - %s: %s\n", k, factText(env.Facts[k]))
		}
	}
	fmt.Fprintf(&b, "\n%s", instruction)
	return b.String()
}

// kindOf names an ask type for a person.
func kindOf(t relaytype.AskType) string {
	switch t {
	case relaytype.AskApproval:
		return "Approval"
	case relaytype.AskChoice:
		return "Choice"
	case relaytype.AskClarification:
		return "Clarification"
	case relaytype.AskPolicyDecision:
		return "Policy decision"
	case relaytype.AskResourceFetch:
		return "Resource fetch"
	}
	return fmt.Sprintf("Question (%s)", t)
}

func orDefaultValue(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// maxFactLen bounds how much of one fact the message shows.
const maxFactLen = 500

// factText renders a fact value: strings as they are, anything else as
// JSON, cut to maxFactLen bytes.
func factText(v any) string {
	s, ok := v.(string)
	if !ok {
		s = string(humanJSON(v))
	}
	if len(s) > maxFactLen {
		cut := maxFactLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
