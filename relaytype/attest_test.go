package relaytype_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestAttestationSignature(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	att := &relaytype.Attestation{ContextHash: "abc", RoleID: "policy_decider", RoleVersion: "v1", Model: "m", PromptFingerprint: "f", PolicyVersion: "2.0"}
	js := json.RawMessage(`{"decision":"ALLOW","rules":["r1"]}`)
	require.NoError(t, relaytype.SignAttestation(priv, "ask-1", relaytype.StatusAnswered, "", js, att))
	rec := &relaytype.AnswerRecord{AskID: "ask-1", Status: relaytype.StatusAnswered, AnswerJSON: json.RawMessage(`{"rules":["r1"], "decision":"ALLOW"}`), Attestation: att}
	require.NoError(t, relaytype.VerifyAttestation(pub, rec), "key order and spacing do not matter")

	for name, mutate := range map[string]func(r *relaytype.AnswerRecord){
		"answer changed": func(r *relaytype.AnswerRecord) { r.AnswerJSON = json.RawMessage(`{"decision":"DENY","rules":["r1"]}`) },
		"status changed": func(r *relaytype.AnswerRecord) { r.Status = relaytype.StatusRejected },
		"other ask":      func(r *relaytype.AnswerRecord) { r.AskID = "ask-2" },
		"model changed":  func(r *relaytype.AnswerRecord) { a := *r.Attestation; a.Model = "x"; r.Attestation = &a },
		"unsigned":       func(r *relaytype.AnswerRecord) { a := *r.Attestation; a.Signature = ""; r.Attestation = &a },
	} {
		c := *rec
		mutate(&c)
		require.ErrorIs(t, relaytype.VerifyAttestation(pub, &c), relaytype.ErrBadSignature, name)
	}
	other, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	require.ErrorIs(t, relaytype.VerifyAttestation(other, rec), relaytype.ErrBadSignature)
}
