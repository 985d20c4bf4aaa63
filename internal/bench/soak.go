package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Soak is what an idle relay holds before and after real work.
type Soak struct {
	// Jobs is the number of jobs that ran.
	Jobs int
	// Start is the memory of the idle relay right after initialize.
	Start Memory
	// After is its memory once every job has ended and the relay has
	// been idle for SoakSettle.
	After Memory
}

// SoakSettle is how long the relay is left idle after the last job before
// its memory is read.
const SoakSettle = 2 * time.Second

// RunSoak starts `binary serve --standalone` on a SQLite file under dir,
// with a shell executor that edits a file of a new git repository, and
// submits jobs real jobs to it over MCP, as a client would, at most 8
// unfinished at a time; each must succeed. It returns the relay's memory
// right after initialize and after the jobs, idle: what a relay that has
// been working holds (its SQLite caches and the Go heap it keeps), next to
// what a fresh one holds. Unix only.
func RunSoak(ctx context.Context, binary, dir string, jobs int) (Soak, error) {
	if jobs <= 0 {
		return Soak{}, fmt.Errorf("soak: jobs must be positive, got %d", jobs)
	}
	dir, err := os.MkdirTemp(dir, "soak-")
	if err != nil {
		return Soak{}, err
	}
	repo, err := makeRepo(ctx, dir)
	if err != nil {
		return Soak{}, err
	}
	cfg := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		return Soak{}, err
	}
	conf := "executors:\n  default: edit\n  edit: {kind: command, argv: [/bin/sh, -c, 'echo x >> a.txt']}\n"
	if err := os.WriteFile(filepath.Join(cfg, "config.yaml"), []byte(conf), 0o600); err != nil {
		return Soak{}, err
	}
	s, pid, err := connectRelay(ctx, binary, filepath.Join(dir, "data"),
		[]string{"serve", "--standalone", "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"), "--config-dir", cfg},
		"TASK_RELAY_ANSWER_RUNNER_ENABLED=false")
	if err != nil {
		return Soak{}, fmt.Errorf("soak: start the relay: %w", err)
	}
	defer s.Close()
	out := Soak{Jobs: jobs, Start: memoryOf(pid)}

	const window = 8
	var pending []string
	for i := 0; i < jobs || len(pending) > 0; {
		for i < jobs && len(pending) < window {
			var sub struct {
				JobID string `json:"jobId"`
			}
			err := CallTool(ctx, s, "jobs_submit", map[string]any{"spec": map[string]any{
				"repo":           map[string]any{"type": "local", "path": repo, "baseBranch": "HEAD"},
				"task":           map[string]any{"title": "soak", "description": "Append a line to a.txt."},
				"idempotencyKey": fmt.Sprint("soak-", i),
			}}, &sub)
			if err != nil {
				return out, fmt.Errorf("soak: submit %d: %w", i, err)
			}
			pending = append(pending, sub.JobID)
			i++
		}
		var st struct {
			State   string `json:"state"`
			Summary string `json:"summary"`
		}
		if err := CallTool(ctx, s, "jobs_wait", map[string]any{"jobId": pending[0], "timeoutS": 10}, &st); err != nil {
			return out, fmt.Errorf("soak: wait for %s: %w", pending[0], err)
		}
		switch st.State {
		case "SUCCEEDED":
			pending = pending[1:]
		case "FAILED", "CANCELED", "EXPIRED":
			return out, fmt.Errorf("soak: job %s ended %s: %s", pending[0], st.State, st.Summary)
		}
	}
	select {
	case <-time.After(SoakSettle):
	case <-ctx.Done():
		return out, ctx.Err()
	}
	out.After = memoryOf(pid)
	return out, nil
}

// CallTool calls a tool of a relay's MCP server and decodes its
// structured result into out; a tool error becomes an error with the
// tool's message.
func CallTool(ctx context.Context, s *mcp.ClientSession, name string, args any, out any) error {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if res.IsError {
		msg := "tool error"
		if len(res.Content) > 0 {
			if tc, ok := res.Content[0].(*mcp.TextContent); ok {
				msg = tc.Text
			}
		}
		return fmt.Errorf("%s: %s", name, msg)
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}
