package httpapi_test

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// nestedArrays returns an envelope whose facts.x holds n nested arrays.
func nestedArrays(n int) json.RawMessage {
	return json.RawMessage(`{"job_snapshot":{},"role":"default","facts":{"x":` +
		strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`)
}

// TestPostAskHostileEnvelopeIsCheap reproduces the finding: any job token
// could post a 20 KB envelope of nested arrays that cost the relay about
// 160 MB (quadratic in the depth) before it was refused. Now it is
// refused on its raw bytes, naming where it gets too deep, for little
// more than the request's own bytes. Not parallel: TotalAlloc counts
// every goroutine's allocations.
func TestPostAskHostileEnvelopeIsCheap(t *testing.T) {
	b := setup(t)
	job := b.running(t)
	tok := b.tokens.Mint(job.ID)
	env := nestedArrays(9980)
	require.InDelta(t, 20000, len(env), 100)
	a := &relaytype.Ask{Type: "Ask", AskID: uuid.NewString(), JobID: job.ID, StepID: "s",
		AskType: relaytype.AskClarification, Prompt: "p", ContextHash: strings.Repeat("0", 64), ContextEnvelope: env}
	body, err := json.Marshal(a)
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := b.do(t, http.MethodPost, "/asks", tok, body)
	runtime.ReadMemStats(&after)
	used := after.TotalAlloc - before.TotalAlloc
	t.Logf("POST /asks with a %d-byte envelope nested %d deep: %d bytes allocated", len(env), 9982, used)

	e := r.requireError(t, 400, relaytype.CodeInvalidRequest,
		"context_envelope.facts.x"+strings.Repeat("[0]", relaytype.MaxEnvelopeDepth-2))
	require.Contains(t, e.Message, "32 levels")
	require.Less(t, used, uint64(10<<20), "allocated %d bytes", used)
	require.Equal(t, relaytype.StateRunning, b.state(t, job.ID).State)
}

// An envelope within the limits is accepted, and its hash is the one the
// SDKs compute.
func TestPostAskEnvelopeAtTheLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	tok := b.tokens.Mint(job.ID)

	deepest := nestedArrays(relaytype.MaxEnvelopeDepth - 2)
	hash, err := relaytype.ContextHash(deepest)
	require.NoError(t, err)
	a := &relaytype.Ask{Type: "Ask", AskID: uuid.NewString(), JobID: job.ID, StepID: "s",
		AskType: relaytype.AskClarification, Prompt: "p", ContextHash: hash, ContextEnvelope: deepest}
	rec := b.postAsk(t, tok, a)
	require.Equal(t, hash, rec.ContextHash)

	// One more level, or one byte too many, is refused before hashing.
	for name, env := range map[string]json.RawMessage{
		"too deep":  nestedArrays(relaytype.MaxEnvelopeDepth - 1),
		"too large": json.RawMessage(`{"job_snapshot":{},"facts":{"pad":"` + strings.Repeat("x", relaytype.MaxEnvelopeBytes) + `"}}`),
		"js key":    json.RawMessage(`{"job_snapshot":{},"tool_caps":{"db":[{"0":true}]}}`),
	} {
		a := &relaytype.Ask{Type: "Ask", AskID: uuid.NewString(), JobID: job.ID, StepID: "s",
			AskType: relaytype.AskClarification, Prompt: "p", ContextHash: strings.Repeat("0", 64), ContextEnvelope: env}
		r := b.do(t, http.MethodPost, "/asks", tok, a)
		e := r.err(t)
		require.Equal(t, http.StatusBadRequest, r.status, name)
		require.Equal(t, relaytype.CodeInvalidRequest, e.Code, name)
		require.True(t, strings.HasPrefix(e.Field, "context_envelope"), "%s: %s", name, e.Field)
		switch name {
		case "too large":
			require.Equal(t, "context_envelope", e.Field)
		case "js key":
			require.Equal(t, "context_envelope.tool_caps.db[0].0", e.Field)
		}
	}
}
