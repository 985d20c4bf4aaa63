package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// artifactOf returns the metadata of an artifact with contents b.
func artifactOf(jobID string, kind relaytype.ArtifactKind, b []byte) *relaytype.Artifact {
	sum := sha256.Sum256(b)
	return &relaytype.Artifact{JobID: jobID, Kind: kind, URI: relaytype.ArtifactURI(jobID, kind),
		Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// readArtifact reads one artifact's bytes through s, in small reads.
func readArtifact(t *testing.T, s store.ArtifactContents, jobID string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error) {
	t.Helper()
	rc, meta, err := s.ArtifactOpen(t.Context(), &store.ArtifactGetParams{JobID: jobID, Kind: kind})
	if err != nil {
		return nil, nil, err
	}
	defer func() { require.NoError(t, rc.Close()) }()
	var out bytes.Buffer
	_, err = io.CopyBuffer(&out, struct{ io.Reader }{rc}, make([]byte, 10_000))
	return out.Bytes(), meta, err
}

// An artifact written through one store is read through another on the
// same database, byte for byte, in chunks of 256 KiB.
func TestArtifactContentsAcrossStores(t *testing.T) {
	t.Parallel()
	stores, url := openShared(t, 2)
	writer, reader := stores[0], stores[1]
	ctx := t.Context()
	_, _, err := insert(ctx, writer, "job_art", "key-art")
	require.NoError(t, err)
	_, err = writer.JobClaim(ctx, &store.JobClaimParams{Owner: "w", Now: base, LeaseTTL: time.Minute, Limit: 1})
	require.NoError(t, err)

	patch := make([]byte, 1300*1024+17) // 1.3 MiB and a ragged last chunk
	_, _ = rand.Read(patch)
	meta := artifactOf("job_art", relaytype.ArtifactPatch, patch)
	out := artifactOf("job_art", relaytype.ArtifactOut, []byte("# notes\n"))
	_, err = writer.JobTransition(ctx, &store.JobTransitionParams{ID: "job_art", To: relaytype.StateSucceeded, Owner: "w",
		Attempt: 1, Now: base.Add(time.Minute), Artifacts: []*relaytype.Artifact{meta, out},
		Contents: map[relaytype.ArtifactKind][]byte{relaytype.ArtifactPatch: patch}})
	require.NoError(t, err)

	got, gotMeta, err := readArtifact(t, reader, "job_art", relaytype.ArtifactPatch)
	require.NoError(t, err)
	require.Equal(t, len(patch), len(got))
	require.True(t, bytes.Equal(patch, got), "bytes differ")
	sum := sha256.Sum256(got)
	require.Equal(t, meta.Digest, "sha256:"+hex.EncodeToString(sum[:]))
	require.Equal(t, meta.Digest, gotMeta.Digest)
	require.Equal(t, meta.Size, gotMeta.Size)
	require.Equal(t, meta.URI, gotMeta.URI)

	// Stored as 6 chunks of at most 256 KiB, numbered from 0.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var chunks, first, last, biggest int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), min(seq), max(seq), max(octet_length(data))
		FROM artifact_chunks WHERE job_id = 'job_art' AND kind = 'patch.diff'`).Scan(&chunks, &first, &last, &biggest))
	require.Equal(t, 6, chunks)
	require.Equal(t, 0, first)
	require.Equal(t, 5, last)
	require.Equal(t, 256*1024, biggest)

	// Metadata without bytes, an unknown kind, an unknown job.
	for _, p := range []store.ArtifactGetParams{
		{JobID: "job_art", Kind: relaytype.ArtifactOut},
		{JobID: "job_art", Kind: relaytype.ArtifactLogs},
		{JobID: "job_missing", Kind: relaytype.ArtifactPatch},
	} {
		_, _, err := reader.ArtifactOpen(ctx, &p)
		require.ErrorIs(t, err, relaytype.ErrArtifactNotFound, "%s of %s", p.Kind, p.JobID)
	}
}

// Replacing an artifact replaces its bytes; replacing it without bytes
// drops them; empty bytes are bytes. A reader that is mid-way when the
// artifact is replaced by a shorter one fails instead of mixing versions.
func TestArtifactContentsReplaced(t *testing.T) {
	t.Parallel()
	stores, _ := openShared(t, 2)
	a, b := stores[0], stores[1]
	ctx := t.Context()
	_, _, err := insert(ctx, a, "job_rep", "key-rep")
	require.NoError(t, err)
	_, err = a.JobClaim(ctx, &store.JobClaimParams{Owner: "w", Now: base, LeaseTTL: time.Hour, Limit: 1})
	require.NoError(t, err)
	step := 0
	put := func(contents []byte, withBytes bool) {
		t.Helper()
		step++
		// Back and forth between RUNNING and WAITING_ON_ANSWER.
		to := relaytype.StateWaitingOnAnswer
		if step%2 == 0 {
			to = relaytype.StateRunning
		}
		p := &store.JobTransitionParams{ID: "job_rep", To: to, Owner: "w", Attempt: 1,
			Now:       base.Add(time.Duration(step) * time.Second),
			Artifacts: []*relaytype.Artifact{artifactOf("job_rep", relaytype.ArtifactLogs, contents)}}
		if withBytes {
			p.Contents = map[relaytype.ArtifactKind][]byte{relaytype.ArtifactLogs: contents}
		}
		_, err := a.JobTransition(ctx, p)
		require.NoError(t, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640000 bytes: 3 chunks
	put(big, true)
	got, _, err := readArtifact(t, b, "job_rep", relaytype.ArtifactLogs)
	require.NoError(t, err)
	require.Equal(t, big, got)

	// Mid-way through the first chunk, the artifact is replaced by one
	// of one chunk: the reader fetches chunk by chunk, so it notices.
	rc, _, err := b.ArtifactOpen(ctx, &store.ArtifactGetParams{JobID: "job_rep", Kind: relaytype.ArtifactLogs})
	require.NoError(t, err)
	head := make([]byte, 1000)
	_, err = io.ReadFull(rc, head)
	require.NoError(t, err)
	require.Equal(t, big[:1000], head)
	put([]byte("short"), true)
	_, err = io.ReadAll(rc)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NoError(t, rc.Close())
	got, meta, err := readArtifact(t, b, "job_rep", relaytype.ArtifactLogs)
	require.NoError(t, err)
	require.Equal(t, "short", string(got))
	require.EqualValues(t, 5, meta.Size)

	put([]byte{}, true)
	got, meta, err = readArtifact(t, b, "job_rep", relaytype.ArtifactLogs)
	require.NoError(t, err)
	require.Empty(t, got)
	require.EqualValues(t, 0, meta.Size)

	put([]byte("metadata only"), false)
	_, _, err = b.ArtifactOpen(ctx, &store.ArtifactGetParams{JobID: "job_rep", Kind: relaytype.ArtifactLogs})
	require.ErrorIs(t, err, relaytype.ErrArtifactNotFound, "the replaced artifact's bytes are not the new one's")
	meta, err = b.ArtifactGet(ctx, &store.ArtifactGetParams{JobID: "job_rep", Kind: relaytype.ArtifactLogs})
	require.NoError(t, err)
	require.EqualValues(t, len("metadata only"), meta.Size)
}
