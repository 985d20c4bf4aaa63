package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// openBatchTest opens a file store with a scratch table and returns a
// function that blocks the writer: the request it starts holds the lead
// until release is called, so every request made meanwhile queues and
// the next batch holds them all.
func openBatchTest(t *testing.T) (s *Store, block func() (release func())) {
	t.Helper()
	s, err := Open(t.Context(), Config{Path: filepath.Join(t.TempDir(), "relay.db")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.inTx(t.Context(), func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE scratch (k TEXT PRIMARY KEY)`)
		return err
	}))
	block = func() func() {
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- s.inTx(context.Background(), func(context.Context, *wtx) error {
				close(started)
				<-release
				return nil
			})
		}()
		<-started
		return func() {
			close(release)
			require.NoError(t, <-done)
		}
	}
	return s, block
}

// waitQueued waits until n requests wait in the writer's queue.
func waitQueued(t *testing.T, w *groupWriter, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.queue) == n
	}, 10*time.Second, time.Millisecond)
}

func scratchKeys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	rows, err := s.reader.QueryContext(t.Context(), `SELECT k FROM scratch`)
	require.NoError(t, err)
	defer rows.Close()
	keys := map[string]bool{}
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys[k] = true
	}
	require.NoError(t, rows.Err())
	return keys
}

// A batch shares one transaction, but each request's writes stand or
// fall alone: a failing request (after writing) leaves nothing, a request
// whose caller gave up before its turn never runs, the others commit.
func TestBatchKeepsEachRequestApart(t *testing.T) {
	t.Parallel()
	s, block := openBatchTest(t)
	release := block()

	const n = 30
	errs := make([]error, n)
	var wg sync.WaitGroup
	canceled, cancel := context.WithCancel(context.Background())
	for i := range n {
		ctx := context.Background()
		if i == 7 {
			ctx = canceled
		}
		wg.Go(func() {
			errs[i] = s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO scratch (k) VALUES (?)`, fmt.Sprint(i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return fmt.Errorf("request %d fails after writing", i)
				}
				return nil
			})
		})
		waitQueued(t, s.write, i+1) // queue order = i
	}
	cancel()
	before := s.WriteStats()
	release()
	wg.Wait()
	// All but the canceled one ran: first together without savepoints,
	// which the first failure rolled back, then in a second transaction,
	// one savepoint each.
	after := s.WriteStats()
	require.Equal(t, int64(2), after.Transactions-before.Transactions)
	require.Equal(t, int64(n-1), after.Writes-before.Writes)

	keys := scratchKeys(t, s)
	for i := range n {
		switch {
		case i == 7:
			require.ErrorIs(t, errs[i], context.Canceled)
			require.False(t, keys[fmt.Sprint(i)], "canceled request %d ran", i)
		case i%3 == 0:
			require.ErrorContains(t, errs[i], "fails after writing")
			require.False(t, keys[fmt.Sprint(i)], "failed request %d kept its write", i)
		default:
			require.NoError(t, errs[i])
			require.True(t, keys[fmt.Sprint(i)], "request %d lost its write", i)
		}
	}
	// The rows are durable: a new store on the file sees them.
	require.NoError(t, s.Close())
	again, err := Open(t.Context(), Config{Path: s.path})
	require.NoError(t, err)
	defer again.Close()
	require.Equal(t, keys, scratchKeys(t, again))
}

// Requests that all succeed share one transaction and one commit.
func TestBatchOneCommit(t *testing.T) {
	t.Parallel()
	s, block := openBatchTest(t)
	release := block()
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.inTx(context.Background(), func(ctx context.Context, tx *wtx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO scratch (k) VALUES (?)`, fmt.Sprint(i))
				return err
			})
		})
		waitQueued(t, s.write, i+1)
	}
	before := s.WriteStats()
	release()
	wg.Wait()
	after := s.WriteStats()
	require.Equal(t, int64(1), after.Transactions-before.Transactions)
	require.Equal(t, int64(n), after.Writes-before.Writes)
	for i := range n {
		require.NoError(t, errs[i])
	}
	require.Len(t, scratchKeys(t, s), n)
}

// When the shared transaction itself is lost while the requests run in
// savepoints, the requests that had succeeded in it are told so (their
// writes are gone), and the ones not yet run get a transaction of their
// own and commit.
func TestBatchLostTransaction(t *testing.T) {
	t.Parallel()
	s, block := openBatchTest(t)
	release := block()

	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.inTx(context.Background(), func(ctx context.Context, tx *wtx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO scratch (k) VALUES (?)`, fmt.Sprint(i)); err != nil {
					return err
				}
				switch i {
				case 1:
					// Fails plainly: the batch goes on in savepoints.
					return errors.New("plain failure")
				case 4:
					// What SQLite does on an I/O or disk-full error.
					_, err := tx.ExecContext(ctx, `ROLLBACK`)
					require.NoError(t, err)
					return errors.New("disk gone")
				}
				return nil
			})
		})
		waitQueued(t, s.write, i+1)
	}
	release()
	wg.Wait()

	keys := scratchKeys(t, s)
	require.ErrorContains(t, errs[1], "plain failure")
	for _, i := range []int{0, 2, 3, 4} {
		require.ErrorIs(t, errs[i], errTxLost, "request %d", i)
	}
	require.ErrorContains(t, errs[4], "disk gone")
	require.NoError(t, errs[5])
	require.Equal(t, map[string]bool{"5": true}, keys)
	// The writer goes on.
	require.NoError(t, s.inTx(t.Context(), func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO scratch (k) VALUES ('after')`)
		return err
	}))
	require.True(t, scratchKeys(t, s)["after"])
}

// Statements run unprepared once and prepared from the next batch on.
func TestWriterPreparesStatements(t *testing.T) {
	t.Parallel()
	s, _ := openBatchTest(t)
	const q = `INSERT INTO scratch (k) VALUES (?)`
	for i := range 3 {
		require.NoError(t, s.inTx(t.Context(), func(ctx context.Context, tx *wtx) error {
			_, err := tx.ExecContext(ctx, q, fmt.Sprint(i))
			return err
		}))
	}
	require.Contains(t, s.write.stmts, q)
	require.Len(t, scratchKeys(t, s), 3)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.inTx(t.Context(), func(context.Context, *wtx) error { return nil }), errClosed)
}
