package cli

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
	"github.com/mcp-task-relay/mcp-task-relay/sdk"
)

// runnerAnswered returns a runner answer "Use log/slog." signed by signer
// (nil: unsigned), then served with text.
func runnerAnswered(t *testing.T, signer ed25519.PrivateKey, text string) func(relaytype.Ask) relaytype.AnswerRecord {
	return func(ask relaytype.Ask) relaytype.AnswerRecord {
		rec := attested(ask, relaytype.StatusAnswered)
		rec.Attestation.AnsweredBy = relaytype.AnsweredByRunner
		if signer != nil {
			require.NoError(t, relaytype.SignAttestation(signer, ask.AskID, rec.Status, "Use log/slog.", nil, rec.Attestation))
		}
		rec.AnswerText = text
		return rec
	}
}

func TestAskVerifiesRunnerAnswers(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	_, other, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	key := base64.StdEncoding.EncodeToString(pub)

	for _, tc := range []struct {
		name   string
		answer func(relaytype.Ask) relaytype.AnswerRecord
		noKey  bool
		code   int
		msg    string
	}{
		{name: "signed", answer: runnerAnswered(t, priv, "Use log/slog.")},
		{name: "changed after signing", answer: runnerAnswered(t, priv, "Use fmt.Println."), code: askExitUnverified,
			msg: "attestation signature does not verify: the answer was changed after signing"},
		{name: "signed by another key", answer: runnerAnswered(t, other, "Use log/slog."), code: askExitUnverified,
			msg: "attestation signature does not verify: signed by key"},
		{name: "unsigned", answer: runnerAnswered(t, nil, "Use log/slog."), code: askExitUnverified,
			msg: "runner answer is not signed"},
		{name: "no key under the relay", answer: runnerAnswered(t, priv, "Use log/slog."), noKey: true, code: askExitUnverified,
			msg: "no attestation key to verify the runner answer: TASK_RELAY_ANSWER_PUBKEY is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			relay := newAskRelay(t, tc.answer)
			env := relay.env()
			if !tc.noKey {
				env[sdk.EnvAnswerKey] = key
			}
			if tc.code == 0 {
				run := runAsk(t, env, "", "--type", "clarification", "Which logger?")
				require.Equal(t, 0, run.code, "stderr: %s", run.stderr)
				require.Equal(t, "Use log/slog.\n", run.stdout)
				require.Empty(t, run.stderr)
				return
			}
			requireFailed(t, runAsk(t, env, "", "--type", "clarification", "Which logger?"), tc.code, tc.msg)
			// An answer that does not verify is not printed, even with --json.
			requireFailed(t, runAsk(t, env, "", "--type", "clarification", "--json", "Which logger?"), tc.code, tc.msg)
		})
	}
}

func TestAskMalformedAnswerKeyIsUsageError(t *testing.T) {
	t.Parallel()
	relay := newAskRelay(t, runnerAnswered(t, nil, "x"))
	env := relay.env()
	env[sdk.EnvAnswerKey] = "not-a-key"
	requireFailed(t, runAsk(t, env, "", "--type", "clarification", "Which logger?"), askExitUsage, "TASK_RELAY_ANSWER_PUBKEY")
	require.Empty(t, relay.posted(), "nothing is asked")
}

func TestAskOutsideRelayFetchesKeyWithWarning(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	relay := newAskRelay(t, runnerAnswered(t, priv, "Use log/slog."))
	relay.token = ""
	// The relay's key endpoint, on a server of its own in front of the
	// fake (which serves only the ask routes).
	mux := http.NewServeMux()
	mux.HandleFunc("GET /attestation-key", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"alg": "Ed25519", "publicKey": base64.StdEncoding.EncodeToString(pub)})
	})
	mux.Handle("/", relay.srv.Config.Handler)
	relay.srv.Config.Handler = mux

	env := relay.env()
	delete(env, "TASK_RELAY_TOKEN")
	run := runAsk(t, env, "", "--type", "clarification", "Which logger?")
	require.Equal(t, 0, run.code, "stderr: %s", run.stderr)
	require.Equal(t, "Use log/slog.\n", run.stdout)
	require.Equal(t, 1, strings.Count(run.stderr, "\n"))
	require.Contains(t, run.stderr, "warning: TASK_RELAY_ANSWER_PUBKEY is not set")
}
