// Package sdk is the Go client executors use to ask the relay questions.
//
// An executor the relay runs finds its job in the environment
// (TASK_RELAY_JOB_ID, TASK_RELAY_STEP_ID, TASK_RELAY_REPO, TASK_RELAY_FACT_*,
// ASK_ANSWER_ORIGIN, TASK_RELAY_TOKEN, TASK_RELAY_ANSWER_PUBKEY). Ask
// builds the context envelope from it, posts the ask with the envelope's
// hash, long-polls for the answer across reconnects, and checks that the
// answer is attested for the context it sent:
//
//	ans, err := sdk.Ask(ctx, relaytype.AskClarification, "Which logger should new code use?", nil)
//
// # Verification of answers
//
// Every answer of the Answer Runner (attestation answered_by "runner") must
// carry an Ed25519 signature that verifies against the relay's attestation
// key and covers this answer (status, text, JSON) to this ask; otherwise
// Ask returns ErrUnsignedAnswer or ErrBadSignature and no answer. The key
// is Client.AnswerKey, else TASK_RELAY_ANSWER_PUBKEY, which the relay sets
// for every executor it starts. Without either, a client with a job token
// (running under a relay) refuses runner answers with ErrNoAnswerKey; a
// client without one fetches the key from GET /attestation-key at Origin,
// which proves only that the answer came through the same address, and
// marks the answer KeyFetched.
//
// Answers of the policy, the orchestrator, a person or the relay itself
// (TIMEOUT) are not signed: for them Ask checks that the answer is for the
// ask it sent and, when the answer names a context hash, that it is the
// one sent. A signature they do carry must verify too.
//
// POST /asks is idempotent for one ask ID, so transient failures (refused
// or reset connections, 5xx, 408, 429) are retried with backoff; the long
// poll reconnects until the context ends.
package sdk

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Environment variables the relay gives every executor.
const (
	EnvOrigin        = "ASK_ANSWER_ORIGIN"
	EnvToken         = "TASK_RELAY_TOKEN"
	EnvJobID         = "TASK_RELAY_JOB_ID"
	EnvStepID        = "TASK_RELAY_STEP_ID"
	EnvRepo          = "TASK_RELAY_REPO"
	EnvCommitSHA     = "TASK_RELAY_COMMIT_SHA"
	EnvProfile       = "TASK_RELAY_PROFILE"
	EnvPolicyVersion = "TASK_RELAY_POLICY_VERSION"
	// EnvAnswerKey holds the relay's attestation public key: the standard
	// base64 of the 32-byte Ed25519 key, as GET /attestation-key serves it.
	EnvAnswerKey = "TASK_RELAY_ANSWER_PUBKEY"
	// EnvFactPrefix starts the name of a fact variable:
	// TASK_RELAY_FACT_branch=main is the fact "branch" with value "main".
	EnvFactPrefix = "TASK_RELAY_FACT_"
)

// Defaults.
const (
	DefaultOrigin = "http://127.0.0.1:3415"
	DefaultWait   = 25 * time.Second
)

// Retry timing. Unexported fields of Client override them in tests.
const (
	defaultBackoffBase = 100 * time.Millisecond
	defaultBackoffCap  = 2 * time.Second
	defaultGiveUp      = 30 * time.Second
	// pollGrace is how long past its wait a long poll may stay silent
	// before it counts as a dead connection.
	pollGrace = 10 * time.Second
	// maxBody bounds the response bodies read.
	maxBody = 32 << 20
)

// Client asks the relay questions. The zero value is ready to use and reads
// its settings from the environment. A Client is safe for concurrent use;
// do not change its fields while it is in use.
type Client struct {
	// Origin is the relay's Ask/Answer HTTP API, for example
	// http://127.0.0.1:3415. Defaults to ASK_ANSWER_ORIGIN, else
	// DefaultOrigin.
	Origin string
	// Token is the bearer token the relay gave the job. Defaults to
	// TASK_RELAY_TOKEN; when both are empty no Authorization header is sent.
	Token string
	// HTTPClient sends the requests. Its Timeout, if any, must exceed the
	// long-poll wait. Defaults to http.DefaultClient.
	HTTPClient *http.Client
	// Env looks up an environment variable, for the settings above, the job
	// and step IDs and the envelope. Defaults to os.LookupEnv.
	Env func(string) (string, bool)
	// Environ lists the environment as KEY=value entries, to find the
	// TASK_RELAY_FACT_* names; each fact's value is then read through Env.
	// Defaults to os.Environ.
	Environ func() []string
	// AnswerKey is the relay's attestation public key, which every runner
	// answer must be signed with. Defaults to TASK_RELAY_ANSWER_PUBKEY;
	// see the package documentation for a client with neither.
	AnswerKey ed25519.PublicKey

	// Retry timing; zero means the default* constants.
	backoffBase, backoffCap, giveUp time.Duration

	keyMu sync.Mutex
	key   ed25519.PublicKey // the relay's attestation key, once fetched
}

// answerKey returns the configured attestation key: AnswerKey, else
// TASK_RELAY_ANSWER_PUBKEY, else nil.
func (c *Client) answerKey() (ed25519.PublicKey, error) {
	if c.AnswerKey != nil {
		if len(c.AnswerKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: AnswerKey is %d bytes, not an Ed25519 public key", ErrInvalidAsk, len(c.AnswerKey))
		}
		return c.AnswerKey, nil
	}
	v, _ := c.lookup(EnvAnswerKey)
	if v = strings.TrimSpace(v); v == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %s is not the base64 of an Ed25519 public key", ErrInvalidAsk, EnvAnswerKey)
	}
	return ed25519.PublicKey(raw), nil
}

// NewFromEnv returns a client for the relay at ASK_ANSWER_ORIGIN (default
// http://127.0.0.1:3415) with the token TASK_RELAY_TOKEN, as the relay
// sets them for an executor.
func NewFromEnv() (*Client, error) {
	c := &Client{}
	origin, err := c.origin()
	if err != nil {
		return nil, err
	}
	c.Origin = origin.String()
	c.Token = c.token()
	return c, nil
}

// AskOptions are the optional parts of an ask. The zero value asks with
// the defaults.
type AskOptions struct {
	// Role is the answerer role (role_id) and the envelope's role, for
	// example "clarifier". Defaults to the relay's choice for the ask type;
	// the envelope then says "default".
	Role string
	// StepID is the executor's step; the relay requires one. Defaults to
	// TASK_RELAY_STEP_ID.
	StepID string
	// AllowedTools are the tools the answerer may use. Each one not in
	// ToolCaps is added to the envelope's tool_caps with no capabilities.
	AllowedTools []string
	// ToolCaps maps a tool to the capabilities it is granted; it becomes the
	// envelope's tool_caps.
	ToolCaps map[string]any
	// TimeoutS bounds how long the relay waits for an answer, in seconds.
	// Defaults to the relay's timeout.
	TimeoutS int
	// MaxTokens bounds the answer's length. Defaults to the role's limit.
	MaxTokens int
	// OutputSchema is a JSON Schema the answer's JSON must satisfy.
	OutputSchema json.RawMessage
	// SystemAppend is appended to the Answer Runner's system prompt.
	SystemAppend string
	// AskID identifies the ask; resending an ask with the same ID and
	// payload is idempotent. Defaults to a new random UUID.
	AskID string
	// Wait is how long each long-poll request asks the relay to hold.
	// Defaults to DefaultWait.
	Wait time.Duration
}

// Answer is the relay's answer to an ask.
type Answer struct {
	Status relaytype.AnswerStatus
	Text   string
	JSON   json.RawMessage
	// Attestation says what produced the answer; it may be nil for answers
	// given by the orchestrator.
	Attestation *relaytype.Attestation
	// AskBack is a question the answerer asks back.
	AskBack string
	// Error explains an ERROR, REJECTED or TIMEOUT status.
	Error string
	// Record is the answer as the relay stored it.
	Record *relaytype.AnswerRecord
	// Verified is set when the attestation carried a signature that
	// verified against the relay's key. It is always set for a runner
	// answer that Ask returns.
	Verified bool
	// KeyFetched is set when the signature was checked against a key
	// fetched from the relay's address, for want of AnswerKey and
	// TASK_RELAY_ANSWER_PUBKEY: it shows the answer came from whoever
	// answers at that address, not that it came from the relay.
	KeyFetched bool
}

// Ask asks the relay at ASK_ANSWER_ORIGIN a question for the job in the
// environment and waits for the answer. See Client.Ask.
func Ask(ctx context.Context, typ relaytype.AskType, prompt string, opts *AskOptions) (*Answer, error) {
	c, err := NewFromEnv()
	if err != nil {
		return nil, err
	}
	return c.Ask(ctx, typ, prompt, opts)
}

// Ask posts a question for the job in TASK_RELAY_JOB_ID and the step in
// TASK_RELAY_STEP_ID (or opts.StepID), and waits until it is answered or
// ctx ends. The envelope is built by Envelope.
//
// It returns the answer with a nil error when the status is ANSWERED. For
// REJECTED, TIMEOUT and ERROR it returns the answer and an error wrapping
// ErrRejected, ErrTimedOut or ErrAnswerError. An answer attested for
// another context hash is returned with an error wrapping
// ErrContextMismatch. A runner answer that does not verify (see the
// package documentation) is not returned: the error wraps
// ErrUnsignedAnswer, ErrBadSignature or ErrNoAnswerKey. Errors of the
// relay's API are *APIError.
func (c *Client) Ask(ctx context.Context, typ relaytype.AskType, prompt string, opts *AskOptions) (*Answer, error) {
	var o AskOptions
	if opts != nil {
		o = *opts
	}
	origin, err := c.origin()
	if err != nil {
		return nil, err
	}
	if _, err := c.answerKey(); err != nil {
		return nil, err
	}
	ask, err := c.newAsk(typ, prompt, &o)
	if err != nil {
		return nil, err
	}
	body, err := marshal(ask)
	if err != nil {
		return nil, fmt.Errorf("%w: encode ask: %w", ErrInvalidAsk, err)
	}
	answerURL, err := c.post(ctx, origin, ask.AskID, body)
	if err != nil {
		return nil, err
	}
	wait := o.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	rec, err := c.poll(ctx, answerURL, wait)
	if err != nil {
		return nil, err
	}
	ans, err := checkAnswer(ask, rec)
	if err != nil && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrTimedOut) && !errors.Is(err, ErrAnswerError) {
		return ans, err
	}
	if verr := c.verify(ctx, origin, rec, ans); verr != nil {
		return nil, verr
	}
	return ans, err
}

// verify checks the signature of a runner answer, or of any answer that
// carries one, and sets ans.Verified and ans.KeyFetched.
func (c *Client) verify(ctx context.Context, origin *url.URL, rec *relaytype.AnswerRecord, ans *Answer) error {
	att := rec.Attestation
	runner := att != nil && att.AnsweredBy == relaytype.AnsweredByRunner
	signed := att != nil && att.Signature != ""
	switch {
	case !runner && !signed:
		return nil
	case !signed:
		return fmt.Errorf("%w: ask %s", ErrUnsignedAnswer, rec.AskID)
	}
	pub, err := c.answerKey()
	if err != nil {
		return err
	}
	if pub == nil {
		if c.token() != "" {
			return fmt.Errorf("%w: %s is not set", ErrNoAnswerKey, EnvAnswerKey)
		}
		if pub, err = c.fetchKey(ctx, origin); err != nil {
			return err
		}
		ans.KeyFetched = true
	}
	if err := relaytype.VerifyAttestation(pub, rec); err != nil {
		return fmt.Errorf("ask %s: %w", rec.AskID, err)
	}
	ans.Verified = true
	return nil
}

// fetchKey returns the relay's public key, fetched once from GET
// /attestation-key.
func (c *Client) fetchKey(ctx context.Context, origin *url.URL) (ed25519.PublicKey, error) {
	c.keyMu.Lock()
	pub := c.key
	c.keyMu.Unlock()
	if pub == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin.JoinPath("attestation-key").String(), nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		resp, err := c.httpClient().Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w: fetch attestation key: %w", ErrProtocol, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%w: fetch attestation key: HTTP %d", ErrNoAnswerKey, resp.StatusCode)
		}
		var k struct {
			Alg       string `json:"alg"`
			PublicKey string `json:"publicKey"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&k); err != nil {
			return nil, fmt.Errorf("%w: attestation key: %w", ErrProtocol, err)
		}
		raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || k.Alg != "Ed25519" || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: attestation key is not an Ed25519 public key", ErrProtocol)
		}
		pub = ed25519.PublicKey(raw)
		c.keyMu.Lock()
		c.key = pub
		c.keyMu.Unlock()
	}
	return pub, nil
}

// newAsk validates the ask and builds its wire form, envelope and hash
// included.
func (c *Client) newAsk(typ relaytype.AskType, prompt string, o *AskOptions) (*relaytype.Ask, error) {
	if !typ.Valid() {
		return nil, fmt.Errorf("%w: unknown ask type %q", ErrInvalidAsk, typ)
	}
	if strings.TrimSpace(prompt) == "" {
		return nil, fmt.Errorf("%w: empty prompt", ErrInvalidAsk)
	}
	jobID, _ := c.lookup(EnvJobID)
	if jobID == "" {
		return nil, fmt.Errorf("%w: %s is not set", ErrInvalidAsk, EnvJobID)
	}
	if o.TimeoutS < 0 || o.MaxTokens < 0 {
		return nil, fmt.Errorf("%w: negative timeout or max tokens", ErrInvalidAsk)
	}
	if len(o.OutputSchema) > 0 && !json.Valid(o.OutputSchema) {
		return nil, fmt.Errorf("%w: output schema is not valid JSON", ErrInvalidAsk)
	}
	askID := o.AskID
	if askID == "" {
		askID = uuid.NewString()
	} else if _, err := uuid.Parse(askID); err != nil {
		return nil, fmt.Errorf("%w: ask id %q is not a UUID", ErrInvalidAsk, askID)
	}
	stepID := o.StepID
	if stepID == "" {
		stepID, _ = c.lookup(EnvStepID)
	}
	if strings.TrimSpace(stepID) == "" {
		return nil, fmt.Errorf("%w: %s is not set", ErrInvalidAsk, EnvStepID)
	}

	env, err := c.Envelope(o)
	if err != nil {
		return nil, err
	}
	raw, err := marshal(env)
	if err != nil {
		return nil, fmt.Errorf("%w: encode envelope: %w", ErrInvalidAsk, err)
	}
	if err := relaytype.CheckEnvelopeKeys(raw); err != nil {
		return nil, fmt.Errorf("%w: context envelope: %w", ErrInvalidAsk, err)
	}
	// Send the canonical bytes themselves, so that the envelope on the wire
	// is exactly what was hashed.
	canonical, err := relaytype.CanonicalJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAsk, err)
	}
	hash, err := relaytype.ContextHash(canonical)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAsk, err)
	}

	ask := &relaytype.Ask{
		Type:            "Ask",
		AskID:           askID,
		JobID:           jobID,
		StepID:          stepID,
		AskType:         typ,
		Prompt:          prompt,
		ContextHash:     hash,
		ContextEnvelope: canonical,
		RoleID:          o.Role,
	}
	if o.TimeoutS > 0 || o.MaxTokens > 0 || len(o.AllowedTools) > 0 {
		ask.Constraints = &relaytype.AskConstraints{
			TimeoutS:     o.TimeoutS,
			MaxTokens:    o.MaxTokens,
			AllowedTools: o.AllowedTools,
		}
	}
	if o.SystemAppend != "" || len(o.OutputSchema) > 0 {
		ask.Meta = &relaytype.AskMeta{PromptOverrides: &relaytype.PromptOverrides{
			SystemAppend: o.SystemAppend,
			OutputSchema: o.OutputSchema,
		}}
	}
	return ask, nil
}

// Envelope builds the context envelope of an ask from the environment and
// opts (which may be nil): the job snapshot from TASK_RELAY_REPO,
// TASK_RELAY_COMMIT_SHA, TASK_RELAY_PROFILE and TASK_RELAY_POLICY_VERSION,
// facts from TASK_RELAY_FACT_<name> (string values), the role from
// opts.Role, and tool_caps from opts.ToolCaps plus an empty entry for each
// of opts.AllowedTools not in it. The smart defaults of
// relaytype.NewEnvelope apply.
func (c *Client) Envelope(opts *AskOptions) (relaytype.Envelope, error) {
	var o AskOptions
	if opts != nil {
		o = *opts
	}
	get := func(k string) string { v, _ := c.lookup(k); return v }

	environ := os.Environ
	if c.Environ != nil {
		environ = c.Environ
	}
	facts := map[string]any{}
	for _, kv := range environ() {
		k, _, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, EnvFactPrefix)
		if !ok || name == "" {
			continue
		}
		if v, ok := c.lookup(k); ok {
			facts[name] = v
		}
	}

	caps := make(map[string]any, len(o.ToolCaps)+len(o.AllowedTools))
	for k, v := range o.ToolCaps {
		caps[k] = v
	}
	for _, tool := range o.AllowedTools {
		if tool == "" {
			return relaytype.Envelope{}, fmt.Errorf("%w: empty allowed tool name", ErrInvalidAsk)
		}
		if _, ok := caps[tool]; !ok {
			caps[tool] = map[string]any{}
		}
	}
	return relaytype.NewEnvelope(get(EnvRepo), get(EnvCommitSHA), get(EnvProfile), get(EnvPolicyVersion),
		o.Role, facts, caps), nil
}

// post sends the ask until the relay takes it, and returns the URL of its
// answer.
func (c *Client) post(ctx context.Context, origin *url.URL, askID string, body []byte) (*url.URL, error) {
	const op = "POST /asks"
	target := origin.JoinPath("asks")
	var (
		failures  int
		firstFail time.Time
	)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidAsk, err)
		}
		req.Header.Set("Content-Type", "application/json")
		c.authorize(req)

		loc, err := c.postOnce(req, origin, askID)
		if err == nil {
			return loc, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return nil, perm.err
		}
		if firstFail.IsZero() {
			firstFail = time.Now()
		} else if giveUp := durationOr(c.giveUp, defaultGiveUp); time.Since(firstFail) >= giveUp {
			return nil, fmt.Errorf("%s: relay unavailable for %s: %w", op, giveUp.Round(time.Second), err)
		}
		if err := c.backoff(ctx, failures); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		failures++
	}
}

// permanentError marks an error not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (c *Client) postOnce(req *http.Request, origin *url.URL, askID string) (*url.URL, error) {
	const op = "POST /asks"
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted:
	default:
		return nil, apiError(op, resp)
	}
	var rec relaytype.AskRecord
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&rec); err != nil {
		// A body cut short by a dropped connection; posting again is safe.
		return nil, fmt.Errorf("%s: read ask record: %w", op, err)
	}
	if rec.AskID != "" && rec.AskID != askID {
		return nil, &permanentError{fmt.Errorf("%w: %s: relay created ask %q for ask %q", ErrProtocol, op, rec.AskID, askID)}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil {
			return nil, &permanentError{fmt.Errorf("%w: %s: bad Location %q", ErrProtocol, op, loc)}
		}
		return origin.ResolveReference(u), nil
	}
	return origin.JoinPath("asks", askID, "answer"), nil
}

// poll long-polls answerURL until the answer arrives or ctx ends.
func (c *Client) poll(ctx context.Context, answerURL *url.URL, wait time.Duration) (*relaytype.AnswerRecord, error) {
	op := "GET " + answerURL.Path
	u := *answerURL
	q := u.Query()
	// Whole seconds with a unit: both time.ParseDuration and a plain
	// seconds count (after trimming "s") read it.
	q.Set("wait", fmt.Sprintf("%ds", max(1, int((wait+time.Second-1)/time.Second))))
	u.RawQuery = q.Encode()

	failures := 0
	for {
		rec, answered, err := c.pollOnce(ctx, u.String(), wait)
		switch {
		case err == nil && answered:
			return rec, nil
		case err == nil:
			// 204: not answered yet; ask again at once.
			failures = 0
			continue
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return nil, perm.err
		}
		if err := c.backoff(ctx, failures); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		failures++
	}
}

func (c *Client) pollOnce(ctx context.Context, target string, wait time.Duration) (*relaytype.AnswerRecord, bool, error) {
	// A long poll that stays silent well past its wait is a dead
	// connection; give up on it and reconnect.
	rctx, cancel := context.WithTimeout(ctx, wait+pollGrace)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, false, &permanentError{fmt.Errorf("%w: %w", ErrProtocol, err)}
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, false, err
	}
	defer drain(resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil, false, nil
	case http.StatusOK:
	default:
		return nil, false, apiError("GET "+req.URL.Path, resp)
	}
	var rec relaytype.AnswerRecord
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&rec); err != nil {
		return nil, false, fmt.Errorf("read answer: %w", err)
	}
	return &rec, true, nil
}

// checkAnswer turns an answer record into the result of Ask.
func checkAnswer(ask *relaytype.Ask, rec *relaytype.AnswerRecord) (*Answer, error) {
	if rec.AskID != "" && rec.AskID != ask.AskID {
		return nil, fmt.Errorf("%w: answer is for ask %q, not %q", ErrProtocol, rec.AskID, ask.AskID)
	}
	if !rec.Status.ValidAnswer() {
		return nil, fmt.Errorf("%w: answer has status %q", ErrProtocol, rec.Status)
	}
	ans := &Answer{
		Status:      rec.Status,
		Text:        rec.AnswerText,
		JSON:        rec.AnswerJSON,
		Attestation: rec.Attestation,
		AskBack:     rec.AskBack,
		Error:       rec.Error,
		Record:      rec,
	}
	if a := rec.Attestation; a != nil && a.ContextHash != ask.ContextHash {
		return ans, fmt.Errorf("%w: answer attested for context %s, ask sent %s", ErrContextMismatch, a.ContextHash, ask.ContextHash)
	}
	var sentinel error
	switch rec.Status {
	case relaytype.StatusAnswered:
		return ans, nil
	case relaytype.StatusRejected:
		sentinel = ErrRejected
	case relaytype.StatusTimeout:
		sentinel = ErrTimedOut
	default:
		sentinel = ErrAnswerError
	}
	detail := rec.Error
	if detail == "" {
		detail = rec.AnswerText
	}
	if detail == "" {
		return ans, sentinel
	}
	return ans, fmt.Errorf("%w: %s", sentinel, detail)
}

// apiError reads an error response. Statuses worth retrying come back as
// plain errors, the rest as *permanentError around an *APIError.
func apiError(op string, resp *http.Response) error {
	e := &APIError{Op: op, StatusCode: resp.StatusCode}
	var body struct {
		Code    relaytype.ErrorCode `json:"code"`
		Message string              `json:"message"`
		Field   string              `json:"field"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &body) == nil {
		e.Code, e.Message, e.Field = body.Code, body.Message, body.Field
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	switch s := resp.StatusCode; {
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		return e
	case s == http.StatusNoContent, s < 400:
		// A success status the protocol has no use for here.
		return &permanentError{fmt.Errorf("%w: %s: unexpected status %d", ErrProtocol, op, s)}
	}
	return &permanentError{e}
}

// backoff sleeps before retry number failures (from 0): exponential from
// backoffBase, capped at backoffCap, with jitter over the upper half.
func (c *Client) backoff(ctx context.Context, failures int) error {
	d := durationOr(c.backoffBase, defaultBackoffBase)
	limit := durationOr(c.backoffCap, defaultBackoffCap)
	for i := 0; i < failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func (c *Client) lookup(key string) (string, bool) {
	if c.Env != nil {
		return c.Env(key)
	}
	return os.LookupEnv(key)
}

func (c *Client) origin() (*url.URL, error) {
	s := c.Origin
	if s == "" {
		s, _ = c.lookup(EnvOrigin)
	}
	if s == "" {
		s = DefaultOrigin
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: relay origin %q is not an http(s) URL", ErrInvalidAsk, s)
	}
	return u, nil
}

func (c *Client) token() string {
	if c.Token != "" {
		return c.Token
	}
	t, _ := c.lookup(EnvToken)
	return t
}

func (c *Client) authorize(req *http.Request) {
	if t := c.token(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// marshal encodes v as JSON without escaping <, > and &.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// drain reads what is left of a response body, so the connection can be
// reused, and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
