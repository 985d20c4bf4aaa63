// Package pgtest gives tests a PostgreSQL schema of their own on the test
// database: postgres://postgres@127.0.0.1:5432/test unless
// TASK_RELAY_TEST_POSTGRES_URL names another. A test fails when the
// server cannot be reached, unless TASK_RELAY_TEST_POSTGRES=off skips it
// explicitly.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the test database unless TASK_RELAY_TEST_POSTGRES_URL
// names another.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test database's URL, or skips t when
// TASK_RELAY_TEST_POSTGRES=off.
func URL(t testing.TB) string {
	t.Helper()
	if os.Getenv("TASK_RELAY_TEST_POSTGRES") == "off" {
		t.Skip("TASK_RELAY_TEST_POSTGRES=off: PostgreSQL tests skipped")
	}
	if url := os.Getenv("TASK_RELAY_TEST_POSTGRES_URL"); url != "" {
		return url
	}
	return DefaultURL
}

// Connect connects to url, failing t with how to start the server or
// skip the tests when it cannot. t.Cleanup closes the connection.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn := connect(t, url)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// connect is Connect for a connection its caller closes.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at TASK_RELAY_TEST_POSTGRES_URL (default %s): %v\n"+
			"start it (pg_ctlcluster <version> main start), point TASK_RELAY_TEST_POSTGRES_URL at one, "+
			"or set TASK_RELAY_TEST_POSTGRES=off to skip these tests", DefaultURL, err)
	}
	return conn
}

// NewSchema creates an empty schema relay_test_<random> on the database
// at url, which t.Cleanup drops, and returns its name.
func NewSchema(t testing.TB, url string) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "relay_test_" + hex.EncodeToString(b[:])
	// No connection is held between: a test that makes many schemas (the
	// property test makes one per check) must not run the server out of
	// connections.
	conn := connect(t, url)
	_, err := conn.Exec(context.Background(), `CREATE SCHEMA `+schema)
	_ = conn.Close(context.Background())
	if err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn := connect(t, url)
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// WithParams appends query parameters to a connection URL.
func WithParams(url string, params ...string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + strings.Join(params, "&")
}

// SchemaURL makes a fresh schema (see NewSchema) and returns the URL of a
// connection to it (search_path in the URL), for code that takes only a
// URL, and the schema's name.
func SchemaURL(t testing.TB) (url, schema string) {
	t.Helper()
	base := URL(t)
	schema = NewSchema(t, base)
	return WithParams(base, "search_path="+schema), schema
}
