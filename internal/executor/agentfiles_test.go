package executor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWritePrivate(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "settings.json")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o644))
	require.NoError(t, WritePrivate(p, []byte(`{"new":true}`)))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, `{"new":true}`, string(b))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(filepath.Dir(p))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left")
	require.Error(t, WritePrivate(filepath.Join(t.TempDir(), "missing", "x"), nil))
}
