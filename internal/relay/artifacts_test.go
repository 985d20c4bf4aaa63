package relay_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestArtifactDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := relay.ArtifactDir{Root: root}
	a, err := d.Write("job_A1", relaytype.ArtifactPatch, []byte("diff"), time.Now())
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("diff"))
	require.Equal(t, hex.EncodeToString(sum[:]), a.Digest)
	require.EqualValues(t, 4, a.Size)
	require.Equal(t, "mcp://jobs/job_A1/artifacts/patch.diff", a.URI)
	got, err := d.Read(a)
	require.NoError(t, err)
	require.Equal(t, "diff", string(got))

	// Names that could leave the root are refused before any path is built.
	for _, id := range []string{"../x", "job_../../etc", "job_a/b", ""} {
		_, err := d.Write(id, relaytype.ArtifactPatch, nil, time.Now())
		require.Error(t, err, id)
	}
	_, err = d.Write("job_A1", relaytype.ArtifactKind("../../passwd"), nil, time.Now())
	require.Error(t, err)
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// A file changed behind the relay's back is detected on read.
	require.NoError(t, os.WriteFile(filepath.Join(root, "job_A1", "patch.diff"), []byte("evil"), 0o600))
	_, err = d.Read(a)
	require.ErrorContains(t, err, "does not match")
}
