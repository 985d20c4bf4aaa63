package claude

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// The expected keys are what claude 2.1.197's own function gives.
func TestClaudeProjectKey(t *testing.T) {
	t.Parallel()
	long := "/home/user/.local/share/mcp-task-relay/workspaces/job_01M8EV15SWB5W0KVE45XKFSD46/" +
		strings.Repeat("very-long-directory-name/", 8) + "repo"
	for dir, want := range map[string]string{
		"/tmp/a b/ws":  "-tmp-a-b-ws",
		"/tmp/über/ws": "-tmp--ber-ws",
		"/tmp/🙂/ws":    "-tmp----ws",
		long: "-home-user--local-share-mcp-task-relay-workspaces-job-01M8EV15SWB5W0KVE45XKFSD46-very-long-directory-name-" +
			"very-long-directory-name-very-long-directory-name-very-long-directory-name-very-long-directory-kzg8ue",
		"/x/" + strings.Repeat("y", 250): "-x-" + strings.Repeat("y", 197) + "-ldyyx2",
		"/z/" + strings.Repeat("😀", 120): "-z-" + strings.Repeat("-", 197) + "-jg9xdg",
	} {
		require.Equal(t, want, claudeProjectKey(dir), dir)
	}
}

func TestClaudeRewritePaths(t *testing.T) {
	t.Parallel()
	in := `{"cwd":"/ws/job_1/repo","x":"/ws/job_1/repo/a.go and /ws/job_1/repo2/b.go and /ws/job_1/repo.txt, /ws/job_1/repo"}`
	require.Equal(t, `{"cwd":"/new/w","x":"/new/w/a.go and /ws/job_1/repo2/b.go and /ws/job_1/repo.txt, /new/w"}`,
		string(claudeRewritePaths([]byte(in), "/ws/job_1/repo", "/new/w")))
	require.Equal(t, `{"p":"/a\"b/x"}`, string(claudeRewritePaths([]byte(`{"p":"/o\"q/x"}`), `/o"q`, `/a"b`)), "JSON-escaped")
}

// claudeSession writes a session transcript of cwd into store and returns
// its path.
func claudeSession(t *testing.T, store, cwd, id string) string {
	t.Helper()
	dir := filepath.Join(store, claudeProjectKey(cwd))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, id, "tool-results"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, id, "tool-results", "r1.txt"), []byte("big output"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "memory"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "memory", "MEMORY.md"), []byte("- remembered"), 0o600))
	lines := []string{
		`{"type":"queue-operation","operation":"enqueue","sessionId":"` + id + `","content":"Do it."}`,
		`{"parentUuid":null,"type":"user","message":{"role":"user","content":"Do it."},"cwd":"` + cwd + `","sessionId":"` + id + `"}`,
		`{"parentUuid":"u1","type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Write","input":{"file_path":"` + cwd + `/a.txt","content":"x"}}]},"cwd":"` + cwd + `"}`,
		`{"parentUuid":"u2","type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"File created successfully at: ` + cwd + `/a.txt"}]},"cwd":"` + cwd + `"}`,
	}
	p := filepath.Join(dir, id+".jsonl")
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	return p
}

func TestClaudePrepareResume(t *testing.T) {
	t.Parallel()
	const id = "0c2f6a8e-1111-4222-8333-444455556666"
	setup := func(t *testing.T) (home, store, parent string, req *executor.Request) {
		t.Helper()
		root := t.TempDir()
		home = filepath.Join(root, "home")
		store = filepath.Join(home, ".claude", "projects")
		parent = filepath.Join(root, "workspaces", "job_parent", "repo")
		workdir := filepath.Join(root, "workspaces", "job_child", "repo")
		require.NoError(t, os.MkdirAll(workdir, 0o755))
		workdir, err := filepath.EvalSymlinks(workdir)
		require.NoError(t, err)
		return home, store, parent, &executor.Request{Workdir: workdir, ParentWorkdir: parent, ResumeSessionID: id}
	}
	env := func(home string, extra ...string) []string {
		return append([]string{"HOME=" + home, "PATH=/bin"}, extra...)
	}

	t.Run("copied to the new workspace", func(t *testing.T) {
		t.Parallel()
		home, store, parent, req := setup(t)
		claudeSession(t, store, parent, id)
		require.NoError(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{}, req, env(home)))

		dst := filepath.Join(store, claudeProjectKey(req.Workdir))
		b, err := os.ReadFile(filepath.Join(dst, id+".jsonl"))
		require.NoError(t, err)
		got := string(b)
		require.NotContains(t, got, parent, "every path into the parent's workspace moved")
		require.Contains(t, got, `"cwd":"`+req.Workdir+`"`)
		require.Contains(t, got, `"file_path":"`+req.Workdir+`/a.txt"`)
		require.Contains(t, got, "File created successfully at: "+req.Workdir+"/a.txt")
		require.Equal(t, 4, strings.Count(got, "\n"))
		side, err := os.ReadFile(filepath.Join(dst, id, "tool-results", "r1.txt"))
		require.NoError(t, err)
		require.Equal(t, "big output", string(side))
		mem, err := os.ReadFile(filepath.Join(dst, "memory", "MEMORY.md"))
		require.NoError(t, err)
		require.Equal(t, "- remembered", string(mem))
		fi, err := os.Stat(filepath.Join(dst, id+".jsonl"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	})
	t.Run("CLAUDE_CONFIG_DIR", func(t *testing.T) {
		t.Parallel()
		home, _, parent, req := setup(t)
		config := filepath.Join(home, "elsewhere")
		claudeSession(t, filepath.Join(config, "projects"), parent, id)
		require.NoError(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{}, req, env(home, "CLAUDE_CONFIG_DIR="+config)))
		require.FileExists(t, filepath.Join(config, "projects", claudeProjectKey(req.Workdir), id+".jsonl"))
		require.NoDirExists(t, filepath.Join(home, ".claude"))
	})
	t.Run("found under another key", func(t *testing.T) {
		t.Parallel()
		home, store, _, req := setup(t)
		claudeSession(t, store, "/somewhere/else", id)
		require.NoError(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{}, req, env(home)))
		b, err := os.ReadFile(filepath.Join(store, claudeProjectKey(req.Workdir), id+".jsonl"))
		require.NoError(t, err)
		require.NotContains(t, string(b), "/somewhere/else")
	})
	t.Run("a session already there is kept", func(t *testing.T) {
		t.Parallel()
		home, store, parent, req := setup(t)
		claudeSession(t, store, parent, id)
		dst := filepath.Join(store, claudeProjectKey(req.Workdir), id+".jsonl")
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o700))
		require.NoError(t, os.WriteFile(dst, []byte("newer\n"), 0o600))
		require.NoError(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{}, req, env(home)))
		b, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, "newer\n", string(b))
	})
	t.Run("not found is left to claude", func(t *testing.T) {
		t.Parallel()
		home, store, _, req := setup(t)
		require.NoError(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{}, req, env(home)))
		require.NoDirExists(t, store)
	})
	t.Run("bad id", func(t *testing.T) {
		t.Parallel()
		home, _, _, req := setup(t)
		req.ResumeSessionID = "../x"
		require.ErrorContains(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{}, req, env(home)), "bad session id")
	})
}

// Agent.Run calls PrepareResume before claude starts: the stub, as
// claude, finds the session under its own workspace.
func TestClaudeRunResumesAcrossWorkspaces(t *testing.T) {
	t.Parallel()
	const id = "prev-session"
	home := t.TempDir()
	parent := filepath.Join(t.TempDir(), "parent-ws")
	store := filepath.Join(home, ".claude", "projects")
	claudeSession(t, store, parent, id)
	r := runClaude(t, executor.AgentConfig{Env: map[string]string{"HOME": home}},
		executor.Request{ResumeSessionID: id, ParentWorkdir: parent}, map[string]string{"CLAUDE_STUB_EXPECT_RESUME": id})
	require.False(t, r.out.Failed, r.out.FailureSummary)
	require.FileExists(t, filepath.Join(store, claudeProjectKey(r.workdir), id+".jsonl"))
}
