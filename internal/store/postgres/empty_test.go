package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
)

// EmptyForTest deletes every row of the store's schema but the migration
// history, leaving the store as a newly opened one: the conformance
// suite's state-machine property (storetest.Emptier) empties one store
// before each check instead of making a schema per check.
func (s *Store) EmptyForTest(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT tablename FROM pg_tables
		WHERE schemaname = current_schema() AND tablename <> $1`, goose.DefaultTablename)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) == 0 {
		return err
	}
	for i, name := range tables {
		tables[i] = pgx.Identifier{name}.Sanitize()
	}
	_, err = s.pool.Exec(ctx, `TRUNCATE `+strings.Join(tables, ", ")+` RESTART IDENTITY CASCADE`)
	return err
}
