package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
	"github.com/mcp-task-relay/mcp-task-relay/sdk"
)

// Exit codes of the ask command.
const (
	askExitUsage    = 2 // bad flags or arguments, or an environment without a job
	askExitRejected = 3 // the answer is REJECTED
	askExitTimedOut = 4 // the answer is TIMEOUT
	askExitFailed   = 5 // context mismatch, ERROR answer, protocol or transport failure
	// askExitUnverified: a runner answer is unsigned, its signature does
	// not verify against the relay's key, or there is no key to check it
	// with; the answer is not printed.
	askExitUnverified = 6
)

// askEnv is what the ask command reads from its process: the environment
// and the HTTP client. Tests inject their own instead of changing the
// process environment.
type askEnv struct {
	lookup  func(string) (string, bool)
	environ func() []string
	// httpClient defaults to http.DefaultClient.
	httpClient *http.Client
}

func newAsk() *cobra.Command {
	return newAskWith(askEnv{lookup: os.LookupEnv, environ: os.Environ})
}

func newAskWith(env askEnv) *cobra.Command {
	var (
		typ, role, schemaFile string
		tools                 []string
		timeoutS              int
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "ask --type TYPE [flags] PROMPT",
		Short: "Ask the relay a question from inside an executor",
		Long: `ask is the executor-side command: it asks the relay that started this
executor a question and prints the answer. The job, step, context facts,
relay address, token and attestation key come from the environment the
relay set (TASK_RELAY_JOB_ID, TASK_RELAY_STEP_ID, TASK_RELAY_REPO,
TASK_RELAY_FACT_*, ASK_ANSWER_ORIGIN, TASK_RELAY_TOKEN,
TASK_RELAY_ANSWER_PUBKEY). PROMPT "-" reads the prompt from stdin.

Every answer of the Answer Runner must carry a signature that verifies
against TASK_RELAY_ANSWER_PUBKEY; with a job token but no key, runner
answers are refused. Without a job token (not run by a relay) the key is
fetched from the relay's address, with a warning. Answers of the policy,
the orchestrator or a person are not signed; for them the ask id and
context hash are checked.

TYPE is one of clarification, resource_fetch, policy_decision, approval,
choice (any case).

Prints the answer text, or the answer JSON when there is no text; with
--json, the whole answer record. Exit status: 0 answered, 2 usage error,
3 rejected, 4 timed out, 5 context mismatch or any other failure, 6 a
runner answer that does not verify (unsigned, bad signature, or no key),
which is then not printed.`,
		Example: `  mcp-task-relay ask --type clarification "Which logger should new code use?"
  mcp-task-relay ask --type choice --schema choice.json --json - < question.txt`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return askFail(cmd, askExitUsage, fmt.Errorf("want one PROMPT argument (or - for stdin), got %d", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			askType, err := parseAskType(typ)
			if err != nil {
				return askFail(cmd, askExitUsage, err)
			}
			prompt, err := readPrompt(cmd.InOrStdin(), args[0])
			if err != nil {
				return askFail(cmd, askExitUsage, err)
			}
			if timeoutS < 0 {
				return askFail(cmd, askExitUsage, fmt.Errorf("--timeout must not be negative"))
			}
			opts := &sdk.AskOptions{Role: role, AllowedTools: tools, TimeoutS: timeoutS}
			if schemaFile != "" {
				raw, err := os.ReadFile(schemaFile)
				if err != nil {
					return askFail(cmd, askExitUsage, fmt.Errorf("--schema: %w", err))
				}
				if !json.Valid(raw) {
					return askFail(cmd, askExitUsage, fmt.Errorf("--schema: %s is not valid JSON", schemaFile))
				}
				opts.OutputSchema = raw
			}

			client := &sdk.Client{Env: env.lookup, Environ: env.environ, HTTPClient: env.httpClient}
			ans, err := client.Ask(cmd.Context(), askType, prompt, opts)
			if ans != nil && ans.KeyFetched {
				fmt.Fprintf(cmd.ErrOrStderr(), "mcp-task-relay ask: warning: %s is not set; the runner answer was verified with the key served at the relay's address, which proves only that it came from there\n", sdk.EnvAnswerKey)
			}
			if ans != nil {
				if werr := printAnswer(cmd.OutOrStdout(), ans, asJSON, err == nil); werr != nil {
					return askFail(cmd, askExitFailed, werr)
				}
			}
			if err != nil {
				return askFail(cmd, askExitCode(err), err)
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return askFail(cmd, askExitUsage, err)
	})
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "ask type: clarification, resource_fetch, policy_decision, approval or choice (required)")
	f.StringVar(&role, "role", "", "answerer role, for example clarifier (default: the relay's choice for the type)")
	f.StringVar(&schemaFile, "schema", "", "JSON Schema `FILE` the answer's JSON must satisfy")
	f.StringSliceVar(&tools, "allowed-tool", nil, "a `TOOL` the answerer may use (repeatable)")
	f.IntVar(&timeoutS, "timeout", 0, "seconds the relay waits for an answer (default: the relay's)")
	f.BoolVar(&asJSON, "json", false, "print the whole answer record as JSON")
	return cmd
}

// parseAskType accepts an ask type in any case, with - for _.
func parseAskType(s string) (relaytype.AskType, error) {
	if s == "" {
		return "", errors.New("--type is required")
	}
	t := relaytype.AskType(strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_")))
	if !t.Valid() {
		names := make([]string, len(relaytype.AskTypes))
		for i, v := range relaytype.AskTypes {
			names[i] = strings.ToLower(string(v))
		}
		return "", fmt.Errorf("--type: unknown ask type %q (want one of %s)", s, strings.Join(names, ", "))
	}
	return t, nil
}

// readPrompt returns arg, or stdin when arg is "-".
func readPrompt(stdin io.Reader, arg string) (string, error) {
	prompt := arg
	if arg == "-" {
		raw, err := io.ReadAll(stdin)
		if err != nil {
			return "", fmt.Errorf("read prompt from stdin: %w", err)
		}
		prompt = strings.TrimRight(string(raw), "\r\n")
	}
	if strings.TrimSpace(prompt) == "" {
		return "", errors.New("empty prompt")
	}
	return prompt, nil
}

// printAnswer writes the record with asJSON, else the text of an answer
// that passed (or its JSON, compact, when it has no text).
func printAnswer(w io.Writer, ans *sdk.Answer, asJSON, ok bool) error {
	var out []byte
	switch {
	case asJSON:
		raw, err := json.Marshal(ans.Record)
		if err != nil {
			return err
		}
		out = raw
	case !ok:
		return nil
	case ans.Text != "":
		out = []byte(ans.Text)
	case len(ans.JSON) > 0:
		var buf bytes.Buffer
		if err := json.Compact(&buf, ans.JSON); err != nil {
			return fmt.Errorf("answer json: %w", err)
		}
		out = buf.Bytes()
	default:
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	_, err := w.Write(out)
	return err
}

// askExitCode maps an error of sdk.Client.Ask to the exit status.
func askExitCode(err error) int {
	switch {
	case errors.Is(err, sdk.ErrUnsignedAnswer), errors.Is(err, sdk.ErrBadSignature), errors.Is(err, sdk.ErrNoAnswerKey):
		return askExitUnverified
	case errors.Is(err, sdk.ErrInvalidAsk):
		return askExitUsage
	case errors.Is(err, sdk.ErrContextMismatch):
		return askExitFailed
	case errors.Is(err, sdk.ErrRejected):
		return askExitRejected
	case errors.Is(err, sdk.ErrTimedOut):
		return askExitTimedOut
	}
	return askExitFailed
}

// askFail prints err to stderr on one line and returns the exit code for
// Main, which prints nothing more for an exitError without an error.
func askFail(cmd *cobra.Command, code int, err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintln(cmd.ErrOrStderr(), "mcp-task-relay ask:", msg)
	return &exitError{code: code}
}
