package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLandlockCommandExecutor: a command executor with sandbox: landlock
// can change its workspace but not write outside it; the job that tries
// fails and the file outside stays untouched. Where the kernel has no
// landlock, the relay refuses the executor, naming the setting.
func TestLandlockCommandExecutor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	outside := filepath.Join(t.TempDir(), "outside.txt")
	inside := writeScript(t, dir, "inside.sh", "#!/bin/sh\necho confined >> hello.txt\n")
	escape := writeScript(t, dir, "escape.sh", fmt.Sprintf("#!/bin/sh\necho escaped > %q\n", outside))
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  inside: {argv: [%q], sandbox: landlock}
  escape: {argv: [%q], sandbox: landlock}
`, filepath.Join(dir, "data"), inside, escape))
	doctor := exec.Command(binary, "doctor", "--config-dir", cfg, "--storage", "memory")
	doctor.Env = append(os.Environ(), "TASK_RELAY_ANSWER_RUNNER_ENABLED=false")
	out, _ := doctor.CombinedOutput()
	if !strings.Contains(string(out), "landlock ABI") {
		// No landlock here: doctor fails the setting, and the relay never
		// runs the executor unsandboxed.
		require.Contains(t, string(out), "sandbox inside")
		require.Contains(t, string(out), "executors.inside.sandbox")
		return
	}
	s := startServer(t, "--config-dir", cfg, "--storage", "memory")
	spec := seedSpec("file://"+repo, base, "landlock-inside")
	spec["execution"].(map[string]any)["executor"] = "inside"
	id := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	s.waitState(t, id, "SUCCEEDED")
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "+confined")

	spec = seedSpec("file://"+repo, base, "landlock-escape")
	spec["execution"].(map[string]any)["executor"] = "escape"
	id = s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s.waitState(t, id, "FAILED", "SUCCEEDED")
	require.Equal(t, "FAILED", job["state"], "job: %v", job)
	require.NoFileExists(t, outside)
}
