package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// agentCLIDir holds the coding-agent CLIs from the npm registry, pinned in
// its package-lock.json: @openai/codex, @anthropic-ai/claude-code and
// @google/gemini-cli. .ci/run installs them; a test installs them when
// they are missing. A registry that cannot be reached fails the tests.
const agentCLIDir = "testdata/agents"

var installAgentCLIs = sync.OnceValue(func() error {
	if _, err := os.Stat(filepath.Join(agentCLIDir, "node_modules", ".bin", "gemini")); err == nil {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = agentCLIDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return &installError{out: string(out), err: err}
	}
	return nil
})

// agentCLI returns the absolute path of an installed agent CLI: codex,
// claude or gemini. Only the tests longTest lets run use them.
func agentCLI(t *testing.T, name string) string {
	t.Helper()
	longTest(t)
	require.NoError(t, installAgentCLIs(), "install the agent CLIs from the npm registry")
	p, err := filepath.Abs(filepath.Join(agentCLIDir, "node_modules", ".bin", name))
	require.NoError(t, err)
	require.FileExists(t, p)
	return p
}

// longTests reports whether the end-to-end tests of the real coding-agent
// CLIs run: TASK_RELAY_E2E_LONG=1. Starting the CLIs takes most of this
// package's CPU time, and some of the tests wait minutes for an answer, so
// `go test ./...` leaves them to a step of .ci/run of their own, which runs
// them with TASK_RELAY_E2E_LONG=1 and -run matching longTestNames.
func longTests() bool { return os.Getenv("TASK_RELAY_E2E_LONG") == "1" }

// longTestNames matches the names of the tests that longTest gates: the
// -run pattern of their step in .ci/run.
var longTestNames = regexp.MustCompile(`^Test(Codex|Claude|Gemini|AgentCLIs)`)

// longTest skips a real-agent test unless longTests: the one allowed skip,
// since CI runs these in their own step with TASK_RELAY_E2E_LONG=1. A test
// whose name that step would not run fails instead, so that no gated test
// goes unrun in CI.
func longTest(t *testing.T) {
	t.Helper()
	require.Regexp(t, longTestNames, t.Name(), "a test that longTest gates must match the -run pattern of its step in .ci/run")
	if !longTests() {
		t.Skip("a real coding-agent CLI test: set TASK_RELAY_E2E_LONG=1")
	}
}

// TestAgentCLIsArePinned: the installed agent CLIs are the versions the
// README names and the real-agent tests were written against.
func TestAgentCLIsArePinned(t *testing.T) {
	t.Parallel()
	longTest(t)
	for name, want := range map[string]string{"codex": "codex-cli 0.171.0", "claude": "2.1.197 (Claude Code)", "gemini": "0.61.0"} {
		out, err := exec.Command(agentCLI(t, name), "--version").CombinedOutput()
		require.NoError(t, err, "%s --version: %s", name, out)
		require.Contains(t, string(out), want, name)
	}
}
