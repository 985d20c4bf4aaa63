// Package sqlite implements store.Store on SQLite through the pure-Go
// modernc.org/sqlite driver. A file database runs in WAL mode with one
// writer connection (every write transaction is BEGIN IMMEDIATE, so writers
// queue on SQLite's lock instead of failing with SQLITE_BUSY mid-way) and a
// pool of readers. An in-memory database lives in a single connection and
// never touches the disk.
//
// There is no SKIP LOCKED here: with a single writer, a claim transaction
// sees every other claim as committed before it starts. For the same
// reason the fenced writes of a worker (store's Fenced writes: Owner and
// Attempt checked by the jobstate rules) need no row lock: the job row a
// rule judges cannot change before the transaction that read it commits.
//
// A SQLite store serves one relay process on one machine. It implements
// store.Registry (the relays table), but not store.Notifier (the relay's
// in-process signals are enough) nor store.ArtifactContents (artifact
// bytes stay in the relay's data directory, and JobTransitionParams.
// Contents is ignored).
//
// Open refuses a database that a newer binary migrated (its goose version
// is above the newest embedded migration) with a *store.SchemaTooNewError,
// before it migrates or writes anything.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultBusyTimeout is how long a connection waits for a lock.
const DefaultBusyTimeout = 10 * time.Second

// Config configures Open.
type Config struct {
	// Path is the database file. Empty means a private in-memory database
	// that writes nothing to disk. Defaults to in-memory.
	Path string
	// BusyTimeout bounds waits on SQLite's locks. Defaults to
	// DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReaders caps the read connection pool of a file database.
	// Defaults to max(4, GOMAXPROCS).
	MaxReaders int
}

// Store is the SQLite store.
type Store struct {
	writer *sql.DB
	reader *readDB
	memory bool
	path   string
	write  *groupWriter
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database and applies pending
// migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if cfg.MaxReaders == 0 {
		cfg.MaxReaders = max(4, runtime.GOMAXPROCS(0))
	}
	s := &Store{memory: cfg.Path == "", path: cfg.Path}
	if s.memory {
		// ":memory:" is private to its connection, so the whole store uses
		// exactly one connection that is never closed while the store lives.
		db, err := sql.Open("sqlite", ":memory:?"+pragmas(cfg, false))
		if err != nil {
			return nil, fmt.Errorf("open in-memory sqlite: %w", err)
		}
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		s.writer, s.reader = db, &readDB{db: db}
	} else {
		if dir := filepath.Dir(cfg.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create sqlite directory: %w", err)
			}
		}
		w, err := sql.Open("sqlite", "file:"+escapePath(cfg.Path)+"?"+pragmas(cfg, true))
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		r, err := sql.Open("sqlite", "file:"+escapePath(cfg.Path)+"?"+pragmas(cfg, true)+"&mode=ro")
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
		}
		r.SetMaxOpenConns(cfg.MaxReaders)
		r.SetMaxIdleConns(cfg.MaxReaders)
		s.writer, s.reader = w, &readDB{db: r}
	}
	s.write = &groupWriter{db: s.writer}
	if err := s.init(ctx, cfg.Path); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func escapePath(p string) string {
	return (&url.URL{Path: p}).EscapedPath()
}

func pragmas(cfg Config, wal bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if wal {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	q.Set("_txlock", "immediate")
	return q.Encode()
}

func (s *Store) init(ctx context.Context, path string) error {
	if !s.memory {
		// Litestream's lesson: ask, don't assume, that WAL took effect.
		var mode string
		if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			return fmt.Errorf("open sqlite %s: %w", path, err)
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("open sqlite %s: journal_mode is %q, want wal", path, mode)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("restrict sqlite file mode: %w", err)
		}
	}
	newest, err := newestMigration()
	if err != nil {
		return err
	}
	if created, err := s.createFresh(ctx, newest); err != nil || created {
		return err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.writer, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if err := s.checkSchemaVersion(ctx, newest); err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// newestMigration returns the version of the newest embedded migration
// (the number its file name starts with).
func newestMigration() (int64, error) {
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var newest int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return 0, fmt.Errorf("migrations: %s does not start with a version number", e.Name())
		}
		newest = max(newest, v)
	}
	return newest, nil
}

// checkSchemaVersion refuses a database that a newer binary migrated
// (store.SchemaTooNewError), before anything is written: not even goose's
// version table is created here.
func (s *Store) checkSchemaVersion(ctx context.Context, known int64) error {
	var tables int
	if err := s.writer.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
		goose.DefaultTablename).Scan(&tables); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if tables == 0 {
		return nil
	}
	var version sql.NullInt64
	if err := s.writer.QueryRowContext(ctx, `SELECT max(version_id) FROM `+goose.DefaultTablename).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version.Valid && version.Int64 > known {
		return fmt.Errorf("open sqlite: %w", &store.SchemaTooNewError{Database: version.Int64, Known: known})
	}
	return nil
}

// Close closes the database; calling it again does nothing.
func (s *Store) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.write != nil {
		s.write.close()
	}
	var errs []error
	if s.reader != nil {
		s.reader.close()
		if s.reader.db != s.writer {
			errs = append(errs, s.reader.db.Close())
		}
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	return errors.Join(errs...)
}

// inTx runs fn in an immediate write transaction, which it may share
// with concurrent writes (group commit: see groupWriter). It returns once
// fn's writes are committed, or with fn's error and none of them.
func (s *Store) inTx(ctx context.Context, fn txFunc) error {
	return s.write.do(ctx, fn)
}
