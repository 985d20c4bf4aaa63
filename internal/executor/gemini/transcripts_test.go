package gemini

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/gemini/geminitest"
)

// record re-records testdata/transcripts from the real Gemini CLI (the
// pinned one the end-to-end tests install in cmd/mcp-task-relay/testdata/
// agents) before the fixtures are parsed:
//
//	go test ./internal/executor/gemini -run TestGeminiTranscripts -gemini.record
var record = flag.Bool("gemini.record", false, "re-record testdata/transcripts from the real Gemini CLI")

// transcriptDir holds the recorded streams: what Agent.Run hands Parse
// (stdout, then stderr), after a first line "exit=N".
const transcriptDir = "testdata/transcripts"

// transcriptSession is the session id the recordings ask for
// (--session-id), so that they are stable.
const transcriptSession = "5e55a0f1-0000-4000-8000-7e1a7c0de001"

// transcriptRoot is where recordings run: fixed paths keep the paths the
// CLI prints stable.
var transcriptRoot = filepath.Join(os.TempDir(), "gemini-transcripts")

// transcript is one recorded run and what Parse must read from it.
type transcript struct {
	name string
	// setup prepares the recording: the fake API's script, the run's
	// config and request.
	setup func(t *testing.T, srv *geminitest.Server, cfg *executor.AgentConfig, req *executor.Request)
	want  executor.AgentOutput // Log is checked with wantLog
	// wantLog are lines Log must have.
	wantLog []string
}

const transcriptFinal = "Wrote hello.txt.\n### TEST_PLAN\n- cat hello.txt\n### NOTES\n- none"

var transcripts = []transcript{
	{
		// The default config: no model (gemini routes with a side request),
		// auto_edit, a write and a replace, then the report.
		name: "edit",
		setup: func(_ *testing.T, srv *geminitest.Server, _ *executor.AgentConfig, _ *executor.Request) {
			srv.Script(
				geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "Hello, world!\n")}, Usage: geminitest.Usage{Prompt: 1000, Candidates: 20, Cached: 100}},
				geminitest.Turn{Calls: []geminitest.Call{geminitest.Replace("hello.txt", "world", "relay")}, Usage: geminitest.Usage{Prompt: 1100, Candidates: 30, Cached: 900}},
				geminitest.Turn{Text: transcriptFinal, Usage: geminitest.Usage{Prompt: 1200, Candidates: 40, Cached: 1000}},
			)
		},
		want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: transcriptFinal,
			Usage: executor.AgentUsage{InputTokens: 3340, CachedInputTokens: 2000, OutputTokens: 98}},
		wantLog: []string{
			"gemini: session " + transcriptSession + ", model auto",
			`gemini: tool write_file {"content":"Hello, world!\n","file_path":"hello.txt"}`,
			"gemini: 2 tool calls, ",
		},
	},
	{
		// auto_edit refuses other shell commands than the relay's ask.
		name: "shell-refused",
		setup: func(_ *testing.T, srv *geminitest.Server, cfg *executor.AgentConfig, req *executor.Request) {
			cfg.Model = geminitest.DefaultModel
			req.RelayBinary = "/opt/relay/mcp-task-relay"
			srv.Script(
				geminitest.Turn{Calls: []geminitest.Call{geminitest.Shell("rm -rf build")}},
				geminitest.Turn{Text: "I could not run the command."},
			)
		},
		want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: "I could not run the command.",
			Usage: executor.AgentUsage{InputTokens: 2000, CachedInputTokens: 400, OutputTokens: 100}},
		wantLog: []string{"gemini: model gemini-2.5-pro: input tokens 2000 (400 cached), output tokens 100"},
	},
	{
		// A read-only job: gemini offers no writing tool, so a write is an
		// unknown tool.
		name: "read-only",
		setup: func(_ *testing.T, srv *geminitest.Server, cfg *executor.AgentConfig, req *executor.Request) {
			cfg.Model = geminitest.DefaultModel
			req.Sandbox = "read-only"
			srv.Script(
				geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "no\n")}},
				geminitest.Turn{Text: "The job is read-only; I would write hello.txt."},
			)
		},
		want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: "The job is read-only; I would write hello.txt.",
			Usage: executor.AgentUsage{InputTokens: 2000, CachedInputTokens: 400, OutputTokens: 100}},
	},
	{
		// relay_ask through the run's MCP server, with the job's token.
		name: "mcp-ask",
		setup: func(t *testing.T, srv *geminitest.Server, cfg *executor.AgentConfig, req *executor.Request) {
			cfg.Model = geminitest.DefaultModel
			req.RelayMCPURL, req.RelayToken = transcriptRelay(t, "job-token-1", "Say hello to the relay.")
			req.Env["TASK_RELAY_TOKEN"] = req.RelayToken
			srv.Script(
				geminitest.Turn{Calls: []geminitest.Call{geminitest.MCP(MCPServer, "relay_ask", map[string]any{"type": "CLARIFICATION", "prompt": "Which greeting?"})}},
				geminitest.Turn{Text: "The relay said: Say hello to the relay."},
			)
		},
		want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: "The relay said: Say hello to the relay.",
			Usage: executor.AgentUsage{InputTokens: 2000, CachedInputTokens: 400, OutputTokens: 100}},
		wantLog: []string{`gemini: tool mcp_task-relay_relay_ask {"prompt":"Which greeting?","type":"CLARIFICATION"}`},
	},
	{
		name: "api-error",
		setup: func(_ *testing.T, srv *geminitest.Server, cfg *executor.AgentConfig, _ *executor.Request) {
			cfg.Model = geminitest.DefaultModel
			srv.Script(geminitest.Turn{Error: &geminitest.APIError{Code: 400, Message: "API key expired. Please renew the API key."}})
		},
		want: executor.AgentOutput{SessionID: transcriptSession, Failed: true,
			FailureSummary: "gemini's API request failed (exit 144): API error 400 INVALID_ARGUMENT: API key expired. Please renew the API key."},
	},
	{
		// model.maxSessionTurns: 1 in the user's settings.
		name: "turn-limit",
		setup: func(t *testing.T, srv *geminitest.Server, cfg *executor.AgentConfig, _ *executor.Request) {
			cfg.Model = geminitest.DefaultModel
			settings := filepath.Join(cfg.Env["HOME"], ".gemini", "settings.json")
			require.NoError(t, os.WriteFile(settings, []byte(strings.Replace(geminitest.Settings, "{\n", "{\n  \"model\": {\"maxSessionTurns\": 1},\n", 1)), 0o600))
			srv.Script(
				geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "Hello\n")}},
				geminitest.Turn{Text: "Done."},
			)
		},
		want: executor.AgentOutput{SessionID: transcriptSession, Failed: true,
			Usage:          executor.AgentUsage{InputTokens: 1000, CachedInputTokens: 200, OutputTokens: 50},
			FailureSummary: "gemini hit its turn limit (exit 53): FatalTurnLimitedError: Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json."},
	},
	{
		// Every folder is untrusted in restricted mode.
		name: "untrusted",
		setup: func(_ *testing.T, _ *geminitest.Server, cfg *executor.AgentConfig, _ *executor.Request) {
			cfg.Env[envRestricted] = "true"
		},
		want: executor.AgentOutput{Failed: true,
			FailureSummary: "gemini does not trust the workspace (exit 55): Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or trust this directory in interactive mode. For more details, see https://geminicli.com/docs/cli/trusted-folders/#headless-and-automated-environments"},
	},
	{
		// A follow-up in a new workdir before PrepareResume existed.
		name: "resume-not-found",
		setup: func(_ *testing.T, _ *geminitest.Server, cfg *executor.AgentConfig, req *executor.Request) {
			cfg.ExtraArgs = nil // --session-id and --resume exclude each other
			req.ResumeSessionID = transcriptSession
		},
		want: executor.AgentOutput{Failed: true,
			FailureSummary: "gemini rejected the input (exit 42): Error resuming session: No previous sessions found for this project."},
	},
	{
		name: "no-api-key",
		setup: func(_ *testing.T, _ *geminitest.Server, cfg *executor.AgentConfig, _ *executor.Request) {
			delete(cfg.Env, "GEMINI_API_KEY")
		},
		want: executor.AgentOutput{Failed: true,
			FailureSummary: "gemini could not authenticate (exit 41): When using Gemini API, you must specify the GEMINI_API_KEY environment variable. Update your environment and try again (no reload needed if using .env)!"},
	},
	{
		name: "unknown-flag",
		setup: func(_ *testing.T, _ *geminitest.Server, cfg *executor.AgentConfig, _ *executor.Request) {
			cfg.ExtraArgs = append(cfg.ExtraArgs, "--bogus-flag")
		},
		want: executor.AgentOutput{Failed: true,
			FailureSummary: "gemini failed (exit 1): Unknown arguments: bogus-flag, bogusFlag"},
	},
}

func TestGeminiTranscripts(t *testing.T) {
	if *record {
		recordTranscripts(t)
	}
	t.Parallel()
	for _, tc := range transcripts {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join(transcriptDir, tc.name+".txt"))
			require.NoError(t, err, "record it with -gemini.record")
			head, stream, _ := strings.Cut(string(raw), "\n")
			exit, err := strconv.Atoi(strings.TrimPrefix(head, "exit="))
			require.NoError(t, err, "first line %q", head)

			got := Adapter{}.Parse(&executor.AgentConfig{}, &executor.Request{}, []byte(stream), exit)
			log := got.Log
			got.Log = ""
			want := tc.want
			if strings.HasSuffix(want.FailureSummary, "…") {
				// The message goes on with what varies between recordings.
				require.True(t, strings.HasPrefix(got.FailureSummary, strings.TrimSuffix(want.FailureSummary, "…")), got.FailureSummary)
				want.FailureSummary = got.FailureSummary
			}
			require.Equal(t, want, got)
			for _, l := range tc.wantLog {
				require.Contains(t, log, l)
			}
			if want.Failed {
				require.Contains(t, log, "gemini: "+want.FailureSummary)
			}
		})
	}
}

// recordTranscripts runs every transcript's scenario with the real CLI
// through executor.Agent and writes what Parse is given.
func recordTranscripts(t *testing.T) {
	bin, err := filepath.Abs("../../../cmd/mcp-task-relay/testdata/agents/node_modules/.bin/gemini")
	require.NoError(t, err)
	require.FileExists(t, bin, "run npm ci in cmd/mcp-task-relay/testdata/agents")
	require.NoError(t, os.RemoveAll(transcriptRoot))
	require.NoError(t, os.MkdirAll(transcriptDir, 0o755))
	var wg sync.WaitGroup
	for _, tc := range transcripts {
		wg.Go(func() {
			stream, exit, problems := recordOne(t, bin, tc)
			if len(problems) > 0 {
				t.Errorf("%s: fake API: %v", tc.name, problems)
			}
			out := fmt.Sprintf("exit=%d\n%s", exit, stream)
			if err := os.WriteFile(filepath.Join(transcriptDir, tc.name+".txt"), []byte(out), 0o644); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// recorder is the adapter, keeping what Parse is given.
type recorder struct {
	Adapter
	mu     sync.Mutex
	stream []byte
	exit   int
}

func (r *recorder) Parse(cfg *executor.AgentConfig, req *executor.Request, stdout []byte, exitCode int) executor.AgentOutput {
	r.mu.Lock()
	r.stream, r.exit = append([]byte(nil), stdout...), exitCode
	r.mu.Unlock()
	return r.Adapter.Parse(cfg, req, stdout, exitCode)
}

func recordOne(t *testing.T, bin string, tc transcript) ([]byte, int, []string) {
	dir := filepath.Join(transcriptRoot, tc.name)
	work, meta, home := filepath.Join(dir, "work"), filepath.Join(dir, "meta"), filepath.Join(dir, "home")
	for _, d := range []string{work, meta} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Error(err)
		}
	}
	geminitest.WriteHome(t, home)
	srv := geminitest.New(t)
	cfg := executor.AgentConfig{Name: "gemini", Binary: bin, ExtraArgs: []string{"--session-id", transcriptSession},
		BaseEnv: []string{"PATH=" + os.Getenv("PATH")}, Env: map[string]string{"HOME": home}}
	for k, v := range srv.Env() {
		cfg.Env[k] = v
	}
	req := executor.Request{Workdir: work, MetaDir: meta, Prompt: "Write hello.txt.", Env: map[string]string{},
		Timeout: 2 * time.Minute}
	tc.setup(t, srv, &cfg, &req)
	r := &recorder{}
	a, err := executor.NewAgent(cfg, r)
	if err != nil {
		t.Error(err)
		return nil, 0, nil
	}
	if _, err := a.Run(context.Background(), &req); err != nil {
		t.Errorf("%s: %v", tc.name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stream, r.exit, srv.Problems()
}

// transcriptRelay serves a stand-in of the relay's executor MCP endpoint
// whose relay_ask answers answer to the bearer token only.
func transcriptRelay(t *testing.T, token, answer string) (string, string) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "relay-stand-in", Version: "0"}, nil)
	srv.AddTool(&mcp.Tool{Name: "relay_ask", Description: "Ask the relay.", InputSchema: &jsonschema.Schema{Type: "object",
		Properties: map[string]*jsonschema.Schema{"type": {Type: "string"}, "prompt": {Type: "string"}}}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			b, _ := json.Marshal(map[string]any{"status": "ANSWERED", "answerText": answer})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/mcp", token
}
