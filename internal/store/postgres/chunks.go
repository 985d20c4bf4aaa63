package postgres

// Artifact bytes (store.ArtifactContents): JobTransition stores the bytes
// of each artifact it stores in artifact_chunks, in chunks of chunkSize,
// in its own transaction; ArtifactOpen streams them back one chunk per
// query, holding no transaction and at most one chunk in memory.

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// chunkSize is the size of every chunk of an artifact but its last.
const chunkSize = 256 << 10

// putContents replaces the stored bytes of artifact a (just stored by tx)
// with b when ok, or drops them when not: the bytes of an artifact that
// was replaced are not the new artifact's. Empty contents are one empty
// chunk, so that they are told apart from none.
func putContents(ctx context.Context, tx *txn, a *relaytype.Artifact, b []byte, ok bool) error {
	if _, err := tx.Exec(ctx, `DELETE FROM artifact_chunks WHERE job_id = $1 AND kind = $2`, a.JobID, string(a.Kind)); err != nil {
		return fmt.Errorf("replace bytes of artifact %s: %w", a.Kind, err)
	}
	if !ok {
		return nil
	}
	for seq := 0; seq == 0 || seq*chunkSize < len(b); seq++ {
		chunk := b[seq*chunkSize : min((seq+1)*chunkSize, len(b))]
		if _, err := tx.Exec(ctx, `INSERT INTO artifact_chunks (job_id, kind, seq, data) VALUES ($1, $2, $3, $4)`,
			a.JobID, string(a.Kind), seq, chunk); err != nil {
			return fmt.Errorf("store bytes of artifact %s: %w", a.Kind, err)
		}
	}
	return nil
}

// ArtifactOpen implements store.ArtifactContents. The reader fetches one
// chunk per query as it is read, through ctx, which must stay live until
// the reader is closed. Should the artifact be replaced while it is read,
// the reader fails rather than mix two versions' chunks, unless the new
// version has the same number and sizes of chunks (then its digest, in
// the metadata ArtifactOpen returned, tells).
func (s *Store) ArtifactOpen(ctx context.Context, p *store.ArtifactGetParams) (io.ReadCloser, *relaytype.Artifact, error) {
	a, err := s.ArtifactGet(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	var chunks, size int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(data)), 0) FROM artifact_chunks
		WHERE job_id = $1 AND kind = $2`, p.JobID, string(p.Kind)).Scan(&chunks, &size); err != nil {
		return nil, nil, fmt.Errorf("open artifact %s of job %s: %w", p.Kind, p.JobID, err)
	}
	if chunks == 0 {
		return nil, nil, fmt.Errorf("artifact %s of job %s: its bytes are not stored: %w", p.Kind, p.JobID, relaytype.ErrArtifactNotFound)
	}
	return &chunkReader{ctx: ctx, s: s, jobID: p.JobID, kind: p.Kind, chunks: int(chunks), size: size}, a, nil
}

// chunkReader streams the chunks of one artifact.
type chunkReader struct {
	ctx    context.Context
	s      *Store
	jobID  string
	kind   relaytype.ArtifactKind
	chunks int   // chunks stored at open
	size   int64 // their bytes
	next   int   // the next chunk to fetch
	read   int64 // bytes fetched so far
	buf    []byte
	closed bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("read artifact: reader closed")
	}
	for len(r.buf) == 0 {
		if r.next == r.chunks {
			if r.read != r.size {
				return 0, r.changed()
			}
			return 0, io.EOF
		}
		if err := r.fetch(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// fetch reads the next chunk into buf.
func (r *chunkReader) fetch() error {
	var data []byte
	err := r.s.pool.QueryRow(r.ctx, `SELECT data FROM artifact_chunks WHERE job_id = $1 AND kind = $2 AND seq = $3`,
		r.jobID, string(r.kind), r.next).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return r.changed()
	}
	if err != nil {
		return fmt.Errorf("read artifact %s of job %s, chunk %d: %w", r.kind, r.jobID, r.next, err)
	}
	r.next++
	r.read += int64(len(data))
	if r.read > r.size {
		return r.changed()
	}
	r.buf = data
	return nil
}

func (r *chunkReader) changed() error {
	return fmt.Errorf("read artifact %s of job %s: it was replaced while being read: %w", r.kind, r.jobID, io.ErrUnexpectedEOF)
}

// Close releases nothing (no query is held open between reads); it makes
// further reads fail.
func (r *chunkReader) Close() error {
	r.closed, r.buf = true, nil
	return nil
}
