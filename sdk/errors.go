package sdk

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Sentinel errors; test for them with errors.Is. For the answer statuses
// (ErrRejected, ErrTimedOut, ErrAnswerError) Client.Ask returns the answer
// as well as the error.
var (
	// ErrRejected: the answerer refused the ask (status REJECTED).
	ErrRejected = errors.New("ask rejected")
	// ErrTimedOut: nobody answered before the ask's deadline (status TIMEOUT).
	ErrTimedOut = errors.New("ask timed out")
	// ErrAnswerError: the answerer failed (status ERROR).
	ErrAnswerError = errors.New("answerer failed")
	// ErrContextMismatch: the relay rejected the envelope hash
	// (E_CONTEXT_MISMATCH), or an answer is attested for a context other
	// than the one sent. It is relaytype.ErrContextMismatch, so
	// relaytype.CodeOf maps it to E_CONTEXT_MISMATCH.
	ErrContextMismatch = relaytype.ErrContextMismatch
	// ErrProtocol: the relay refused the request for good (a 4xx other than
	// 408 and 429) or answered with something that breaks the protocol.
	ErrProtocol = errors.New("relay protocol error")
	// ErrInvalidAsk: the ask could not be built: unknown ask type, empty
	// prompt, TASK_RELAY_JOB_ID or TASK_RELAY_STEP_ID unset, output schema not JSON, a malformed
	// origin. Nothing was sent.
	ErrInvalidAsk = errors.New("invalid ask")
	// ErrBadSignature: the answer's attestation is signed, but the
	// signature does not verify against the relay's key (another key, or
	// the answer was changed after signing). It is
	// relaytype.ErrBadSignature.
	ErrBadSignature = relaytype.ErrBadSignature
	// ErrUnsignedAnswer: an answer of the Answer Runner (answered_by
	// "runner") carries no signature. The relay signs every runner
	// answer, so it was altered on the way.
	ErrUnsignedAnswer = errors.New("runner answer is not signed")
	// ErrNoAnswerKey: a runner answer cannot be verified for want of the
	// relay's key: the client has a job token (it runs under a relay) but
	// neither Client.AnswerKey nor TASK_RELAY_ANSWER_PUBKEY, or the relay
	// serves no key at GET /attestation-key.
	ErrNoAnswerKey = errors.New("no attestation key to verify the runner answer")
)

// APIError is an error response of the relay's HTTP API: its status and
// the {"code","message","field"} body. errors.Is(err, ErrContextMismatch)
// holds for code E_CONTEXT_MISMATCH and errors.Is(err, ErrProtocol) for
// every other code.
type APIError struct {
	// Op is the request, for example "POST /asks".
	Op         string
	StatusCode int
	Code       relaytype.ErrorCode
	Message    string
	// Field names the offending request field, when the relay says.
	Field string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		msg += ": " + string(e.Code)
	}
	// The relay's messages often start with the field already.
	if e.Field != "" && !strings.HasPrefix(e.Message, e.Field) {
		msg += ": " + e.Field
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is reports whether target is the sentinel e stands for.
func (e *APIError) Is(target error) bool {
	if e.Code == relaytype.CodeContextMismatch {
		return target == ErrContextMismatch
	}
	return target == ErrProtocol
}
