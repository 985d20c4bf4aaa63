package sdk

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestSignedAttestationIsVerified(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	_, otherPriv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	env := map[string]string{"TASK_RELAY_JOB_ID": "job_sig", "TASK_RELAY_STEP_ID": "attempt-1"}

	for name, tc := range map[string]struct {
		signer  ed25519.PrivateKey
		tamper  bool
		wantErr bool
	}{
		"valid":       {signer: priv},
		"tampered":    {signer: priv, tamper: true, wantErr: true},
		"foreign key": {signer: otherPriv, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRelay(t)
			f.pub = pub
			f.answer = func(a relaytype.Ask) relaytype.AnswerRecord {
				att := &relaytype.Attestation{ContextHash: a.ContextHash, RoleID: "clarifier", AnsweredBy: "runner"}
				require.NoError(t, relaytype.SignAttestation(tc.signer, a.AskID, relaytype.StatusAnswered, "yes", nil, att))
				text := "yes"
				if tc.tamper {
					text = "no"
				}
				return relaytype.AnswerRecord{AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: relaytype.StatusAnswered, AnswerText: text, Attestation: att}
			}
			ans, err := f.client(env).Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrBadSignature)
				return
			}
			require.NoError(t, err)
			require.True(t, ans.Verified)
			require.Equal(t, "yes", ans.Text)
		})
	}
}
