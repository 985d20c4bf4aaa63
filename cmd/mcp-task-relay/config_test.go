package main_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// With no executor configured the server still starts, and a submit fails
// with an error that names the missing configuration.
func TestNoExecutorConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	cfg := writeConfig(t, dir, "server:\n  dataDir: "+filepath.Join(dir, "data")+"\n")
	s := startServer(t, "--config-dir", cfg, "--storage", "memory")
	res, err := s.session.CallTool(t.Context(), &mcp.CallToolParams{Name: "jobs_submit",
		Arguments: map[string]any{"spec": seedSpec("file://"+repo, base, "none")}})
	require.NoError(t, err)
	require.True(t, res.IsError)
	text := res.Content[0].(*mcp.TextContent).Text
	require.Contains(t, text, `"code":"NO_EXECUTOR"`)
	require.Contains(t, text, filepath.Join(cfg, "config.yaml"))
	require.Contains(t, text, "executors")
	s.assertOnlyJSONRPC(t)
}

// A bad spec is a tool error with INVALID_SPEC naming the field.
func TestInvalidSpecNamesField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, _ := newRepo(t)
	cfg := writeConfig(t, dir, "server:\n  dataDir: "+filepath.Join(dir, "data")+"\nexecutors:\n  x: {argv: [/bin/sh]}\n")
	s := startServer(t, "--config-dir", cfg, "--storage", "memory")
	for field, mutate := range map[string]func(map[string]any){
		"repo.baselineCommit": func(m map[string]any) { m["repo"].(map[string]any)["baselineCommit"] = "xyz" },
		"task.title":          func(m map[string]any) { m["task"].(map[string]any)["title"] = strings.Repeat("t", 201) },
		"repo.path": func(m map[string]any) {
			m["repo"] = map[string]any{"type": "local", "path": filepath.Join(dir, "missing")}
		},
		"execution.executor": func(m map[string]any) { m["execution"].(map[string]any)["executor"] = "nope" },
	} {
		spec := seedSpec("file://"+repo, "", "bad-"+field)
		delete(spec["repo"].(map[string]any), "baselineCommit")
		mutate(spec)
		res, err := s.session.CallTool(t.Context(), &mcp.CallToolParams{Name: "jobs_submit", Arguments: map[string]any{"spec": spec}})
		require.NoError(t, err)
		require.True(t, res.IsError, field)
		text := res.Content[0].(*mcp.TextContent).Text
		require.Contains(t, text, `"code":"INVALID_SPEC"`, field)
		require.Contains(t, text, `"field":"`+field+`"`, text)
	}
}

// A config.yaml with an unknown key stops serve with an error naming it.
func TestBadConfigFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "server:\n  maxConcurency: 4\n")
	cmd := exec.Command(binary, "serve", "--standalone", "--config-dir", cfg, "--storage", "memory")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode())
	require.Contains(t, stderr.String(), `server.maxConcurency`)
	require.Contains(t, stderr.String(), `config.yaml:2`)
	require.Empty(t, stdout.String())
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(out), "mcp-task-relay "), string(out))
}

func TestDemo(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, "demo")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.Contains(t, stdout.String(), "+Hello, relay!")
	require.Contains(t, stdout.String(), "diff --git a/CHANGELOG.md b/CHANGELOG.md")
	require.Contains(t, stderr.String(), "SUCCEEDED")
	require.Contains(t, stderr.String(), "verified")
}

// A role file that lacks a required field stops serve, naming file and field.
func TestBadRoleFileFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "server:\n  dataDir: "+filepath.Join(dir, "data")+"\n")
	require.NoError(t, os.MkdirAll(filepath.Join(cfg, "prompts"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "prompts", "role.finder@v2.yaml"),
		[]byte("id: finder\nversion: v2\npurpose: find things\n"), 0o644))
	cmd := exec.Command(binary, "serve", "--standalone", "--config-dir", cfg, "--storage", "memory")
	cmd.Env = append(os.Environ(), "ANTHROPIC_API_KEY=sk-test")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.Error(t, err)
	require.Contains(t, stderr.String(), "role.finder@v2.yaml")
	require.Contains(t, stderr.String(), `"system"`)
	require.Empty(t, stdout.String())
}

// init scaffolds a config dir that serve and doctor accept; doctor fails,
// with a fix, when a configured executor's binary is missing.
func TestInitThenDoctor(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cfg")
	out, err := exec.Command(binary, "init", "--dir", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, f := range []string{"config.yaml", "policy.yaml", "prompts/role.clarifier@v1.yaml", "prompts/role.policy_decider@v1.yaml"} {
		_, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
	}
	again, err := exec.Command(binary, "init", "--dir", dir).CombinedOutput()
	require.Error(t, err, "init refuses to overwrite: %s", again)
	require.Contains(t, string(again), "config.yaml")

	doctor := func() (string, int) {
		cmd := exec.Command(binary, "doctor", "--config-dir", dir, "--storage", "memory")
		cmd.Env = append(os.Environ(), "TASK_RELAY_DATA_DIR="+filepath.Join(filepath.Dir(dir), "data"))
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return buf.String(), code
	}
	report, code := doctor()
	require.Equal(t, 0, code, report)
	require.Contains(t, report, "CHECK")
	require.Contains(t, report, "git")

	// Configure a codex executor whose binary does not exist.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"),
		[]byte("executors:\n  codex:\n    kind: codex\n    binary: /nonexistent/codex\n"), 0o644))
	report, code = doctor()
	require.Equal(t, 1, code, report)
	require.Regexp(t, `(?m)^executor codex\s+FAIL`, report)
	require.Contains(t, report, "fix: install")
	require.Regexp(t, `(?m)^config\s+ok`, report)
}
