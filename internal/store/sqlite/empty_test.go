package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// EmptyForTest deletes every row but the migration history, leaving the
// store as a newly opened one: the conformance suite's state-machine
// property (storetest.Emptier) empties one store before each check
// instead of opening one per check.
func (s *Store) EmptyForTest(ctx context.Context) error {
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sqlite_master
		WHERE type = 'table' AND name <> ? AND (name NOT LIKE 'sqlite\_%' ESCAPE '\' OR name = 'sqlite_sequence')`,
		goose.DefaultTablename)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	// Rows that others reference go once those are gone: each pass
	// deletes the tables nothing left refers to. (PRAGMA
	// defer_foreign_keys would do it in one pass, but setting a pragma
	// expires every prepared statement, and the next check would parse
	// them all again.)
	for len(tables) > 0 {
		var left []string
		var lastErr error
		for _, name := range tables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
				left, lastErr = append(left, name), err
			}
		}
		if len(left) == len(tables) {
			return fmt.Errorf("empty %s: %w", left[0], lastErr)
		}
		tables = left
	}
	return tx.Commit()
}
