package sqlite

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Reads reuse one prepared statement per query text, concurrent reads
// included; past maxStmts texts reads run unprepared and still answer;
// after Close reads fail instead of using closed statements.
func TestReaderPreparesStatements(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", filepath.Join(t.TempDir(), "relay.db")} {
		s, err := Open(t.Context(), Config{Path: path})
		require.NoError(t, err)
		const q = `SELECT count(*) FROM jobs WHERE state = ?`
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					var n int
					if err := s.reader.QueryRowContext(t.Context(), q, "QUEUED").Scan(&n); err != nil || n != 0 {
						t.Errorf("read: %d, %v", n, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		require.Len(t, s.reader.stmts, 1, "path %q", path)
		require.Contains(t, s.reader.stmts, q)

		for i := range maxStmts + 10 {
			var got int
			require.NoError(t, s.reader.QueryRowContext(t.Context(), fmt.Sprintf(`SELECT %d`, i)).Scan(&got))
			require.Equal(t, i, got)
			rows, err := s.reader.QueryContext(t.Context(), fmt.Sprintf(`SELECT %d UNION ALL SELECT %d`, i, i+1))
			require.NoError(t, err)
			var vals []int
			for rows.Next() {
				var v int
				require.NoError(t, rows.Scan(&v))
				vals = append(vals, v)
			}
			require.NoError(t, rows.Err())
			require.NoError(t, rows.Close())
			require.Equal(t, []int{i, i + 1}, vals)
		}
		require.Len(t, s.reader.stmts, maxStmts)

		// A query that does not prepare reports its error where it runs.
		require.ErrorContains(t, s.reader.QueryRowContext(t.Context(), `SELECT nope FROM nowhere`).Scan(new(int)), "nowhere")

		require.NoError(t, s.Close())
		require.Error(t, s.reader.QueryRowContext(t.Context(), q, "QUEUED").Scan(new(int)))
		require.Empty(t, s.reader.stmts)
	}
}
