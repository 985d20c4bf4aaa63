// Package postgres implements store.Store on PostgreSQL through pgx/v5 and
// a pgxpool connection pool. Its goose migrations (migrations/, numbered
// like the SQLite store's) keep times as Unix milliseconds in bigint
// columns, as the SQLite store does, and JSON in jsonb (json where bytes
// must come back unchanged: event payloads, context envelopes, outbox
// bodies).
//
// The job and ask state rules are not here: every method loads what the
// rules of package jobstate need (the job row under its lock, its PENDING
// asks, its artifacts), calls them, and writes the decision they return
// (apply.go), so SQLite and PostgreSQL share one state machine. This
// package only runs the queries and the transactions.
//
// # Concurrency contracts
//
// The SQLite store gets its guarantees from a single writer. Here many
// connections, and many relays, write at once, and every transaction runs
// at READ COMMITTED; the store keeps the same guarantees as follows.
//
//   - Job row lock. Every method that changes a job, its asks, answers,
//     artifacts or events first locks the job's row (SELECT … FOR UPDATE)
//     and reads it as it is then, so the state rules always judge the
//     latest committed state and two changes to one job run one after
//     the other (JobHeartbeat too). Asks are always
//     locked through their job (job first), so no two transactions lock
//     in opposite orders.
//   - Fenced writes. A worker's heartbeat, transition, release, log event
//     and ask name its lease (Owner) and attempt (Attempt); the rules of
//     jobstate (Heartbeat, Transition, Release, Fence, AskInsert) compare
//     them with the job row read under its lock, in the transaction that
//     would write. A relay whose lease lapsed, and whose job another
//     relay (or the same one, under the same Owner) now runs as the next
//     attempt, is refused with relaytype.ErrLeaseLost: it cannot slip a
//     write in between the check and the write, because the row stays
//     locked until the write commits.
//   - Claims. JobClaim selects QUEUED jobs with FOR UPDATE SKIP LOCKED: two
//     claimers never wait for each other and never claim one job twice;
//     the UPDATE that starts the job also checks state_version. Its
//     filters (project, executor, host) are plain comparisons of columns,
//     so the query walks jobs_claim_idx in claim order. JobRescue
//     and JobExpire skip locked jobs the same way (a job being changed is
//     handled by the next sweep), and OutboxClaim leases messages the same
//     way.
//   - Idempotent submit. At most one job per project and idempotency key
//     is not terminal; a partial unique index (jobs_idempotency_live_idx)
//     enforces it (no transition leaves a terminal state, so no UPDATE
//     can break it). JobInsert looks up the job to return instead
//     (jobstate.Reuses: the existing-job rules are unchanged), then
//     inserts with ON CONFLICT DO NOTHING on that index. A submit that
//     loses a race inserts nothing (PostgreSQL makes it wait for the
//     winner's commit) and looks again, finding the winner's job.
//   - Event ids in commit order. job_events.id is one global identity, as
//     in SQLite. A job's events are only ever appended by a transaction
//     that holds the job's row lock (or that inserted the job), and an id
//     is drawn after the lock is taken, so the previous holder has
//     committed every smaller id of that job before a larger one is drawn.
//     A reader paging a job's events with id > Last-Event-ID therefore
//     never skips one that commits later. The row lock is taken anyway for
//     the state rules, so this costs nothing more than per-job sequence
//     numbers or an advisory lock would, and keeps ids that sort across
//     jobs.
//   - Notifications (store.Notifier). Every transaction that changes a
//     job (insert, claim, transition, release, rescue, expire; not a
//     heartbeat), an ask (insert, defer, answer, closing with its
//     attempt), appends an event through EventAppend or enqueues an
//     outbox message runs SELECT pg_notify(...) as its last statement
//     before COMMIT (notify.go), so PostgreSQL delivers the notifications
//     at commit and drops them with a rollback; a job is named once per
//     transaction, in the state it commits. The payload is the JSON of a
//     store.Notification (ids, no data) plus the random origin id of the
//     Store value, whose own listeners skip it. The channel is
//     "mcp_task_relay", suffixed with Config.Schema (or its hash, should
//     the name pass 63 bytes) so that stores in different schemas of one
//     database do not hear each other. Listen holds a dedicated
//     connection; it never blocks on its receiver (a full buffer drops
//     and owes one NotifyResync), and after a lost connection it
//     reconnects with backoff (up to 2 s) and sends NotifyResync.
//     Notifications are wake-ups, not a log: receivers keep a slow poll.
//   - Artifact bytes (store.ArtifactContents). JobTransition stores the
//     Contents of each artifact it stores in artifact_chunks, 256 KiB per
//     row, in its own transaction, replacing the artifact's older chunks.
//     ArtifactOpen counts the chunks, then the reader fetches one chunk
//     per query as it is read: no transaction or connection is held
//     between reads and at most one chunk is in memory. A reader that
//     finds the artifact replaced under it fails rather than mix versions
//     (a replacement with chunks of the very same sizes is told by the
//     digest ArtifactOpen returned).
//   - Schema refusal. Open reads goose's version table before it migrates
//     or writes anything; a version newer than the newest embedded
//     migration (a newer relay migrated the database) fails with a
//     *store.SchemaTooNewError, since this binary would write rows whose
//     meaning it does not know.
//
// Errors from PostgreSQL are translated at this edge: a unique violation
// on an ask id is relaytype.ErrAskConflict, on an answer
// relaytype.ErrAnswerConflict, a foreign key violation on a job id
// relaytype.ErrJobNotFound. A transaction that PostgreSQL aborts as a
// deadlock or serialization failure is retried a few times.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures Open.
type Config struct {
	// URL is the connection string (postgres://user@host:port/db?...).
	URL string
	// Schema, when set, is the search_path of every connection: the
	// store's tables (and goose's version table) live in it. The schema
	// must exist.
	Schema string
	// MaxConns caps the connection pool; zero keeps pgxpool's default.
	MaxConns int32
}

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
	// origin identifies this Store value in its notifications, so that
	// its own listeners skip them.
	origin string
	// channel is the NOTIFY channel of the store's schema.
	channel string
	// closed ends with Close, and with it every Listen.
	closed context.Context
	close  context.CancelFunc
}

var (
	_ store.Store            = (*Store)(nil)
	_ store.Notifier         = (*Store)(nil)
	_ store.ArtifactContents = (*Store)(nil)
	_ store.Registry         = (*Store)(nil)
)

// Open connects to the database and applies pending migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("open postgres: a connection URL is required")
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: parse URL: %w", err)
	}
	if cfg.Schema != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres at %s:%d: %w", pc.ConnConfig.Host, pc.ConnConfig.Port, err)
	}
	origin, err := newOrigin()
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, origin: origin, channel: channelName(cfg.Schema)}
	s.closed, s.close = context.WithCancel(context.Background())
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	// Relays starting together on one database migrate one at a time:
	// a session advisory lock, one per schema, held around goose's run.
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("migrations: current schema: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte("mcp-task-relay migrations\x00" + schema))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 120))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if err := s.checkSchemaVersion(ctx, p); err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// checkSchemaVersion refuses a database that a newer binary migrated
// (store.SchemaTooNewError), before anything is written: not even goose's
// version table is created here.
func (s *Store) checkSchemaVersion(ctx context.Context, p *goose.Provider) error {
	var known int64
	for _, src := range p.ListSources() {
		known = max(known, src.Version)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables
		WHERE schemaname = current_schema() AND tablename = $1)`, goose.DefaultTablename).Scan(&exists); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return nil
	}
	var version *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(version_id) FROM `+goose.DefaultTablename).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version != nil && *version > known {
		return fmt.Errorf("open postgres: %w", &store.SchemaTooNewError{Database: *version, Known: known})
	}
	return nil
}

// Close stops the store's listeners and closes the connection pool.
func (s *Store) Close() error {
	s.close()
	s.pool.Close()
	return nil
}

// txRetries bounds the retries of a transaction PostgreSQL aborted as a
// deadlock or serialization failure.
const txRetries = 3

// inTx runs fn in one READ COMMITTED transaction, retrying it when
// PostgreSQL aborts it as a deadlock or serialization failure; fn must
// reset whatever it returns through its closure.
func (s *Store) inTx(ctx context.Context, fn func(tx *txn) error) error {
	for try := 0; ; try++ {
		err := s.tryTx(ctx, fn)
		if err == nil || try >= txRetries || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try+1) * 5 * time.Millisecond):
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx *txn) error) error {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &txn{Tx: ptx}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return translate(err)
	}
	// The notifications go out with the commit, and only then.
	if err := s.sendNotes(ctx, tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return translate(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// PostgreSQL error codes the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}

// translate maps constraint violations to the store's sentinel errors,
// keeping the PostgreSQL error in the chain.
func translate(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case codeUniqueViolation:
		switch pe.TableName {
		case "asks":
			return fmt.Errorf("%w: %w", relaytype.ErrAskConflict, err)
		case "answers":
			return fmt.Errorf("%w: %w", relaytype.ErrAnswerConflict, err)
		}
	case codeForeignKeyViolation:
		if strings.HasSuffix(pe.ConstraintName, "_job_id_fkey") {
			return fmt.Errorf("%w: %w", relaytype.ErrJobNotFound, err)
		}
	}
	return err
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func optTime(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromMS(*v)
	return &t
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
