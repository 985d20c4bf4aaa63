package relaytype

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// JobSpec is what a client submits: the repository and baseline to work on,
// the task, its scope and how to execute it. JSON names follow the seed.
//
// Repo, Task and IdempotencyKey are required; the rest is optional. The
// jsonschema tags are the descriptions of the jobs_submit input schema.
type JobSpec struct {
	Repo           Repo         `json:"repo" jsonschema:"code and commit to start from"`
	Task           Task         `json:"task" jsonschema:"the work"`
	Scope          Scope        `json:"scope" jsonschema:"files to read and change"`
	Context        *TaskContext `json:"context,omitempty" jsonschema:"hints for the executor"`
	OutputContract []string     `json:"outputContract,omitempty" jsonschema:"parts it must produce: DIFF (patch.diff), TEST_PLAN, NOTES (out.md)"`
	Execution      Execution    `json:"execution" jsonschema:"how to run it"`
	IdempotencyKey string       `json:"idempotencyKey" jsonschema:"resubmitted, returns its job unless FAILED, CANCELED or EXPIRED"`
	Notify         *Notify      `json:"notify,omitempty" jsonschema:"when it ends"`
}

// Repo says where the code lives and which commit the job starts from.
type Repo struct {
	// Type is "local" (a checkout on this machine) or "git" (a URL to clone).
	Type string `json:"type" jsonschema:"local: checkout at path; git: clone url"`
	// URL is the clone URL for type git (file://, https://, ssh://, scp-like).
	URL string `json:"url,omitempty" jsonschema:"for git"`
	// Path is the directory of the local repository for type local.
	Path string `json:"path,omitempty" jsonschema:"for local"`
	// BaseBranch names the branch the baseline is resolved from when
	// BaselineCommit is empty. Empty means HEAD.
	BaseBranch string `json:"baseBranch,omitempty" jsonschema:"baseline if no baselineCommit; default HEAD"`
	// BaselineCommit is the full 40-hex commit the job starts from; when
	// absent it is resolved at submit time and recorded in the job.
	BaselineCommit string `json:"baselineCommit,omitempty" jsonschema:"default: resolved at submit"`
}

// Task describes the work.
type Task struct {
	Title       string   `json:"title" jsonschema:"short"`
	Description string   `json:"description" jsonschema:"in full: the executor sees only the spec"`
	Acceptance  []string `json:"acceptance,omitempty" jsonschema:"criteria"`
}

// Scope bounds what the executor should touch.
type Scope struct {
	ReadPaths            []string `json:"readPaths,omitempty" jsonschema:"repo-relative"`
	FileGlobs            []string `json:"fileGlobs,omitempty" jsonschema:"files it may change (*, **, ?, [a-z]); others fail POLICY"`
	DisallowReformatting bool     `json:"disallowReformatting,omitempty" jsonschema:"keep untouched code as is"`
}

// TaskContext is optional pre-computed context handed to the executor.
type TaskContext struct {
	DirTreeDigest string        `json:"dirTreeDigest,omitempty" jsonschema:"of the tree the hints are from"`
	KeySignatures []string      `json:"keySignatures,omitempty" jsonschema:"function or type signatures"`
	CodeSnippets  []CodeSnippet `json:"codeSnippets,omitempty" jsonschema:"excerpts"`
}

// CodeSnippet points at lines from..to (1-based, inclusive) of a file.
type CodeSnippet struct {
	Path string `json:"path" jsonschema:"repo-relative"`
	From int    `json:"from" jsonschema:"1-based line"`
	To   int    `json:"to" jsonschema:"inclusive line"`
}

// Execution says how to run the job.
type Execution struct {
	PreferredModel string   `json:"preferredModel,omitempty" jsonschema:"executor's model"`
	Sandbox        string   `json:"sandbox,omitempty" jsonschema:"read-only or workspace-write"`
	AskPolicy      string   `json:"askPolicy,omitempty" jsonschema:"executor approvals; never: asks refused"`
	TimeoutS       int      `json:"timeoutS,omitempty" jsonschema:"per attempt, then TIMEOUT; 0: the executor's"`
	Priority       Priority `json:"priority,omitempty" jsonschema:"P0 first"`
	TTLS           int      `json:"ttlS,omitempty" jsonschema:"queued seconds before EXPIRED"`
	Executor       string   `json:"executor,omitempty" jsonschema:"configured name"`
	MaxAttempts    int      `json:"maxAttempts,omitempty" jsonschema:"if a worker is lost"`
	// MaxBudgetUSD caps what the executor may spend; agents that take a
	// budget get it, and a run whose reported cost exceeds it fails with
	// POLICY.
	MaxBudgetUSD float64 `json:"maxBudgetUsd,omitempty" jsonschema:"USD cap; more fails POLICY"`
}

// Values of Execution.AskPolicy (empty: the executor's default).
const (
	// AskPolicyUntrusted: agents ask before edits and commands.
	AskPolicyUntrusted = "untrusted"
	// AskPolicyOnRequest: agents edit the workspace and ask for more.
	AskPolicyOnRequest = "on-request"
	// AskPolicyOnFailure: agents ask when something fails.
	AskPolicyOnFailure = "on-failure"
	// AskPolicyNever: the job never asks; the relay refuses its asks.
	AskPolicyNever = "never"
)

// AskPolicies lists the values of Execution.AskPolicy.
var AskPolicies = []string{AskPolicyUntrusted, AskPolicyOnRequest, AskPolicyOnFailure, AskPolicyNever}

// Notify says what the relay does when the job ends: POST a signed webhook
// (its project must configure the signing secret) and, after a success
// with a patch, push a branch relay/<jobId> and open a pull request
// (recorded in the pr.json artifact).
type Notify struct {
	Webhook  string `json:"webhook,omitempty" jsonschema:"http(s) URL: signed POST when terminal; needs the project secret"`
	EnablePr bool   `json:"enablePr,omitempty" jsonschema:"on success push relay/<jobId>, open a PR (pr.json)"`
}

// Repository types: the values of Repo.Type.
const (
	RepoLocal = "local"
	RepoGit   = "git"
)

// RepoTypes lists every repository type.
var RepoTypes = []string{RepoLocal, RepoGit}

// Output contract items: the values of JobSpec.OutputContract.
const (
	OutputDiff     = "DIFF"
	OutputTestPlan = "TEST_PLAN"
	OutputNotes    = "NOTES"
)

// OutputContractItems lists every output contract item.
var OutputContractItems = []string{OutputDiff, OutputTestPlan, OutputNotes}

// CommitPattern is the regular expression of a full 40-hex commit id.
const CommitPattern = `^[0-9a-fA-F]{40}$`

// DefaultPriority is the priority of a spec that sets none.
const DefaultPriority = PriorityP1

// Spec limits and defaults.
const (
	MaxTitleLen        = 200
	MaxDescriptionLen  = 10000
	MaxIdempotencyKey  = 256
	DefaultTTLS        = 3600
	DefaultMaxAttempts = 3
	MaxMaxAttempts     = 20
)

// jobIDPattern is the shape of a job id, which ValidJobID checks.
const jobIDPattern = `^job_[0-9a-zA-Z_-]{1,64}$`

// ValidJobID reports whether id has the shape of a relay job id
// (jobIDPattern). Artifact and workspace paths are built from ids, so only
// such ids are accepted.
//
// It and ValidCommit check by hand what their patterns say: compiled, the
// counted repetitions cost every process 75 KB of allocations at start-up.
func ValidJobID(id string) bool {
	rest, ok := strings.CutPrefix(id, "job_")
	if !ok || len(rest) < 1 || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidCommit reports whether s is a full 40-hex commit id
// (CommitPattern).
func ValidCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ParseJobSpec decodes raw JSON strictly (unknown fields are errors naming
// the field), applies defaults and validates.
func ParseJobSpec(raw []byte) (*JobSpec, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var s JobSpec
	if err := dec.Decode(&s); err != nil {
		return nil, jsonSpecError(err)
	}
	s.ApplyDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func jsonSpecError(err error) error {
	msg := err.Error()
	if ute, ok := err.(*json.UnmarshalTypeError); ok {
		return &SpecError{Field: ute.Field, Message: fmt.Sprintf("must be %s, not %s", ute.Type, ute.Value)}
	}
	if strings.HasPrefix(msg, "json: unknown field ") {
		return &SpecError{Field: strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), Message: "unknown field"}
	}
	return &SpecError{Field: "spec", Message: msg}
}

// ApplyDefaults fills zero fields with their defaults.
func (s *JobSpec) ApplyDefaults() {
	if s.Execution.Priority == "" {
		s.Execution.Priority = DefaultPriority
	}
	if s.Execution.TTLS == 0 {
		s.Execution.TTLS = DefaultTTLS
	}
	if s.Execution.MaxAttempts == 0 {
		s.Execution.MaxAttempts = DefaultMaxAttempts
	}
	if s.Repo.Type == RepoLocal && s.Repo.Path == "" && s.Repo.URL != "" && strings.HasPrefix(s.Repo.URL, "/") {
		s.Repo.Path = s.Repo.URL
	}
}

// Validate checks the spec against the contract and returns a *SpecError
// naming the first offending field.
func (s *JobSpec) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &SpecError{Field: field, Message: fmt.Sprintf(format, a...)}
	}
	switch s.Repo.Type {
	case RepoLocal:
		if strings.TrimSpace(s.Repo.Path) == "" {
			return bad("repo.path", "required when repo.type is local")
		}
	case RepoGit:
		if strings.TrimSpace(s.Repo.URL) == "" {
			return bad("repo.url", "required when repo.type is git")
		}
		if strings.HasPrefix(s.Repo.URL, "-") {
			return bad("repo.url", "must not start with '-'")
		}
	case "":
		return bad("repo.type", "required (local or git)")
	default:
		return bad("repo.type", "must be local or git, not %q", s.Repo.Type)
	}
	if s.Repo.BaselineCommit != "" && !ValidCommit(s.Repo.BaselineCommit) {
		return bad("repo.baselineCommit", "must be a full 40-character hex commit id")
	}
	if strings.HasPrefix(s.Repo.BaseBranch, "-") {
		return bad("repo.baseBranch", "must not start with '-'")
	}
	if strings.TrimSpace(s.Task.Title) == "" {
		return bad("task.title", "required")
	}
	if n := len([]rune(s.Task.Title)); n > MaxTitleLen {
		return bad("task.title", "is %d characters, at most %d allowed", n, MaxTitleLen)
	}
	if strings.TrimSpace(s.Task.Description) == "" {
		return bad("task.description", "required")
	}
	if n := len([]rune(s.Task.Description)); n > MaxDescriptionLen {
		return bad("task.description", "is %d characters, at most %d allowed", n, MaxDescriptionLen)
	}
	if s.Context != nil {
		for i, c := range s.Context.CodeSnippets {
			if c.Path == "" {
				return bad(fmt.Sprintf("context.codeSnippets[%d].path", i), "required")
			}
			if c.From < 1 || c.To < c.From {
				return bad(fmt.Sprintf("context.codeSnippets[%d]", i), "needs 1 <= from <= to")
			}
		}
	}
	for i, o := range s.OutputContract {
		if !slices.Contains(OutputContractItems, o) {
			return bad(fmt.Sprintf("outputContract[%d]", i), "must be DIFF, TEST_PLAN or NOTES, not %q", o)
		}
	}
	if p := s.Execution.AskPolicy; p != "" && !slices.Contains(AskPolicies, p) {
		return bad("execution.askPolicy", "must be untrusted, on-request, on-failure or never, not %q", s.Execution.AskPolicy)
	}
	if s.Execution.Priority.Rank() < 0 {
		return bad("execution.priority", "must be P0, P1 or P2, not %q", s.Execution.Priority)
	}
	if s.Execution.TimeoutS < 0 {
		return bad("execution.timeoutS", "must be positive")
	}
	if s.Execution.TTLS < 0 {
		return bad("execution.ttlS", "must be positive")
	}
	if s.Execution.MaxBudgetUSD < 0 {
		return bad("execution.maxBudgetUsd", "must be positive")
	}
	if s.Execution.MaxAttempts < 0 || s.Execution.MaxAttempts > MaxMaxAttempts {
		return bad("execution.maxAttempts", "must be between 1 and %d", MaxMaxAttempts)
	}
	if s.Notify != nil && s.Notify.Webhook != "" {
		if u, err := url.Parse(s.Notify.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("notify.webhook", "must be an http or https URL")
		} else if u.User != nil {
			return bad("notify.webhook", "must not carry credentials (user:password@); the relay signs its webhooks instead")
		}
	}
	if strings.TrimSpace(s.IdempotencyKey) == "" {
		return bad("idempotencyKey", "required")
	}
	if len(s.IdempotencyKey) > MaxIdempotencyKey {
		return bad("idempotencyKey", "longer than %d bytes", MaxIdempotencyKey)
	}
	return nil
}

// Job is the stored record of a submitted job.
type Job struct {
	ID             string     `json:"id"`
	IdempotencyKey string     `json:"idempotencyKey"`
	State          JobState   `json:"state"`
	StateVersion   int64      `json:"stateVersion"`
	Priority       Priority   `json:"priority"`
	Attempt        int        `json:"attempt"`
	MaxAttempts    int        `json:"maxAttempts"`
	Executor       string     `json:"executor"`
	BaselineCommit string     `json:"baselineCommit"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	StartedAt      *time.Time `json:"startedAt,omitempty"`
	FinishedAt     *time.Time `json:"finishedAt,omitempty"`
	ExpiresAt      time.Time  `json:"expiresAt"`
	LeaseOwner     string     `json:"leaseOwner,omitempty"`
	LeaseExpiresAt *time.Time `json:"leaseExpiresAt,omitempty"`
	HeartbeatAt    *time.Time `json:"heartbeatAt,omitempty"`
	ReasonCode     FailReason `json:"reasonCode,omitempty"`
	Summary        string     `json:"summary,omitempty"`
	// Usage sums the tokens and cost of the job's executor runs and of the
	// answers to its asks.
	Usage Usage `json:"usage"`
	// SessionID is the coding agent's session, for resuming it in a
	// follow-up job.
	SessionID string `json:"sessionId,omitempty"`
	// ParentJobID is the job a follow-up continues.
	ParentJobID string `json:"parentJobId,omitempty"`
	// Project is the project the job was submitted from (the absolute
	// path of its config directory); the job runs only with that
	// project's executors and settings.
	Project string `json:"project,omitempty"`
	// Host, when set, is the only host whose relays may run the job: its
	// repository is a local path on that machine.
	Host string  `json:"host,omitempty"`
	Spec JobSpec `json:"spec"`
}

// Event is one entry of a job's append-only audit log.
type Event struct {
	ID      int64           `json:"id"`
	JobID   string          `json:"jobId"`
	Time    time.Time       `json:"ts"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Event types written by the relay.
const (
	EventSubmitted  = "submitted"
	EventTransition = "transition"
	EventArtifact   = "artifact"
	EventLog        = "log"
)

// TransitionPayload is the payload of an EventTransition event.
type TransitionPayload struct {
	From         JobState   `json:"from"`
	To           JobState   `json:"to"`
	StateVersion int64      `json:"stateVersion"`
	Attempt      int        `json:"attempt"`
	Reason       FailReason `json:"reasonCode,omitempty"`
	Summary      string     `json:"summary,omitempty"`
	Owner        string     `json:"owner,omitempty"`
	// Usage is what the step that ended here spent (executor runs).
	Usage *Usage `json:"usage,omitempty"`
}

// ArtifactKind names one of the fixed artifact files of a job.
type ArtifactKind string

// Artifact kinds.
const (
	ArtifactPatch ArtifactKind = "patch.diff"
	ArtifactOut   ArtifactKind = "out.md"
	ArtifactLogs  ArtifactKind = "logs.txt"
	ArtifactPR    ArtifactKind = "pr.json"
	// ArtifactIncremental is a follow-up job's own change: its diff against
	// the parent's result rather than the original baseline.
	ArtifactIncremental ArtifactKind = "incremental.diff"
)

// ArtifactKinds lists every artifact kind.
var ArtifactKinds = []ArtifactKind{ArtifactPatch, ArtifactOut, ArtifactLogs, ArtifactPR, ArtifactIncremental}

// Valid reports whether k is a known artifact kind. Only known kinds are
// ever used as file names, so artifact paths cannot escape their directory.
func (k ArtifactKind) Valid() bool {
	for _, v := range ArtifactKinds {
		if v == k {
			return true
		}
	}
	return false
}

// Artifact is the metadata of one stored artifact file.
type Artifact struct {
	JobID     string       `json:"jobId"`
	Kind      ArtifactKind `json:"kind"`
	URI       string       `json:"uri"`
	Digest    string       `json:"digest"`
	Size      int64        `json:"size"`
	CreatedAt time.Time    `json:"createdAt"`
}

// ArtifactURI returns the MCP resource URI of a job's artifact.
func ArtifactURI(jobID string, kind ArtifactKind) string {
	return "mcp://jobs/" + jobID + "/artifacts/" + string(kind)
}
