package executortest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Transcript is one recorded run of an agent CLI: the file under the
// adapter's testdata/transcripts and the exit code the CLI had.
type Transcript struct {
	File     string
	ExitCode int
	// Read returns the output the adapter parses; nil reads the file as is.
	Read func(raw []byte) []byte
}

// Contract checks what every coding-agent adapter promises, whatever its
// CLI: the command line starts with the configured binary, never carries
// the job's token, and takes read-only and resumed runs; and the parse of
// every recorded transcript (all of dir's files must be listed) accounts
// for failure (a failed run says why; a non-zero exit is a failure), keeps
// usage non-negative and logs every run that did not fail at once. Each adapter package runs it over
// its own transcripts, next to its detailed tests.
func Contract(t *testing.T, ad executor.Adapter, dir string, transcripts []Transcript) {
	t.Helper()
	t.Run("Argv", func(t *testing.T) {
		t.Parallel()
		workdir, meta := t.TempDir(), t.TempDir()
		prompt := filepath.Join(meta, "prompt.md")
		require.NoError(t, os.WriteFile(prompt, []byte("Edit hello.txt"), 0o600))
		const token = "tok-contract-secret"
		for name, req := range map[string]*executor.Request{
			"write":     {JobID: "job_c", Workdir: workdir, MetaDir: meta, Prompt: "Edit hello.txt", PromptFile: prompt, Env: map[string]string{}},
			"read-only": {JobID: "job_c", Workdir: workdir, MetaDir: meta, Prompt: "Look only", PromptFile: prompt, Sandbox: "read-only", Env: map[string]string{}},
			"resume": {JobID: "job_c", Workdir: workdir, MetaDir: meta, Prompt: "Go on", PromptFile: prompt, ResumeSessionID: "0c2f6a8e-1111-4222-8333-444455556666",
				Env: map[string]string{}},
			"relay": {JobID: "job_c", Workdir: workdir, MetaDir: meta, Prompt: "Ask", PromptFile: prompt, RelayMCPURL: "http://127.0.0.1:1/mcp",
				RelayToken: token, RelayBinary: "/opt/relay/mcp-task-relay", Env: map[string]string{"TASK_RELAY_TOKEN": token}},
		} {
			cfg := &executor.AgentConfig{Name: "contract", Binary: "/opt/agents/" + ad.Kind()}
			argv, err := ad.Argv(cfg, req)
			require.NoError(t, err, name)
			require.NotEmpty(t, argv, name)
			require.Equal(t, cfg.Binary, argv[0], "%s: the configured binary runs", name)
			for _, a := range argv {
				require.NotContains(t, a, token, "%s: the job's token never appears on the command line", name)
			}
		}
	})
	t.Run("Transcripts", func(t *testing.T) {
		t.Parallel()
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var files []string
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, e.Name())
			}
		}
		listed := make([]string, 0, len(transcripts))
		for _, tr := range transcripts {
			listed = append(listed, tr.File)
		}
		slices.Sort(listed)
		require.Equal(t, files, listed, "every recorded transcript is checked, and only those")
		for _, tr := range transcripts {
			raw, err := os.ReadFile(filepath.Join(dir, tr.File))
			require.NoError(t, err)
			if tr.Read != nil {
				raw = tr.Read(raw)
			}
			out := ad.Parse(&executor.AgentConfig{Name: "contract"}, &executor.Request{Workdir: "/ws"}, raw, tr.ExitCode)
			if tr.ExitCode != 0 {
				require.True(t, out.Failed || out.OverBudget, "%s: exit %d is a failure", tr.File, tr.ExitCode)
			}
			if out.Failed {
				require.NotEmpty(t, strings.TrimSpace(out.FailureSummary), "%s: a failed run says why", tr.File)
			}
			u := out.Usage
			require.GreaterOrEqual(t, min(u.InputTokens, u.OutputTokens, u.CachedInputTokens), 0, tr.File)
			require.GreaterOrEqual(t, out.CostUSD, 0.0, tr.File)
			if !out.Failed {
				require.NotEmpty(t, strings.TrimSpace(out.Log), "%s: the run is logged", tr.File)
			}
		}
	})
}
