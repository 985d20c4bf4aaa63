package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// ArtifactDir stores artifact files as Root/{jobId}/{kind}. Job ids and
// kinds are checked against their fixed shapes before any path is built,
// so no artifact path can leave Root.
type ArtifactDir struct {
	Root string
}

func (d ArtifactDir) path(jobID string, kind relaytype.ArtifactKind) (string, error) {
	if !relaytype.ValidJobID(jobID) {
		return "", fmt.Errorf("artifact path: invalid job id %q", jobID)
	}
	if !kind.Valid() {
		return "", fmt.Errorf("artifact path: invalid kind %q: %w", kind, relaytype.ErrArtifactNotFound)
	}
	if d.Root == "" {
		return "", fmt.Errorf("artifact path: no artifact root configured")
	}
	return filepath.Join(d.Root, jobID, string(kind)), nil
}

// Write stores data durably (temp file, fsync, rename, fsync directory)
// and returns its metadata with SHA-256 digest and size.
func (d ArtifactDir) Write(jobID string, kind relaytype.ArtifactKind, data []byte, now time.Time) (*relaytype.Artifact, error) {
	p, err := d.path(jobID, kind)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("write artifact %s: %w", kind, err)
	}
	f, err := os.CreateTemp(dir, "."+string(kind)+".*")
	if err != nil {
		return nil, fmt.Errorf("write artifact %s: %w", kind, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write artifact %s: %w", kind, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync artifact %s: %w", kind, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write artifact %s: %w", kind, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("write artifact %s: %w", kind, err)
	}
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		df.Close()
	}
	return describeArtifact(jobID, kind, data, now), nil
}

// describeArtifact returns the metadata of data as artifact kind of a job:
// its SHA-256 digest and size.
func describeArtifact(jobID string, kind relaytype.ArtifactKind, data []byte, now time.Time) *relaytype.Artifact {
	sum := sha256.Sum256(data)
	return &relaytype.Artifact{
		JobID: jobID, Kind: kind, URI: relaytype.ArtifactURI(jobID, kind),
		Digest: hex.EncodeToString(sum[:]), Size: int64(len(data)), CreatedAt: now,
	}
}

// Read returns an artifact's bytes and checks them against the digest.
func (d ArtifactDir) Read(a *relaytype.Artifact) ([]byte, error) {
	p, err := d.path(a.JobID, a.Kind)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read artifact %s of %s: %w", a.Kind, a.JobID, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != a.Digest {
		return nil, fmt.Errorf("artifact %s of %s: digest %s does not match the recorded %s", a.Kind, a.JobID, got, a.Digest)
	}
	return data, nil
}

// ReadArtifact returns the bytes and metadata of one artifact of a job.
func (r *Relay) ReadArtifact(ctx context.Context, jobID string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error) {
	if _, err := r.Get(ctx, jobID); err != nil {
		return nil, nil, err
	}
	a, err := r.store.ArtifactGet(ctx, &store.ArtifactGetParams{JobID: jobID, Kind: kind})
	if err != nil {
		return nil, nil, err
	}
	data, err := r.cfg.Artifacts.Read(a)
	if err != nil {
		return nil, nil, err
	}
	return data, a, nil
}
