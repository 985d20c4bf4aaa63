package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	f, err := os.CreateTemp(dir, tempPattern(kind))
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

// tempPattern is the os.CreateTemp pattern of a write of artifact kind:
// ".{kind}.{random digits}", a name no artifact has.
func tempPattern(kind relaytype.ArtifactKind) string { return "." + string(kind) + ".*" }

// isTempName reports whether name is that of a temporary file of Write.
func isTempName(name string) bool {
	for _, k := range relaytype.ArtifactKinds {
		rest, ok := strings.CutPrefix(name, "."+string(k)+".")
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// CleanTemp removes the temporary files that writes cut short (a relay
// killed between create and rename) left in the job directories under
// Root, those last modified more than olderThan ago, and returns how many
// it removed. A write under way is never that old: call it at start with
// an hour, say. Nothing else is touched: only entries of directories named
// like job ids, and only regular files named like Write's temporary files.
// A missing Root has nothing to clean.
func (d ArtifactDir) CleanTemp(olderThan time.Duration) (int, error) {
	if d.Root == "" {
		return 0, nil
	}
	jobs, err := os.ReadDir(d.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("clean temporary artifacts: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	var errs []error
	for _, j := range jobs {
		if !j.IsDir() || !relaytype.ValidJobID(j.Name()) {
			continue
		}
		dir := filepath.Join(d.Root, j.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !isTempName(e.Name()) {
				continue
			}
			fi, err := e.Info()
			if err != nil || !fi.ModTime().Before(cutoff) {
				continue // gone meanwhile, or a write that may be under way
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("clean temporary artifacts: %w", err)
	}
	return removed, nil
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
	if err == nil {
		return data, a, nil
	}
	ac, ok := store.As[store.ArtifactContents](r.store)
	if !ok {
		return nil, nil, err
	}
	// Made by another relay sharing the store, or by an attempt of this
	// relay that lost its lease and left a file the winner's artifact
	// replaced (its digest no longer matches): the stored bytes are the
	// artifact's.
	stored, serr := readStoredArtifact(ctx, ac, a)
	if serr == nil {
		return stored, a, nil
	}
	if !errors.Is(serr, relaytype.ErrArtifactNotFound) {
		return nil, nil, serr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("artifact %s of %s (%d bytes) is kept only by the relay that ran the job (larger than its storage limit, or made before contents were stored): %w",
			a.Kind, a.JobID, a.Size, relaytype.ErrArtifactNotFound)
	}
	return nil, nil, err
}

// readStoredArtifact reads an artifact's bytes from the store and checks
// them against the digest.
func readStoredArtifact(ctx context.Context, ac store.ArtifactContents, a *relaytype.Artifact) ([]byte, error) {
	rc, _, err := ac.ArtifactOpen(ctx, &store.ArtifactGetParams{JobID: a.JobID, Kind: a.Kind})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h := sha256.New()
	data, err := io.ReadAll(io.TeeReader(io.LimitReader(rc, a.Size+1), h))
	if err != nil {
		return nil, fmt.Errorf("read stored artifact %s of %s: %w", a.Kind, a.JobID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.Digest || int64(len(data)) != a.Size {
		return nil, fmt.Errorf("stored artifact %s of %s: digest %s does not match the recorded %s", a.Kind, a.JobID, got, a.Digest)
	}
	return data, nil
}

// artifactContents returns the bytes of a run's artifacts for a store that
// keeps them, each read back from the artifact directory and checked,
// leaving out those larger than MaxArtifactBytes; nil for other stores.
func (r *Relay) artifactContents(jobID string, arts []*relaytype.Artifact) map[relaytype.ArtifactKind][]byte {
	if _, ok := store.As[store.ArtifactContents](r.store); !ok || len(arts) == 0 {
		return nil
	}
	out := make(map[relaytype.ArtifactKind][]byte, len(arts))
	for _, a := range arts {
		if a.Size > r.cfg.MaxArtifactBytes {
			r.log.Warn("artifact larger than the storage limit: only this relay serves it",
				"job_id", jobID, "kind", a.Kind, "size", a.Size, "limit", r.cfg.MaxArtifactBytes)
			continue
		}
		data, err := r.cfg.Artifacts.Read(a)
		if err != nil {
			r.log.Warn("artifact not stored in the database", "job_id", jobID, "kind", a.Kind, "err", err)
			continue
		}
		out[a.Kind] = data
	}
	return out
}
