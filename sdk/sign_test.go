package sdk

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// runnerAnswer returns an answer func giving a runner answer signed by
// signer (nil: unsigned) whose text is then set to served.
func runnerAnswer(t *testing.T, signer ed25519.PrivateKey, status relaytype.AnswerStatus, served string) func(relaytype.Ask) relaytype.AnswerRecord {
	return func(a relaytype.Ask) relaytype.AnswerRecord {
		att := &relaytype.Attestation{ContextHash: a.ContextHash, RoleID: "clarifier", AnsweredBy: relaytype.AnsweredByRunner}
		if signer != nil {
			require.NoError(t, relaytype.SignAttestation(signer, a.AskID, status, "yes", nil, att))
		}
		return relaytype.AnswerRecord{AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: status, AnswerText: served, Attestation: att}
	}
}

func TestRunnerAnswersAreVerified(t *testing.T) {
	t.Parallel()
	_, other, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	env := map[string]string{EnvJobID: "job_sig", EnvStepID: "attempt-1"}

	for name, tc := range map[string]struct {
		answer  func(f *fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord
		wantErr error
	}{
		"valid": {answer: func(f *fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord {
			return runnerAnswer(t, f.signer, relaytype.StatusAnswered, "yes")
		}},
		"changed after signing": {wantErr: ErrBadSignature, answer: func(f *fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord {
			return runnerAnswer(t, f.signer, relaytype.StatusAnswered, "no")
		}},
		"signed by another key": {wantErr: ErrBadSignature, answer: func(*fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord {
			return runnerAnswer(t, other, relaytype.StatusAnswered, "yes")
		}},
		"unsigned": {wantErr: ErrUnsignedAnswer, answer: func(*fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord {
			return runnerAnswer(t, nil, relaytype.StatusAnswered, "yes")
		}},
		"unsigned rejection": {wantErr: ErrUnsignedAnswer, answer: func(*fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord {
			return runnerAnswer(t, nil, relaytype.StatusRejected, "yes")
		}},
		"orchestrator answer with a bad signature": {wantErr: ErrBadSignature, answer: func(*fakeRelay) func(relaytype.Ask) relaytype.AnswerRecord {
			return func(a relaytype.Ask) relaytype.AnswerRecord {
				rec := runnerAnswer(t, other, relaytype.StatusAnswered, "yes")(a)
				rec.Attestation.AnsweredBy = relaytype.AnsweredByOrchestrator
				return rec
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRelay(t)
			f.answer, f.unsigned = tc.answer(f), true
			ans, err := f.client(env).Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.Nil(t, ans, "an answer that does not verify is not handed out")
				return
			}
			require.NoError(t, err)
			require.True(t, ans.Verified)
			require.False(t, ans.KeyFetched)
			require.Equal(t, "yes", ans.Text)
		})
	}
}

func TestUnsignedNonRunnerAnswersPass(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	f.answer = func(a relaytype.Ask) relaytype.AnswerRecord {
		return relaytype.AnswerRecord{AskID: a.AskID, Status: relaytype.StatusAnswered, AnswerText: "from the orchestrator",
			Attestation: &relaytype.Attestation{ContextHash: a.ContextHash, AnsweredBy: relaytype.AnsweredByOrchestrator}}
	}
	ans, err := f.client(jobEnv(nil)).Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
	require.NoError(t, err)
	require.False(t, ans.Verified)
	require.Equal(t, "from the orchestrator", ans.Text)
}

func TestAnswerKeyFromEnvironment(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	pub := f.signer.Public().(ed25519.PublicKey)
	c := f.client(jobEnv(map[string]string{EnvAnswerKey: base64.StdEncoding.EncodeToString(pub)}))
	c.AnswerKey = nil
	ans, err := c.Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
	require.NoError(t, err)
	require.True(t, ans.Verified)
	require.False(t, ans.KeyFetched)

	// The key in the environment is the only one that counts: a relay
	// signing with another key is refused.
	_, other, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	f.mu.Lock()
	f.signer = other
	f.mu.Unlock()
	_, err = c.Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
	require.ErrorIs(t, err, ErrBadSignature)
}

func TestMalformedAnswerKeySendsNothing(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		c := f.client(jobEnv(map[string]string{EnvAnswerKey: bad}))
		c.AnswerKey = nil
		_, err := c.Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
		require.ErrorIs(t, err, ErrInvalidAsk)
		require.ErrorContains(t, err, EnvAnswerKey)
	}
	require.Empty(t, f.postBodies())
}

func TestNoAnswerKeyUnderRelayRefusesRunnerAnswers(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	f.pub = f.signer.Public().(ed25519.PublicKey) // served, but not trusted
	c := f.client(jobEnv(nil))
	c.AnswerKey = nil
	ans, err := c.Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
	require.ErrorIs(t, err, ErrNoAnswerKey)
	require.ErrorContains(t, err, EnvAnswerKey)
	require.Nil(t, ans)
}

func TestNoAnswerKeyOutsideRelayFetchesIt(t *testing.T) {
	t.Parallel()
	f := newFakeRelay(t)
	c := f.client(jobEnv(nil))
	c.AnswerKey, c.Token = nil, ""
	f.token = ""

	// No key served: nothing to verify with.
	_, err := c.Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
	require.ErrorIs(t, err, ErrNoAnswerKey)

	f.mu.Lock()
	f.pub = f.signer.Public().(ed25519.PublicKey)
	f.mu.Unlock()
	ans, err := c.Ask(context.Background(), relaytype.AskClarification, "ok?", nil)
	require.NoError(t, err)
	require.True(t, ans.Verified)
	require.True(t, ans.KeyFetched, "the answer says its key came from the relay's address")
}
