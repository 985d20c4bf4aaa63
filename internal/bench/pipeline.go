package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Pipeline pushes n real jobs through the production pipeline: a git
// worktree per job, a shell executor (run through shim, when given) that
// edits a file, patch, apply-check and artifacts. It returns jobs per
// second from the first submit to the last SUCCEEDED.
func Pipeline(ctx context.Context, dir, shim string, n, concurrency int) (Result, error) {
	repo := filepath.Join(dir, "pipeline-repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(repo, "a.txt"), []byte("a\n"), 0o644); err != nil {
		return Result{}, err
	}
	for _, args := range [][]string{
		{"init", "--quiet"}, {"add", "."},
		{"-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "--quiet", "-m", "init"},
	} {
		c := exec.CommandContext(ctx, "git", args...)
		c.Dir = repo
		if out, err := c.CombinedOutput(); err != nil {
			return Result{}, fmt.Errorf("git %v: %w: %s", args, err, out)
		}
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "pipeline.db")})
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(dir, "ws")})
	if err != nil {
		return Result{}, err
	}
	cmd, err := executor.NewCommand(executor.CommandConfig{
		Name: "edit", Argv: []string{"/bin/sh", "-c", "echo x >> a.txt"}, Shim: shim,
	})
	if err != nil {
		return Result{}, err
	}
	arts := relay.ArtifactDir{Root: filepath.Join(dir, "pipeline-artifacts")}
	log := slog.New(slog.DiscardHandler)
	pipe, err := relay.NewPipeline(relay.PipelineConfig{
		Workspaces: wm, Artifacts: arts, Executors: map[string]executor.Runner{"edit": cmd}, Logger: log,
	})
	if err != nil {
		return Result{}, err
	}
	r, err := relay.New(relay.Config{Store: st, Handler: pipe, Artifacts: arts, Logger: log, MaxConcurrency: concurrency})
	if err != nil {
		return Result{}, err
	}
	el, err := drive(ctx, []*relay.Relay{r}, n, 1, func(i int) *relaytype.JobSpec {
		s := spec(i)
		s.Repo = relaytype.Repo{Type: "local", Path: repo}
		return s
	}, 5*time.Minute)
	if err != nil {
		return Result{}, err
	}
	return Result{Name: "full pipeline jobs (git worktree)", N: n, PerSec: float64(n) / el.Seconds()}, nil
}
