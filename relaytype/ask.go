package relaytype

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/gowebpki/jcs"
)

// AskType classifies what an executor asks for.
type AskType string

// Ask types: what kind of answer an executor is waiting for.
const (
	AskClarification  AskType = "CLARIFICATION"
	AskResourceFetch  AskType = "RESOURCE_FETCH"
	AskPolicyDecision AskType = "POLICY_DECISION"
	AskApproval       AskType = "APPROVAL"
	AskChoice         AskType = "CHOICE"
)

// AskTypes lists every ask type.
var AskTypes = []AskType{AskClarification, AskResourceFetch, AskPolicyDecision, AskApproval, AskChoice}

// Valid reports whether t is a known ask type.
func (t AskType) Valid() bool {
	for _, v := range AskTypes {
		if v == t {
			return true
		}
	}
	return false
}

// AnswerStatus is the outcome of an ask.
type AnswerStatus string

// Answer statuses. StatusPending is the status of an ask with no answer
// yet; it is never the status of an answer.
const (
	StatusPending  AnswerStatus = "PENDING"
	StatusAnswered AnswerStatus = "ANSWERED"
	StatusRejected AnswerStatus = "REJECTED"
	StatusTimeout  AnswerStatus = "TIMEOUT"
	StatusError    AnswerStatus = "ERROR"
)

// ValidAnswer reports whether s is a status an answer may have.
func (s AnswerStatus) ValidAnswer() bool {
	switch s {
	case StatusAnswered, StatusRejected, StatusTimeout, StatusError:
		return true
	}
	return false
}

// FailReason returns the reason a job fails with when one of its asks is
// answered with s, or "" for ANSWERED: REJECTED → POLICY, TIMEOUT →
// TIMEOUT, ERROR → EXECUTOR_ERROR, as in the seed.
func (s AnswerStatus) FailReason() FailReason {
	switch s {
	case StatusRejected:
		return ReasonPolicy
	case StatusTimeout:
		return ReasonTimeout
	case StatusError:
		return ReasonExecutorError
	}
	return ""
}

// Envelope is the context envelope of an ask: the small, explicit context
// the answerer sees instead of the executor's conversation. Absent fields
// are omitted from its JSON, and its hash is over that JSON.
type Envelope struct {
	JobSnapshot JobSnapshot `json:"job_snapshot"`
	// Facts are named facts, from TASK_RELAY_FACT_* on the executor side.
	Facts map[string]any `json:"facts,omitempty"`
	// ToolCaps maps a tool to the capabilities it is granted.
	ToolCaps map[string]any `json:"tool_caps,omitempty"`
	Role     string         `json:"role"`
}

// JobSnapshot identifies where an ask comes from.
type JobSnapshot struct {
	Repo          string `json:"repo,omitempty"`
	CommitSHA     string `json:"commit_sha,omitempty"`
	EnvProfile    string `json:"env_profile,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
}

// Envelope smart defaults: values equal to these are omitted.
const (
	EnvelopeUnknown      = "unknown"
	DefaultEnvProfile    = "dev"
	DefaultPolicyVersion = "1.0"
	DefaultEnvelopeRole  = "default"
	MaxAskPromptLen      = 20000
	MaxEnvelopeBytes     = 64 * 1024
	MaxAskTimeoutS       = 7 * 24 * 3600
)

// NewEnvelope builds an envelope with the smart-default omission rules:
// repo and commit_sha are dropped when empty or "unknown", env_profile when
// "dev", policy_version when "1.0", facts when empty, tool_caps when there
// are no tools; an empty role becomes "default".
func NewEnvelope(repo, commit, profile, policyVersion, role string, facts, toolCaps map[string]any) Envelope {
	omit := func(v, def string) string {
		if v == def {
			return ""
		}
		return v
	}
	e := Envelope{
		JobSnapshot: JobSnapshot{
			Repo:          omit(repo, EnvelopeUnknown),
			CommitSHA:     omit(commit, EnvelopeUnknown),
			EnvProfile:    omit(profile, DefaultEnvProfile),
			PolicyVersion: omit(policyVersion, DefaultPolicyVersion),
		},
		Role: role,
	}
	if e.Role == "" {
		e.Role = DefaultEnvelopeRole
	}
	if len(facts) > 0 {
		e.Facts = facts
	}
	if len(toolCaps) > 0 {
		e.ToolCaps = toolCaps
	}
	return e
}

// CanonicalJSON returns the RFC 8785 (JCS) form of a JSON text: keys sorted
// by UTF-16 code units, no insignificant whitespace, minimal escaping,
// ECMAScript number formatting. For envelopes this equals JSON.stringify of
// the recursively key-sorted object, so hashes match the TypeScript SDK.
func CanonicalJSON(raw []byte) ([]byte, error) {
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return out, nil
}

// ContextHash returns the lowercase hex SHA-256 of the canonical form of
// the envelope JSON raw.
func ContextHash(raw []byte) (string, error) {
	c, err := CanonicalJSON(raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// Hash returns the context hash of e.
func (e Envelope) Hash() (string, error) {
	raw, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("encode envelope: %w", err)
	}
	return ContextHash(raw)
}

// Ask is the wire form of a question from an executor (POST /asks).
type Ask struct {
	// Type is always "Ask".
	Type            string          `json:"type"`
	AskID           string          `json:"ask_id"`
	JobID           string          `json:"job_id"`
	StepID          string          `json:"step_id"`
	AskType         AskType         `json:"ask_type"`
	Prompt          string          `json:"prompt"`
	ContextHash     string          `json:"context_hash"`
	ContextEnvelope json.RawMessage `json:"context_envelope,omitempty"`
	Constraints     *AskConstraints `json:"constraints,omitempty"`
	RoleID          string          `json:"role_id,omitempty"`
	Meta            *AskMeta        `json:"meta,omitempty"`
}

// AskConstraints bound how an ask may be answered.
type AskConstraints struct {
	TimeoutS     int      `json:"timeout_s,omitempty"`
	MaxTokens    int      `json:"max_tokens,omitempty"`
	AllowedTools []string `json:"allowed_tools,omitempty"`
}

// AskMeta carries optional answerer hints.
type AskMeta struct {
	PromptOverrides *PromptOverrides `json:"prompt_overrides,omitempty"`
}

// PromptOverrides adjust the Answer Runner's prompt for one ask.
type PromptOverrides struct {
	SystemAppend string          `json:"system_append,omitempty"`
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
}

// Answer is the wire form of an answer (POST /answers).
type Answer struct {
	// Type is always "Answer".
	Type        string          `json:"type"`
	AskID       string          `json:"ask_id"`
	JobID       string          `json:"job_id"`
	StepID      string          `json:"step_id"`
	Status      AnswerStatus    `json:"status"`
	AnswerText  string          `json:"answer_text,omitempty"`
	AnswerJSON  json.RawMessage `json:"answer_json,omitempty"`
	Attestation *Attestation    `json:"attestation,omitempty"`
	Artifacts   []string        `json:"artifacts,omitempty"`
	PolicyTrace json.RawMessage `json:"policy_trace,omitempty"`
	Cacheable   *bool           `json:"cacheable,omitempty"`
	AskBack     string          `json:"ask_back,omitempty"`
	Error       string          `json:"error,omitempty"`
	// Usage is the tokens the answerer spent (runner answers).
	Usage *Usage `json:"usage,omitempty"`
}

// Attestation says what produced an answer.
type Attestation struct {
	ContextHash       string   `json:"context_hash"`
	RoleID            string   `json:"role_id,omitempty"`
	RoleVersion       string   `json:"role_version,omitempty"`
	Model             string   `json:"model,omitempty"`
	PromptFingerprint string   `json:"prompt_fingerprint,omitempty"`
	ToolsUsed         []string `json:"tools_used,omitempty"`
	PolicyVersion     string   `json:"policy_version,omitempty"`
	// AnsweredBy names the answerer: runner, orchestrator, human or policy.
	AnsweredBy string `json:"answered_by,omitempty"`
	// CacheHit is set when the runner answered from its decision cache.
	CacheHit bool `json:"cache_hit,omitempty"`
	// AskID and AnswerDigest bind a signature to one answer of one ask:
	// AnswerDigest is AnswerDigest(status, answer_text, answer_json).
	AskID        string `json:"ask_id,omitempty"`
	AnswerDigest string `json:"answer_digest,omitempty"`
	// KeyID names the relay key that made Signature (the first 16 hex
	// digits of the SHA-256 of the public key).
	KeyID string `json:"key_id,omitempty"`
	// Signature is the base64 Ed25519 signature of the canonical JSON of
	// this attestation without its signature field.
	Signature string `json:"signature,omitempty"`
}

// AnswerDigest returns the lowercase hex SHA-256 of the canonical JSON of
// {"answer_json","answer_text","status"} (absent fields omitted): what an
// attestation signature covers of the answer itself.
func AnswerDigest(status AnswerStatus, text string, answerJSON json.RawMessage) (string, error) {
	doc := map[string]any{"status": status}
	if text != "" {
		doc["answer_text"] = text
	}
	if len(answerJSON) > 0 {
		doc["answer_json"] = answerJSON
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return ContextHash(raw)
}

// SigningBytes returns the bytes an attestation signature covers: the
// canonical JSON of the attestation with Signature empty.
func (a Attestation) SigningBytes() ([]byte, error) {
	a.Signature = ""
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return CanonicalJSON(raw)
}

// Usage counts LLM tokens (and, where reported, money) spent by a job's
// executor and on its answers.
type Usage struct {
	InputTokens       int     `json:"input_tokens"`
	OutputTokens      int     `json:"output_tokens"`
	CachedInputTokens int     `json:"cached_input_tokens,omitempty"`
	CostUSD           float64 `json:"cost_usd,omitempty"`
}

// AskRecord is a stored ask, returned in camelCase.
type AskRecord struct {
	AskID           string          `json:"askId"`
	JobID           string          `json:"jobId"`
	StepID          string          `json:"stepId"`
	AskType         AskType         `json:"askType"`
	Prompt          string          `json:"prompt"`
	ContextHash     string          `json:"contextHash"`
	ContextEnvelope json.RawMessage `json:"contextEnvelope"`
	Constraints     *AskConstraints `json:"constraints,omitempty"`
	RoleID          string          `json:"roleId,omitempty"`
	Meta            *AskMeta        `json:"meta,omitempty"`
	Status          AnswerStatus    `json:"status"`
	// Route names the answerer the router chose.
	Route string `json:"route"`
	// Attempt is the attempt of the job whose executor posted the ask:
	// when that attempt ends, the ask is closed (ERROR) if still pending.
	Attempt    int        `json:"attempt,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	DeadlineAt time.Time  `json:"deadlineAt"`
	AnsweredAt *time.Time `json:"answeredAt,omitempty"`
}

// AnswerRecord is a stored answer, returned in camelCase as the seed's SDK
// reads it.
type AnswerRecord struct {
	AskID       string          `json:"askId"`
	JobID       string          `json:"jobId"`
	StepID      string          `json:"stepId"`
	Status      AnswerStatus    `json:"status"`
	AnswerText  string          `json:"answerText,omitempty"`
	AnswerJSON  json.RawMessage `json:"answerJson,omitempty"`
	Attestation *Attestation    `json:"attestation,omitempty"`
	Artifacts   []string        `json:"artifacts,omitempty"`
	PolicyTrace json.RawMessage `json:"policyTrace,omitempty"`
	Cacheable   *bool           `json:"cacheable,omitempty"`
	AskBack     string          `json:"askBack,omitempty"`
	Error       string          `json:"error,omitempty"`
	Usage       *Usage          `json:"usage,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
}

// Event types of the ask protocol.
const (
	EventAsk    = "ask"
	EventAnswer = "answer"
	// EventAskDeferred records that an ask's answerer could not answer it
	// (the runner's provider failed) and left it to the orchestrator, with
	// the route and deadline it has from then on.
	EventAskDeferred = "ask_deferred"
)

// Values of Attestation.AnsweredBy.
const (
	AnsweredByRunner       = "runner"
	AnsweredByOrchestrator = "orchestrator"
	AnsweredByHuman        = "human"
	AnsweredByPolicy       = "policy"
	AnsweredByRelay        = "relay"
)

// CheckEnvelopeKeys returns an error naming the first object key in the
// envelope JSON raw that the TypeScript SDK would hash differently from
// RFC 8785: JavaScript lists array-index keys ("0", "10", …) before all
// others in numeric order, and drops "__proto__" when it rebuilds an
// object. Refusing such keys keeps every accepted envelope's hash equal in
// both SDKs. The error's path starts at the envelope ("facts.10").
func CheckEnvelopeKeys(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return checkKeys(v, "")
}

func checkKeys(v any, path string) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if k == "__proto__" || isArrayIndex(k) {
				return fmt.Errorf("%s: key %q is ordered or dropped differently by JavaScript; rename it so the hash matches the TypeScript SDK", p, k)
			}
			if err := checkKeys(x[k], p); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkKeys(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// isArrayIndex reports whether k is a canonical array index: a decimal
// integer without leading zeros below 2³²−1.
func isArrayIndex(k string) bool {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return false
	}
	var n uint64
	for _, c := range k {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	return n < 1<<32-1
}
