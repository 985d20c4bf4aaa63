package sqlite

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

// schemaSQL is the schema of a database at the newest migration, as
// SQLite records it (sqlite_master) after applying every migration in
// turn, goose's version table included. A new database is created from it
// in one transaction rather than by replaying the migrations, each of
// which makes SQLite re-read the schema (and most ALTER TABLE a table):
// that was most of the time of opening a new store, which an in-memory
// relay does at every start. TestSchemaMatchesMigrations checks that both
// ways give the same schema, and rewrites the file with -update-schema.
//
//go:embed schema.sql
var schemaSQL string

// schemaHeader starts schema.sql; the version of the newest migration
// follows it on the first line.
const schemaHeader = "-- schema at migration "

// schemaVersion returns the migration version schema.sql was made at.
func schemaVersion(text string) (int64, error) {
	line, _, _ := strings.Cut(text, "\n")
	v, ok := strings.CutPrefix(line, schemaHeader)
	if !ok {
		return 0, fmt.Errorf("schema.sql does not start with %q", schemaHeader)
	}
	return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
}

// createFresh creates the whole schema of a database that has nothing in
// it yet, in one immediate transaction, and records every migration up to
// newest as applied the way goose does, so that later binaries migrate it
// from there. It reports false, and changes nothing, when the database is
// not empty (another process may have created it meanwhile) or when
// schema.sql is not at newest: then the migrations run as usual.
func (s *Store) createFresh(ctx context.Context, newest int64) (bool, error) {
	// A schema.sql that does not say its version, or another one: the
	// migrations create the schema instead.
	if v, err := schemaVersion(schemaSQL); err != nil || v != newest {
		return false, nil
	}
	tx, err := s.writer.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return false, fmt.Errorf("create schema: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	var objects int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&objects); err != nil {
		return false, fmt.Errorf("create schema: %w", err)
	}
	if objects > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
		return false, fmt.Errorf("create schema: %w", err)
	}
	// goose records version 0 when it creates its table, then one row
	// per migration applied.
	for v := int64(0); v <= newest; v++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+goose.DefaultTablename+` (version_id, is_applied) VALUES (?, 1)`, v); err != nil {
			return false, fmt.Errorf("create schema: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("create schema: %w", err)
	}
	return true, nil
}
