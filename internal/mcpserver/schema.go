package mcpserver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Input schemas are written by hand and are descriptive: they tell the
// client model what each argument means and which values are accepted,
// but this package validates the arguments itself (decodeArgs,
// relaytype.ParseJobSpec) so that errors carry a contract code and name
// the field. Output schemas are derived from the result types in views.go.

func str(desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Description: desc}
}

func strs(desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "array", Description: desc, Items: &jsonschema.Schema{Type: "string"}}
}

func integer(desc string, minimum float64) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "integer", Description: desc, Minimum: &minimum}
}

func boolean(desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "boolean", Description: desc}
}

func enum[T ~string](desc string, values ...T) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "string", Description: desc}
	for _, v := range values {
		s.Enum = append(s.Enum, string(v))
	}
	return s
}

func object(desc string, required []string, props map[string]*jsonschema.Schema) *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:                 "object",
		Description:          desc,
		Required:             required,
		Properties:           props,
		AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}},
	}
}

func ptr[T any](v T) *T { return &v }

func raw(s string) []byte { return []byte(s) }

// jobSpecSchema describes relaytype.JobSpec (SPEC §3) for the client model.
func jobSpecSchema() *jsonschema.Schema {
	commit := str("Full 40-character hex commit the job starts from. Optional: when absent it is resolved from baseBranch at submit and recorded in the job (see baselineCommit in the result).")
	commit.Pattern = "^[0-9a-fA-F]{40}$"
	title := str("Short title of the task.")
	title.MinLength, title.MaxLength = ptr(1), ptr(relaytype.MaxTitleLen)
	desc := str("What to do, in full: the executor sees only this spec, not the conversation.")
	desc.MinLength, desc.MaxLength = ptr(1), ptr(relaytype.MaxDescriptionLen)
	key := str("Caller-chosen key that makes the submit idempotent: the same key returns the existing job (created=false) while it is not terminal or SUCCEEDED within the last 24 h; after FAILED, CANCELED or EXPIRED it starts a new job.")
	key.MinLength, key.MaxLength = ptr(1), ptr(relaytype.MaxIdempotencyKey)
	priority := enum("Queue priority; P0 runs first. Defaults to P1.", relaytype.PriorityP0, relaytype.PriorityP1, relaytype.PriorityP2)
	priority.Default = raw(`"P1"`)
	ttl := integer("Seconds a job may wait in the queue before it is EXPIRED. Defaults to 3600.", 1)
	ttl.Default = raw(`3600`)
	attempts := integer("Attempts allowed when a worker is lost mid-run (the job goes STALE and is retried). Defaults to 3.", 1)
	attempts.Maximum = ptr(float64(relaytype.MaxMaxAttempts))
	attempts.Default = raw(`3`)
	snippet := object("Lines from..to (1-based, inclusive) of a file.", []string{"path", "from", "to"}, map[string]*jsonschema.Schema{
		"path": str("File path relative to the repository root."),
		"from": integer("First line.", 1),
		"to":   integer("Last line, at least from.", 1),
	})
	contract := &jsonschema.Schema{
		Type:        "array",
		Description: `What the job must produce: "DIFF" (patch.diff), "TEST_PLAN" and "NOTES" (both in out.md). Optional.`,
		Items:       enum("", "DIFF", "TEST_PLAN", "NOTES"),
	}

	return object("The job to run. Unknown fields are rejected.", []string{"repo", "task", "idempotencyKey"}, map[string]*jsonschema.Schema{
		"repo": object("Where the code lives and which commit the job starts from.", []string{"type"}, map[string]*jsonschema.Schema{
			"type":           enum(`"git" to clone url, or "local" for a checkout on the relay's machine at path.`, "git", "local"),
			"url":            str("Clone URL, required for type git (https://, ssh://, file:// or git@host:owner/repo.git)."),
			"path":           str("Directory of the repository, required for type local."),
			"baseBranch":     str("Branch the baseline is resolved from when baselineCommit is absent. Defaults to HEAD."),
			"baselineCommit": commit,
		}),
		"task": object("The work to do.", []string{"title", "description"}, map[string]*jsonschema.Schema{
			"title":       title,
			"description": desc,
			"acceptance":  strs("Acceptance criteria the result must meet, one per item."),
		}),
		"scope": object("What the executor should read and touch.", nil, map[string]*jsonschema.Schema{
			"readPaths":            strs("Paths (relative to the repository root) the executor should read."),
			"fileGlobs":            strs("Globs of the files the change may touch."),
			"disallowReformatting": boolean("When true, the change must not reformat untouched code."),
		}),
		"context": object("Optional pre-computed context handed to the executor.", nil, map[string]*jsonschema.Schema{
			"dirTreeDigest": str("Digest of the directory tree the context was taken from."),
			"keySignatures": strs("Key function or type signatures."),
			"codeSnippets":  {Type: "array", Description: "Relevant code excerpts.", Items: snippet},
		}),
		"outputContract": contract,
		"execution": object("How to run the job.", nil, map[string]*jsonschema.Schema{
			"executor":       str("Name of a configured executor (for example codex, claude, gemini). Defaults to the relay's default executor; an unknown name fails with INVALID_SPEC, none configured with NO_EXECUTOR."),
			"preferredModel": str("Model the executor should use, passed through to it."),
			"sandbox":        str(`Executor sandbox mode, passed through (for example "read-only" or "workspace-write").`),
			"askPolicy":      str(`When the executor may ask for approval, passed through (for example "untrusted" or "never").`),
			"timeoutS":       integer("Seconds one attempt may run before it is stopped and FAILED with TIMEOUT. Defaults to the executor's configured timeout.", 1),
			"priority":       priority,
			"ttlS":           ttl,
			"maxAttempts":    attempts,
		}),
		"idempotencyKey": key,
		"notify": object("Notification settings (accepted, not yet acted on).", nil, map[string]*jsonschema.Schema{
			"webhook":  str("URL to call when the job ends."),
			"enablePr": boolean("Open a pull request with the result."),
		}),
	})
}

func jobIDSchema(desc string) *jsonschema.Schema {
	return object("", []string{"jobId"}, map[string]*jsonschema.Schema{
		"jobId": str(desc),
	})
}

var (
	submitInputSchema = object("", []string{"spec"}, map[string]*jsonschema.Schema{
		"spec": jobSpecSchema(),
	})
	getInputSchema    = jobIDSchema("Id of the job, as returned by jobs_submit.")
	cancelInputSchema = jobIDSchema("Id of the job to cancel.")
	listInputSchema   = object("", nil, map[string]*jsonschema.Schema{
		"state": enum("Only jobs in this state. All states when absent.", relaytype.AllStates...),
		"limit": {
			Type: "integer", Description: fmt.Sprintf("Page size, 1 to %d. Defaults to %d.", maxListLimit, defaultListLimit),
			Minimum: ptr(1.0), Maximum: ptr(float64(maxListLimit)), Default: raw(fmt.Sprint(defaultListLimit)),
		},
		"offset":      {Type: "integer", Description: "Jobs to skip, for paging. Defaults to 0.", Minimum: ptr(0.0), Default: raw("0")},
		"allProjects": {Type: "boolean", Description: "Jobs of every project, not only this one's. Defaults to false.", Default: raw("false")},
	})
	waitInputSchema = object("", []string{"jobId"}, map[string]*jsonschema.Schema{
		"jobId": str("Id of the job, as returned by jobs_submit."),
		"timeoutS": {
			Type: "integer", Description: fmt.Sprintf("Longest wait in seconds, 1 to %d. Defaults to %d.", maxWaitS, defaultWaitS),
			Minimum: ptr(1.0), Maximum: ptr(float64(maxWaitS)), Default: raw(fmt.Sprint(defaultWaitS)),
		},
	})
	asksListInputSchema = object("", nil, map[string]*jsonschema.Schema{
		"jobId": str("Only the asks of this job. Asks of every job when absent."),
		"status": func() *jsonschema.Schema {
			s := enum(`Only asks in this status; "ALL" for every status. Defaults to PENDING (the asks waiting for an answer).`, askListStatuses...)
			s.Default = raw(`"PENDING"`)
			return s
		}(),
	})
	asksAnswerInputSchema = object("", []string{"askId"}, map[string]*jsonschema.Schema{
		"askId": str("Id of the ask, from asks_list."),
		"status": func() *jsonschema.Schema {
			s := enum(`ANSWERED (the default) to answer; REJECTED to refuse, which fails the job with reasonCode POLICY; `+
				`ERROR when you cannot answer, which fails the job with EXECUTOR_ERROR.`,
				answerStatuses...)
			s.Default = raw(`"ANSWERED"`)
			return s
		}(),
		"answerText": str("The answer as text. An ANSWERED answer needs answerText or answerJson."),
		"answerJson": {Description: "The answer as a JSON value (object, array, string, number or boolean), shaped by the ask's outputSchema when it has one."},
		"error":      str("Why the ask is REJECTED or not answered (ERROR); shown in the job's summary."),
	})
)

// answerStatuses are the statuses asks_answer records; TIMEOUT is the
// relay's own, for asks nobody answered in time.
var answerStatuses = []relaytype.AnswerStatus{relaytype.StatusAnswered, relaytype.StatusRejected, relaytype.StatusError}

// askListStatuses are the values of asks_list's status argument.
var askListStatuses = []relaytype.AnswerStatus{
	relaytype.StatusPending, relaytype.StatusAnswered, relaytype.StatusRejected,
	relaytype.StatusTimeout, relaytype.StatusError, statusAll,
}

// outputSchema derives the output schema of a result type, with the
// relay's string enums and timestamps spelled out.
func outputSchema[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[relaytype.JobState]():     enum("", relaytype.AllStates...),
		reflect.TypeFor[relaytype.Priority]():     enum("", relaytype.PriorityP0, relaytype.PriorityP1, relaytype.PriorityP2),
		reflect.TypeFor[relaytype.ArtifactKind](): enum("", relaytype.ArtifactKinds...),
		reflect.TypeFor[relaytype.FailReason](): enum("",
			relaytype.ReasonBadArtifacts, relaytype.ReasonConflict, relaytype.ReasonPolicy,
			relaytype.ReasonExecutorError, relaytype.ReasonTimeout, relaytype.ReasonInternalError),
		reflect.TypeFor[timestamp]():              {Type: "string", Format: "date-time"},
		reflect.TypeFor[relaytype.AskType]():      enum("", relaytype.AskTypes...),
		reflect.TypeFor[relaytype.AnswerStatus](): enum("", askListStatuses[:len(askListStatuses)-1]...),
		reflect.TypeFor[answerStatus]():           enum("", askListStatuses[1:len(askListStatuses)-1]...),
		reflect.TypeFor[jsonObject]():             {Type: "object"},
		reflect.TypeFor[json.RawMessage]():        {}, // any JSON value
	}})
	if err != nil {
		// The result types are fixed at compile time; a failure is a bug.
		panic(fmt.Sprintf("mcpserver: output schema of %v: %v", reflect.TypeFor[T](), err))
	}
	noNullArrays(s)
	return s
}

// noNullArrays makes slice-typed properties plain arrays: inference allows
// null for Go slices, but results always carry [] rather than null.
func noNullArrays(s *jsonschema.Schema) {
	if slices.Equal(s.Types, []string{"null", "array"}) {
		s.Types, s.Type = nil, "array"
	}
	for _, p := range s.Properties {
		noNullArrays(p)
	}
	if s.Items != nil {
		noNullArrays(s.Items)
	}
}
