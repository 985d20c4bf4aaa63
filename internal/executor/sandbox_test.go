//go:build unix

package executor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// sandboxedScript tries what a Landlock sandbox allows and what it denies,
// printing one line per attempt.
const sandboxedScript = `
echo in > inside.txt && echo "workspace: ok"
mkdir -p a b && echo f > a/f && mv a/f b/f && echo "rename: ok"
echo meta > "$META/meta.txt" && echo "metadir: ok"
echo tmp > "$TMPDIR/t.txt" && [ "$(cat "$TMPDIR/t.txt")" = tmp ] && echo "tmpdir: ok"
{ echo out > "$OUTSIDE/escaped.txt"; } 2>/dev/null || echo "outside: denied"
mkdir "$OUTSIDE/dir" 2>/dev/null || echo "outside mkdir: denied"
echo x > /dev/null && echo "devnull: ok"
echo stderr > /dev/stderr && echo "stderr: ok"
[ -n "$(cat "$OUTSIDE/readable.txt")" ] && echo "read outside: ok"
if [ -n "$RELAY_ADDR" ]; then
  "$` + toolEnv + `" ` + testToolArg + ` dial "$RELAY_ADDR" && echo "relay port: ok"
  "$` + toolEnv + `" ` + testToolArg + ` dial "$OTHER_ADDR" 2>/dev/null || echo "other port: denied"
fi
kill -0 "$OUTSIDE_PID" 2>/dev/null || echo "signal outside: denied"
exit 0
`

func TestLandlockSandbox(t *testing.T) {
	t.Parallel()
	meta := t.TempDir()
	workdir := filepath.Join(meta, "repo")
	require.NoError(t, os.Mkdir(workdir, 0o755))
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "readable.txt"), []byte("public\n"), 0o644))
	relay, other := listen(t), listen(t)
	cfg := CommandConfig{
		Name: "boxed", Argv: []string{"sh", "-c", sandboxedScript}, Shim: testShim(), Sandbox: SandboxLandlock,
		Env: map[string]string{
			"META": meta, "OUTSIDE": outside, "OUTSIDE_PID": strconv.Itoa(os.Getpid()),
			"RELAY_ADDR": relay, "OTHER_ADDR": other, toolEnv: testShim(),
		},
	}

	abi, supportErr := LandlockSupport()
	if supportErr != nil {
		// This kernel cannot sandbox: the executor is refused, clearly.
		t.Logf("Landlock unsupported here, checking the refusal: %v", supportErr)
		_, err := NewCommand(cfg)
		require.ErrorIs(t, err, ErrLandlockUnsupported)
		require.ErrorContains(t, err, "executors.boxed.sandbox: refusing to run unsandboxed")
		return
	}
	t.Logf("Landlock ABI %d here: checking the sandbox", abi)
	c, err := NewCommand(cfg)
	require.NoError(t, err)
	res, err := c.Run(t.Context(), &Request{
		JobID: "job_box", Workdir: workdir, MetaDir: meta, RelayMCPURL: "http://" + relay + "/mcp",
	})
	require.NoError(t, err)
	out := string(res.Stdout)
	require.Equal(t, 0, res.ExitCode, string(res.Output))
	for _, line := range []string{"workspace: ok", "rename: ok", "metadir: ok", "tmpdir: ok", "outside: denied", "outside mkdir: denied",
		"devnull: ok", "stderr: ok", "read outside: ok"} {
		require.Contains(t, out, line+"\n", string(res.Output))
	}
	require.FileExists(t, filepath.Join(workdir, "inside.txt"))
	require.FileExists(t, filepath.Join(meta, "meta.txt"))
	require.NoFileExists(t, filepath.Join(outside, "escaped.txt"))
	require.NoDirExists(t, filepath.Join(outside, "dir"))
	require.Equal(t, "stderr\n", string(res.Stderr))
	if abi >= 4 {
		require.Contains(t, out, "relay port: ok\n", string(res.Output))
		require.Contains(t, out, "other port: denied\n", string(res.Output))
	}
	if abi >= 6 {
		require.Contains(t, out, "signal outside: denied\n", string(res.Output))
	}

	// The same command without the sandbox does write outside: the
	// denials above are the sandbox's doing.
	cfg.Sandbox = SandboxNone
	c, err = NewCommand(cfg)
	require.NoError(t, err)
	res, err = c.Run(t.Context(), &Request{JobID: "job_open", Workdir: workdir, MetaDir: meta, RelayMCPURL: "http://" + relay + "/mcp"})
	require.NoError(t, err)
	require.NotContains(t, string(res.Stdout), "outside: denied", string(res.Output))
	require.FileExists(t, filepath.Join(outside, "escaped.txt"))
}

func TestSandboxConfigErrors(t *testing.T) {
	t.Parallel()
	unsupported := func() (int, error) {
		return 0, fmt.Errorf("%w: test kernel", ErrLandlockUnsupported)
	}
	supported := func() (int, error) { return 4, nil }
	base := CommandConfig{Name: "x", Argv: []string{"true"}, Shim: "/relay"}
	for _, tc := range []struct {
		name    string
		sandbox string
		shim    string
		support func() (int, error)
		want    string
		is      error
	}{
		{"unsupported kernel", SandboxLandlock, base.Shim, unsupported, "executors.x.sandbox: refusing to run unsandboxed: landlock is not supported here: test kernel", ErrLandlockUnsupported},
		{"no shim", SandboxLandlock, "", supported, "executors.x.sandbox: landlock needs the executor shim", nil},
		{"unknown", "firejail", base.Shim, supported, `executors.x.sandbox: unknown sandbox "firejail"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			cfg.Sandbox, cfg.Shim = tc.sandbox, tc.shim
			_, err := newCommandChecked(cfg, tc.support)
			require.ErrorContains(t, err, tc.want)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
	_, err := newCommandChecked(base, unsupported)
	require.NoError(t, err, "no sandbox asked, none needed")
	cfg := base
	cfg.Sandbox = SandboxLandlock
	_, err = newCommandChecked(cfg, supported)
	require.NoError(t, err)
}

func TestLoopbackPort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		"http://127.0.0.1:8123/mcp": 8123,
		"http://[::1]:9000/":        9000,
		"http://localhost:7000":     7000,
		"http://127.0.0.1/mcp":      80,
		"http://10.0.0.1:8123/mcp":  -1,
		"http://example.com:80":     -1,
		"":                          -1,
		"http://127.0.0.1:0/":       -1,
		"http://127.0.0.1:99999/":   -1,
	} {
		port, ok := loopbackPort(in)
		if want < 0 {
			require.False(t, ok, in)
			continue
		}
		require.True(t, ok, in)
		require.EqualValues(t, want, port, in)
	}
}

func TestSandboxSpecRoundTrip(t *testing.T) {
	t.Parallel()
	spec, err := newSandboxSpec(&Request{Workdir: "/w/repo", MetaDir: "/w", RelayMCPURL: "http://127.0.0.1:4711/mcp"}, "/tmp/x")
	require.NoError(t, err)
	got, err := decodeSandboxSpec(spec.encode())
	require.NoError(t, err)
	require.Equal(t, spec, got)
	require.Equal(t, []string{"/w/repo", "/w", "/tmp/x"}, got.Write)
	require.Equal(t, []uint16{4711}, got.ConnectTCP)
	for _, bad := range []string{`{`, `{"kind":"none"}`, `{"kind":"landlock","write":["rel"]}`} {
		_, err := decodeSandboxSpec(bad)
		require.Error(t, err, bad)
	}
}

// listen returns the address of a loopback TCP listener that accepts and
// drops connections until the test ends.
func listen(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_ = c.Close()
			}
		}
	}()
	return l.Addr().String()
}
