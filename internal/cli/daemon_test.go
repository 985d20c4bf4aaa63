package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServiceUnit(t *testing.T) {
	t.Parallel()
	path, body, hint := serviceUnit("linux", "/home/u", "/usr/local/bin/mcp-task-relay", "/home/u/.local/share/mcp-task-relay")
	require.Equal(t, "/home/u/.config/systemd/user/mcp-task-relay.service", path)
	require.Contains(t, body, `ExecStart="/usr/local/bin/mcp-task-relay" daemon run --data-dir "/home/u/.local/share/mcp-task-relay"`)
	require.Contains(t, body, "ExecStop=")
	require.Contains(t, body, "WantedBy=default.target")
	require.Contains(t, hint, "systemctl --user enable --now mcp-task-relay")

	path, body, hint = serviceUnit("darwin", "/Users/u", "/opt/bin/mcp-task-relay", "/Users/u/data")
	require.Equal(t, "/Users/u/Library/LaunchAgents/dev.mcp-task-relay.plist", path)
	require.Contains(t, body, "<string>/opt/bin/mcp-task-relay</string><string>daemon</string><string>run</string><string>--data-dir</string><string>/Users/u/data</string>")
	require.Contains(t, hint, "launchctl load -w")

	path, _, _ = serviceUnit("windows", "C:/u", "x", "y")
	require.Empty(t, path)
}

func TestDaemonInstallPrint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"daemon", "install", "--print", "--data-dir", dir})
	require.NoError(t, root.Execute())
	require.Contains(t, out.String(), filepath.Clean(dir))
	require.Contains(t, out.String(), "daemon")
}
