package relay_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestArtifactDirCleanTemp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := relay.ArtifactDir{Root: root}
	a, err := d.Write("job_A1", relaytype.ArtifactPatch, []byte("diff"), time.Now())
	require.NoError(t, err)
	job := filepath.Join(root, "job_A1")
	old := time.Now().Add(-2 * time.Hour)

	// What writes killed between create and rename leave: temporary files
	// named as Write names them.
	var killed []string
	for _, kind := range []relaytype.ArtifactKind{relaytype.ArtifactPatch, relaytype.ArtifactOut, relaytype.ArtifactLogs} {
		f, err := os.CreateTemp(job, "."+string(kind)+".*")
		require.NoError(t, err)
		_, err = f.WriteString("half written")
		require.NoError(t, err)
		require.NoError(t, f.Close())
		require.NoError(t, os.Chtimes(f.Name(), old, old))
		killed = append(killed, f.Name())
	}
	// A write under way: too recent to be touched.
	fresh, err := os.CreateTemp(job, ".incremental.diff.*")
	require.NoError(t, err)
	require.NoError(t, fresh.Close())
	// Never touched, however old: the artifact itself, files not named
	// like a temporary file, a directory named like one, and anything
	// outside a job directory.
	keep := []string{
		filepath.Join(job, "patch.diff"),
		filepath.Join(job, ".patch.diff.tmp"),
		filepath.Join(job, "notes.txt"),
		filepath.Join(root, "not-a-job", ".patch.diff.123"),
		filepath.Join(root, ".patch.diff.456"),
	}
	for _, p := range keep[1:] {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	}
	dirLike := filepath.Join(job, ".out.md.789")
	require.NoError(t, os.Mkdir(dirLike, 0o700))
	for _, p := range append(keep, dirLike) {
		require.NoError(t, os.Chtimes(p, old, old))
	}

	n, err := d.CleanTemp(time.Hour)
	require.NoError(t, err)
	require.Equal(t, len(killed), n)
	for _, p := range killed {
		require.NoFileExists(t, p)
	}
	for _, p := range append(keep, fresh.Name()) {
		require.FileExists(t, p)
	}
	require.DirExists(t, dirLike)
	got, err := d.Read(a)
	require.NoError(t, err)
	require.Equal(t, "diff", string(got))

	n, err = d.CleanTemp(time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to clean")
	n, err = relay.ArtifactDir{Root: filepath.Join(root, "missing")}.CleanTemp(time.Hour)
	require.NoError(t, err)
	require.Zero(t, n)
}
