package executor

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLinuxLandlockSandboxNotApplied: when the shim cannot set up the sandbox
// the executor does not run at all.
func TestLinuxLandlockSandboxNotApplied(t *testing.T) {
	t.Parallel()
	if _, err := LandlockSupport(); err != nil {
		t.Skipf("Landlock unsupported here (TestLandlockSandbox checks the refusal): %v", err)
	}
	workdir := t.TempDir()
	c, err := NewCommand(CommandConfig{Name: "boxed", Argv: []string{"sh", "-c", "echo ran > ran.txt"}, Shim: testShim(), Sandbox: SandboxLandlock})
	require.NoError(t, err)
	// A MetaDir that does not exist cannot be made writable.
	res, err := c.Run(t.Context(), &Request{Workdir: workdir, MetaDir: filepath.Join(workdir, "..", "missing-meta")})
	require.NoError(t, err)
	require.Equal(t, 127, res.ExitCode)
	require.Contains(t, string(res.Stderr), "sandbox landlock:")
	require.NoFileExists(t, filepath.Join(workdir, "ran.txt"))
}
