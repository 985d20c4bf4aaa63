package sqlite

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite schema.sql from the migrations")

// migrated returns a new in-memory database migrated by goose alone, one
// migration after another, as databases made before schema.sql were.
func migrated(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:?"+pragmas(Config{BusyTimeout: DefaultBusyTimeout}, false))
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	sub, err := fs.Sub(migrations, "migrations")
	require.NoError(t, err)
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	_, err = p.Up(context.Background())
	require.NoError(t, err)
	return db
}

// dumpSchema describes everything a store's behaviour depends on: every
// schema object with its SQL, goose's record of the migrations applied,
// the AUTOINCREMENT counters and how many rows each table holds.
func dumpSchema(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var typ, name, tbl, text string
		require.NoError(t, rows.Scan(&typ, &name, &tbl, &text))
		fmt.Fprintf(&b, "%s %s on %s: %s\n", typ, name, tbl, text)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	require.NoError(t, rows.Err())
	rows.Close()
	for _, name := range tables {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM "`+name+`"`).Scan(&n))
		fmt.Fprintf(&b, "rows in %s: %d\n", name, n)
	}
	for _, q := range []string{
		`SELECT version_id || ' ' || is_applied FROM ` + goose.DefaultTablename + ` ORDER BY id`,
		`SELECT name || ' ' || seq FROM sqlite_sequence ORDER BY name`,
	} {
		rows, err := db.Query(q)
		require.NoError(t, err)
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			fmt.Fprintf(&b, "%s\n", line)
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	return b.String()
}

// A new database made from schema.sql in one step is the database the
// migrations make one after another: same tables, columns, indexes,
// migration record and counters. With -update-schema the test rewrites
// schema.sql from the migrations first (after adding a migration).
func TestSchemaMatchesMigrations(t *testing.T) {
	want := migrated(t)
	newest, err := newestMigration()
	require.NoError(t, err)
	if *updateSchema {
		rows, err := want.Query(`SELECT sql FROM sqlite_master
			WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY rowid`)
		require.NoError(t, err)
		var b strings.Builder
		fmt.Fprintf(&b, "%s%d\n-- Generated from the migrations by TestSchemaMatchesMigrations (-update-schema); do not edit.\n", schemaHeader, newest)
		for rows.Next() {
			var text string
			require.NoError(t, rows.Scan(&text))
			fmt.Fprintf(&b, "\n%s;\n", text)
		}
		require.NoError(t, rows.Err())
		rows.Close()
		// AUTOINCREMENT counters the migrations left (goose's own is
		// made by recording the versions).
		rows, err = want.Query(`SELECT name, seq FROM sqlite_sequence WHERE name <> ? ORDER BY name`, goose.DefaultTablename)
		require.NoError(t, err)
		for rows.Next() {
			var name string
			var seq int64
			require.NoError(t, rows.Scan(&name, &seq))
			fmt.Fprintf(&b, "\nINSERT INTO sqlite_sequence (name, seq) VALUES ('%s', %d);\n", name, seq)
		}
		require.NoError(t, rows.Err())
		rows.Close()
		require.NoError(t, os.WriteFile("schema.sql", []byte(b.String()), 0o644))
		schemaSQL = b.String()
	}
	v, err := schemaVersion(schemaSQL)
	require.NoError(t, err)
	require.Equal(t, newest, v, "schema.sql is behind the migrations: go test -run TestSchemaMatchesMigrations -update-schema ./internal/store/sqlite")

	for _, path := range []string{"", filepath.Join(t.TempDir(), "relay.db")} {
		s, err := Open(context.Background(), Config{Path: path})
		require.NoError(t, err)
		require.Equal(t, dumpSchema(t, want), dumpSchema(t, s.writer), "path %q", path)

		// goose sees the new database as fully migrated.
		sub, err := fs.Sub(migrations, "migrations")
		require.NoError(t, err)
		p, err := goose.NewProvider(goose.DialectSQLite3, s.writer, sub, goose.WithDisableGlobalRegistry(true))
		require.NoError(t, err)
		pending, err := p.HasPending(context.Background())
		require.NoError(t, err)
		require.False(t, pending, "path %q", path)
		got, err := p.GetDBVersion(context.Background())
		require.NoError(t, err)
		require.Equal(t, newest, got)
		require.NoError(t, s.Close())
	}
}

// createFresh makes the schema only in an empty database: one that holds
// anything is left to the migrations, unchanged.
func TestCreateFreshOnlyInEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newest, err := newestMigration()
	require.NoError(t, err)

	s := &Store{}
	s.writer = migrated(t)
	before := dumpSchema(t, s.writer)
	created, err := s.createFresh(ctx, newest)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, before, dumpSchema(t, s.writer))

	// A schema.sql of another version than the newest migration is not used.
	empty, err := sql.Open("sqlite", ":memory:?"+pragmas(Config{BusyTimeout: DefaultBusyTimeout}, false))
	require.NoError(t, err)
	empty.SetMaxOpenConns(1)
	defer empty.Close()
	s.writer = empty
	created, err = s.createFresh(ctx, newest+1)
	require.NoError(t, err)
	require.False(t, created)
	var objects int
	require.NoError(t, empty.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&objects))
	require.Zero(t, objects)

	created, err = s.createFresh(ctx, newest)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, before, dumpSchema(t, empty))
}

// BenchmarkOpenNew opens (and closes) a new in-memory store: what every
// start of an in-memory relay pays before it can serve.
func BenchmarkOpenNew(b *testing.B) {
	for b.Loop() {
		s, err := Open(context.Background(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
