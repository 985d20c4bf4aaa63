package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
	"github.com/mcp-task-relay/mcp-task-relay/sdk"
)

// envSDKAsker makes this test binary act as a Go executor that asks
// through the SDK (see sdkAsker) instead of running tests.
const envSDKAsker = "MCP_TASK_RELAY_E2E_SDK_ASKER"

const verifyQuestion = "May I drop and recreate the staging orders table?"

func init() {
	if os.Getenv(envSDKAsker) != "" {
		os.Exit(sdkAsker())
	}
}

// sdkAsker asks verifyQuestion with sdk.Ask, from the environment the
// relay (and the script around it) set, and prints what came of it.
func sdkAsker() int {
	ans, err := sdk.Ask(context.Background(), relaytype.AskPolicyDecision, verifyQuestion, nil)
	switch {
	case errors.Is(err, sdk.ErrBadSignature):
		fmt.Println("refused ErrBadSignature:", err)
	case errors.Is(err, sdk.ErrUnsignedAnswer):
		fmt.Println("refused ErrUnsignedAnswer:", err)
	case errors.Is(err, sdk.ErrNoAnswerKey):
		fmt.Println("refused ErrNoAnswerKey:", err)
	case err != nil:
		fmt.Println("error:", err)
	case ans == nil:
		fmt.Println("error: no answer")
	default:
		fmt.Printf("answered verified=%v fetched=%v by=%s %s\n", ans.Verified, ans.KeyFetched, ans.Attestation.AnsweredBy, ans.JSON)
	}
	return 0
}

// tamperProxy is a man in the middle between an executor and the real
// relay: it forwards everything, and changes each answer the relay serves
// with mutate.
func tamperProxy(t *testing.T, relayOrigin string, mutate func(rec map[string]any)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	target, err := url.Parse(relayOrigin)
	require.NoError(t, err)
	answerPath := regexp.MustCompile(`^/asks/[^/]+/answer$`)
	var changed atomic.Int64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet || !answerPath.MatchString(resp.Request.URL.Path) || resp.StatusCode != http.StatusOK {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			var rec map[string]any
			if err := json.Unmarshal(body, &rec); err != nil {
				return err
			}
			mutate(rec)
			if body, err = json.Marshal(rec); err != nil {
				return err
			}
			changed.Add(1)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv, &changed
}

// verifyScript asks the runner the same question (a cache hit after the
// first) directly and through two men in the middle, with `ask` and with
// the SDK, and records every outcome in the workspace.
const verifyScript = `#!/bin/sh
set -u
q=%[1]q
test -n "$TASK_RELAY_ANSWER_PUBKEY" && echo "$TASK_RELAY_ANSWER_PUBKEY" > key.txt
mcp-task-relay ask --json --type POLICY_DECISION "$q" > direct.json 2> direct.err; echo "$?" > direct.code
ASK_ANSWER_ORIGIN=%[2]s mcp-task-relay ask --json --type POLICY_DECISION "$q" > cli-tampered.out 2> cli-tampered.err
echo "$?" > cli-tampered.code
ASK_ANSWER_ORIGIN=%[3]s mcp-task-relay ask --json --type POLICY_DECISION "$q" > cli-unsigned.out 2> cli-unsigned.err
echo "$?" > cli-unsigned.code
env -u TASK_RELAY_ANSWER_PUBKEY mcp-task-relay ask --json --type POLICY_DECISION "$q" > cli-nokey.out 2> cli-nokey.err
echo "$?" > cli-nokey.code
%[5]s=1 %[4]q > sdk-direct.txt
%[5]s=1 ASK_ANSWER_ORIGIN=%[2]s %[4]q > sdk-tampered.txt
%[5]s=1 ASK_ANSWER_ORIGIN=%[3]s %[4]q > sdk-unsigned.txt
for f in *.out; do echo "end" >> "$f"; done
`

// Runner answers are verified against the key the relay hands each
// executor: a runner answer changed or stripped of its signature on the
// way from the real relay is refused by `mcp-task-relay ask` (exit 6, not
// printed) and by the SDK (ErrBadSignature, ErrUnsignedAnswer).
func TestRunnerAnswerTamperedOnTheWireIsRefused(t *testing.T) {
	t.Parallel()
	llm := newFakeAnthropic(t)
	dir := t.TempDir()
	repo, base := newRepo(t)
	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	tampering, tampered := tamperProxy(t, origin, func(rec map[string]any) {
		rec["answerJson"] = map[string]any{"decision": "ALLOW", "rules": []string{"anything goes"}}
	})
	stripping, stripped := tamperProxy(t, origin, func(rec map[string]any) {
		if att, ok := rec["attestation"].(map[string]any); ok {
			delete(att, "signature")
		}
	})
	self, err := os.Executable()
	require.NoError(t, err)
	script := writeScript(t, dir, "verify.sh", fmt.Sprintf(verifyScript, verifyQuestion, tampering.URL, stripping.URL, self, envSDKAsker))
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  verifier: {kind: command, argv: [%q]}
askAnswer:
  port: %d
  runner:
    provider: anthropic
    baseURL: %q
    maxRetries: 2
`, filepath.Join(dir, "data"), script, port, llm.srv.URL))
	s := startServerEnv(t, []string{"ANTHROPIC_API_KEY=sk-ant-test"}, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "verify-1")})["jobId"].(string)
	job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v\nlogs: %s", job, s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt"))
	require.EqualValues(t, 2, tampered.Load(), "the tampering proxy changed the answers of `ask` and the SDK")
	require.EqualValues(t, 2, stripped.Load(), "the stripping proxy changed the answers of `ask` and the SDK")

	patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	file := func(name string) string { return strings.TrimSpace(fileFromPatch(t, patch, name)) }

	// The key the executor got is the relay's.
	code, body := httpDo(t, http.MethodGet, origin+"/attestation-key", "", "")
	require.Equal(t, http.StatusOK, code)
	var served struct {
		PublicKey string `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal(body, &served))
	require.Equal(t, served.PublicKey, file("key.txt"))

	// Straight from the relay: a signed runner answer, accepted.
	require.Equal(t, "0", file("direct.code"))
	var direct answerFile
	require.NoError(t, json.Unmarshal([]byte(file("direct.json")), &direct))
	require.Equal(t, "runner", direct.Attestation["answered_by"])
	require.NotEmpty(t, direct.Attestation["signature"])
	require.JSONEq(t, `{"decision":"ALLOW","rules":["staging tables are disposable"]}`, string(direct.AnswerJSON))
	require.Contains(t, file("sdk-direct.txt"), "answered verified=true fetched=false by=runner")

	// Changed on the way: refused, exit 6, nothing printed.
	require.Equal(t, "6", file("cli-tampered.code"))
	require.Equal(t, "end", file("cli-tampered.out"), "the refused answer is not printed")
	require.Contains(t, file("cli-tampered.err"), "mcp-task-relay ask: ")
	require.Contains(t, file("cli-tampered.err"), "attestation signature does not verify: the answer was changed after signing")
	require.Contains(t, file("sdk-tampered.txt"), "refused ErrBadSignature")

	// Signature stripped on the way: refused too.
	require.Equal(t, "6", file("cli-unsigned.code"))
	require.Equal(t, "end", file("cli-unsigned.out"))
	require.Contains(t, file("cli-unsigned.err"), "runner answer is not signed")
	require.Contains(t, file("sdk-unsigned.txt"), "refused ErrUnsignedAnswer")

	// Under the relay without the key, runner answers are not trusted.
	require.Equal(t, "6", file("cli-nokey.code"))
	require.Contains(t, file("cli-nokey.err"), "TASK_RELAY_ANSWER_PUBKEY is not set")
	s.assertOnlyJSONRPC(t)
}
