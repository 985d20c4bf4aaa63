package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSDKExampleProgram builds examples/ask — the program README shows for
// Go executors — and runs it as a command executor through the real relay:
// it asks, the orchestrator answers over MCP, and the answer lands in the
// patch.
func TestSDKExampleProgram(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	example := filepath.Join(dir, "ask-example")
	build := exec.Command("go", "build", "-o", example, "../../examples/ask")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build examples/ask: %s", out)

	repo, base := newRepo(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  greeter: {kind: command, argv: [%q]}
`, filepath.Join(dir, "data"), example))
	s := startServerEnv(t, []string{"ANTHROPIC_API_KEY="}, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "example-1")})["jobId"].(string)

	var job map[string]any
	for range 20 {
		job = s.call(t, "jobs_wait", map[string]any{"jobId": jobID, "timeoutS": 10})
		if job["state"] == "WAITING_ON_ANSWER" {
			break
		}
	}
	require.Equal(t, "WAITING_ON_ANSWER", job["state"], "job: %v", job)
	items := s.call(t, "asks_list", map[string]any{"jobId": jobID})["items"].([]any)
	require.Len(t, items, 1)
	item := items[0].(map[string]any)
	require.Equal(t, "Which greeting should hello.txt contain?", item["prompt"])

	s.call(t, "asks_answer", map[string]any{"askId": item["askId"], "answerText": "Hello from the SDK example"})
	job = s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	require.Contains(t, s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff"), "+Hello from the SDK example")
}

// TestREADMEGoExampleBuilds pastes README's Go executor into a module of its
// own, depends on this checkout the way README says, and builds it.
func TestREADMEGoExampleBuilds(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```go\n(package main\n.*?)```").FindSubmatch(readme)
	require.NotNil(t, m, "README has a complete Go program")
	root, err := filepath.Abs("../..")
	require.NoError(t, err)

	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	goLine := regexp.MustCompile(`(?m)^go [0-9.]+$`).Find(gomod)
	require.NotNil(t, goLine)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), m[1], 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/greeter\n\n"+string(goLine)+"\n"), 0o644))
	// The relay's go.sum holds the hashes of every module the example can
	// need, so tidy checks them without asking the checksum database.
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644))
	for _, args := range [][]string{
		{"mod", "edit", "-require", "github.com/mcp-task-relay/mcp-task-relay@v0.0.0", "-replace", "github.com/mcp-task-relay/mcp-task-relay=" + root},
		{"mod", "tidy"},
		{"build", "-o", filepath.Join(dir, "greeter"), "."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// Everything comes from the module cache; nothing is fetched.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %v: %s", args, out)
	}
}
