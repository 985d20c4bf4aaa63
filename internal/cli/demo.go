package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

// demoAgent is the shell-script executor the demo runs: it edits a file,
// adds one, and reports a test plan and notes the way an agent would.
const demoAgent = `#!/bin/sh
set -eu
echo "demo agent: job $TASK_RELAY_JOB_ID at $TASK_RELAY_COMMIT_SHA"
echo "demo agent: reading the task from $1"
head -n 1 "$1"
printf 'Hello, relay!\n' >> hello.txt
cat > CHANGELOG.md <<'MD'
# Changelog

- Greet the relay in hello.txt.
MD
cat <<'OUT'
### TEST_PLAN
- cat hello.txt shows the new greeting.
### NOTES
- Added CHANGELOG.md.
OUT
`

func newDemo() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run one job end to end on a throwaway repository (no API key needed)",
		Long: `demo creates a throwaway git repository and a shell-script executor, starts
"mcp-task-relay serve" as a subprocess, and talks MCP to it like a client would:
jobs_submit, jobs_get until the job ends, then reads patch.diff and out.md
through their resources, checks the patch's SHA-256 against the reported
digest, and prints the patch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory and print its path")
	return cmd
}

func runDemo(ctx context.Context, stdout, stderr io.Writer, keep bool) error {
	dir, err := os.MkdirTemp("", "mcp-task-relay-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(stderr, "demo directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	repo := filepath.Join(dir, "repo")
	if err := demoRepo(ctx, repo); err != nil {
		return fmt.Errorf("create demo repository: %w", err)
	}
	agent := filepath.Join(dir, "agent.sh")
	if err := os.WriteFile(agent, []byte(demoAgent), 0o755); err != nil {
		return err
	}
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	cfgYAML := fmt.Sprintf(`server:
  dataDir: %q
executors:
  default: demo
  demo:
    kind: command
    argv: [%q, "{{prompt_file}}"]
    timeoutS: 60
`, filepath.Join(dir, "data"), agent)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte(cfgYAML), 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	server := exec.Command(self, "serve", "--standalone", "--config-dir", cfgDir, "--storage", "sqlite",
		"--sqlite", filepath.Join(dir, "data", "relay.db"))
	server.Stderr = io.Discard
	if keep {
		if f, err := os.Create(filepath.Join(dir, "server.log")); err == nil {
			defer f.Close()
			server.Stderr = f
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-task-relay-demo", Version: version()}, nil)
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: server}, nil)
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer session.Close()

	spec := map[string]any{
		"repo":           map[string]any{"type": "local", "path": repo, "baseBranch": "main"},
		"task":           map[string]any{"title": "Greet the relay", "description": "Append a greeting to hello.txt and start a changelog.", "acceptance": []string{"hello.txt ends with the greeting"}},
		"scope":          map[string]any{"readPaths": []string{"."}, "disallowReformatting": true},
		"outputContract": []string{"DIFF", "TEST_PLAN", "NOTES"},
		"execution":      map[string]any{"preferredModel": "none", "sandbox": "workspace-write", "askPolicy": "untrusted", "priority": "P1", "ttlS": 600},
		"idempotencyKey": fmt.Sprintf("demo-%d", time.Now().UnixNano()),
	}
	var submitted struct {
		JobID string `json:"jobId"`
	}
	if err := bench.CallTool(ctx, session, "jobs_submit", map[string]any{"spec": spec}, &submitted); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "submitted %s\n", submitted.JobID)
	var job struct {
		State      string `json:"state"`
		ReasonCode string `json:"reasonCode"`
		Summary    string `json:"summary"`
		Artifacts  []struct {
			Kind   string `json:"kind"`
			URI    string `json:"uri"`
			Digest string `json:"digest"`
		} `json:"artifacts"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := bench.CallTool(ctx, session, "jobs_get", map[string]any{"jobId": submitted.JobID}, &job); err != nil {
			return err
		}
		if job.State == "SUCCEEDED" || job.State == "FAILED" || job.State == "CANCELED" || job.State == "EXPIRED" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s still %s after 2 minutes", submitted.JobID, job.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	fmt.Fprintf(stderr, "job %s: %s %s %s\n", submitted.JobID, job.State, job.ReasonCode, job.Summary)
	if job.State != "SUCCEEDED" {
		return fmt.Errorf("demo job ended %s (%s): %s", job.State, job.ReasonCode, job.Summary)
	}
	for _, a := range job.Artifacts {
		if a.Kind != "patch.diff" && a.Kind != "out.md" {
			continue
		}
		res, err := session.ReadResource(ctx, &mcp.ReadResourceParams{URI: a.URI})
		if err != nil {
			return fmt.Errorf("read %s: %w", a.URI, err)
		}
		text := res.Contents[0].Text
		sum := sha256.Sum256([]byte(text))
		if got := hex.EncodeToString(sum[:]); got != a.Digest {
			return fmt.Errorf("%s: sha256 %s does not match the reported digest %s", a.URI, got, a.Digest)
		}
		fmt.Fprintf(stderr, "%s (sha256 %s verified)\n", a.URI, a.Digest[:16])
		if a.Kind == "patch.diff" {
			fmt.Fprint(stdout, text)
		}
	}
	return nil
}

func demoRepo(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("Hello, world!\n"), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "hello.txt"},
		{"-c", "user.name=demo", "-c", "user.email=demo@example.invalid", "commit", "--quiet", "-m", "initial"},
	} {
		c := exec.CommandContext(ctx, "git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			return errors.Join(fmt.Errorf("git %s: %w", args[0], err), errors.New(string(out)))
		}
	}
	return nil
}
