package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// maxBatch bounds how many write requests share one transaction, so that
// a burst cannot make one commit arbitrarily long.
const maxBatch = 64

// errClosed is returned by writes to a closed store.
var errClosed = errors.New("sqlite store is closed")

// txFunc is one write request: it runs inside a transaction it shares
// with the other requests of its batch, and its error undoes only its
// own writes. ctx is the caller's context without its cancellation: a
// request that has started runs to the end (an interrupted statement
// would roll back the whole shared transaction), the caller's
// cancellation is honoured while it waits for its turn.
type txFunc func(ctx context.Context, tx *wtx) error

// maxStmts bounds the statement cache.
const maxStmts = 256

// wtx is a write transaction whose statements come from the writer's
// cache of prepared statements: SQLite parses each distinct statement
// once per store instead of once per execution.
type wtx struct {
	*sql.Tx
	w *groupWriter
}

// ExecContext executes query with a cached prepared statement.
func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.w.stmt(query); st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs query with a cached prepared statement.
func (t *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.w.stmt(query); st != nil {
		return t.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query with a cached prepared statement.
func (t *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.w.stmt(query); st != nil {
		return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

type txRequest struct {
	ctx  context.Context
	fn   txFunc
	done chan error
	// lead tells the request's goroutine to run the next batch.
	lead chan struct{}
}

// groupWriter runs every write transaction of the store on the single
// writer connection, one goroutine at a time. Requests that arrive while a
// transaction runs are committed together in the next one (group commit):
// each runs inside its own SAVEPOINT, so a request that fails rolls back
// only its own writes, and a caller returns only after the COMMIT that
// made its writes durable (the same durability as one transaction per
// request, with one WAL commit for the whole batch).
type groupWriter struct {
	db *sql.DB

	// stmts are prepared on the writer connection between transactions
	// (database/sql can only prepare a connection-wide statement while
	// no transaction holds the connection); missed lists the statements
	// that ran unprepared since, to prepare before the next batch. Only
	// the leader touches them.
	stmts  map[string]*sql.Stmt
	missed []string

	// transactions and writes count batches and the requests they ran.
	transactions, writes atomic.Int64

	mu      sync.Mutex
	queue   []*txRequest
	leading bool // a goroutine is running batches
	busy    bool // the last batch had several requests or others waited
	closed  bool
}

// do runs fn in a write transaction, batched with concurrent requests.
// The goroutine that finds no batch running leads: it runs one batch (its
// own request and those queued before the batch starts) and hands the
// lead to the goroutine of the oldest request still queued. So there is
// no background goroutine to start or stop, and no caller waits for more
// than the batch running when it arrives plus its own.
func (w *groupWriter) do(ctx context.Context, fn txFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &txRequest{ctx: ctx, fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	w.queue = append(w.queue, req)
	lead := !w.leading
	w.leading = true
	w.mu.Unlock()
	if lead {
		w.lead()
	}
	for {
		select {
		case err := <-req.done:
			return err
		case <-req.lead:
			w.lead()
		}
	}
}

// lead runs the next batch from the head of the queue (the leader's own
// request is its first), then passes the lead on to the goroutine of the
// request now at the head, or ends it when the queue is empty.
func (w *groupWriter) lead() {
	if w.busy {
		// The last batch had company: let the goroutines that are about
		// to write join this one (one scheduler round, no timer).
		runtime.Gosched()
	}
	w.mu.Lock()
	n := min(len(w.queue), maxBatch)
	batch := make([]*txRequest, n)
	copy(batch, w.queue)
	w.queue = w.queue[n:]
	w.mu.Unlock()
	w.run(batch)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy = n > 1 || len(w.queue) > 0
	if len(w.queue) == 0 {
		w.leading = false
		return
	}
	w.queue[0].lead <- struct{}{}
}

// run executes one batch. It first runs the requests one after another
// in one transaction without savepoints; when one fails (rare: an illegal
// transition, a conflict), everything is rolled back, that request gets
// its error, and the others run again in a second transaction, this time
// each in its own savepoint. Re-running is safe: a request only reads and
// writes the database and sets its caller's results, and it sees the same
// writes before it as the first time, in the same order.
func (w *groupWriter) run(batch []*txRequest) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // canceled while waiting: never started
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	w.writes.Add(int64(len(live)))
	failed, err := w.runPlain(live)
	if failed < 0 {
		for _, r := range live {
			r.done <- err
		}
		return
	}
	live[failed].done <- err
	w.runSavepoints(append(live[:failed:failed], live[failed+1:]...))
}

// begin starts a write transaction, preparing first the statements that
// ran unprepared. The transaction outlives any one caller's context.
func (w *groupWriter) begin() (*wtx, error) {
	w.prepareMissed()
	w.transactions.Add(1)
	tx, err := w.db.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &wtx{Tx: tx, w: w}, nil
}

// runPlain runs live in one transaction without savepoints. It returns
// the index of the first request that failed and its error, everything
// rolled back; or -1 and the error of beginning or committing, which is
// every request's.
func (w *groupWriter) runPlain(live []*txRequest) (int, error) {
	tx, err := w.begin()
	if err != nil {
		return -1, err
	}
	for i, r := range live {
		if err := r.fn(context.WithoutCancel(r.ctx), tx); err != nil {
			_ = tx.Rollback()
			return i, err
		}
	}
	if err := tx.Commit(); err != nil {
		return -1, fmt.Errorf("commit: %w", err)
	}
	return -1, nil
}

// runSavepoints runs live in one transaction, each request in its own
// savepoint, so that a failing request undoes only its own writes.
func (w *groupWriter) runSavepoints(live []*txRequest) {
	if len(live) == 0 {
		return
	}
	tx, err := w.begin()
	if err != nil {
		for _, r := range live {
			r.done <- err
		}
		return
	}
	results := make([]error, len(live))
	for i, r := range live {
		err := w.step(tx, r)
		if err == nil || !errors.Is(err, errTxLost) {
			results[i] = err
			continue
		}
		// The transaction is gone (SQLite rolled it back on an I/O or
		// disk-full error): the requests that had succeeded in it lost
		// their writes, and the ones not yet run get a new transaction.
		_ = tx.Rollback()
		for j := range i + 1 {
			if results[j] == nil || j == i {
				results[j] = err
			}
		}
		for j := range i + 1 {
			live[j].done <- results[j]
		}
		w.runSavepoints(live[i+1:])
		return
	}
	if err := tx.Commit(); err != nil {
		for i := range results {
			if results[i] == nil {
				results[i] = fmt.Errorf("commit: %w", err)
			}
		}
	}
	for i, r := range live {
		r.done <- results[i]
	}
}

// errTxLost marks a failure after which the shared transaction no longer
// exists.
var errTxLost = errors.New("write transaction lost")

// step runs one request of a batch inside its own savepoint.
func (w *groupWriter) step(tx *wtx, r *txRequest) error {
	ctx := context.WithoutCancel(r.ctx)
	if _, err := tx.ExecContext(ctx, "SAVEPOINT request"); err != nil {
		return fmt.Errorf("%w: savepoint: %w", errTxLost, err)
	}
	if err := r.fn(ctx, tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO request"); rerr != nil {
			return fmt.Errorf("%w: %w (undo: %w)", errTxLost, err, rerr)
		}
		if _, rerr := tx.ExecContext(ctx, "RELEASE request"); rerr != nil {
			return fmt.Errorf("%w: %w (undo: %w)", errTxLost, err, rerr)
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, "RELEASE request"); err != nil {
		return fmt.Errorf("%w: release savepoint: %w", errTxLost, err)
	}
	return nil
}

// stmt returns the prepared statement of query, or nil (and notes the
// query for the next batch) if it is not prepared yet.
func (w *groupWriter) stmt(query string) *sql.Stmt {
	if st, ok := w.stmts[query]; ok {
		return st
	}
	if len(w.stmts)+len(w.missed) < maxStmts {
		w.missed = append(w.missed, query)
	}
	return nil
}

// prepareMissed prepares the statements that ran unprepared in earlier
// batches. A statement that fails to prepare is not cached; running it
// unprepared reports the error where it belongs.
func (w *groupWriter) prepareMissed() {
	for _, q := range w.missed {
		if _, ok := w.stmts[q]; ok {
			continue
		}
		st, err := w.db.PrepareContext(context.Background(), q)
		if err != nil {
			continue
		}
		if w.stmts == nil {
			w.stmts = make(map[string]*sql.Stmt)
		}
		w.stmts[q] = st
	}
	w.missed = w.missed[:0]
}

// close makes later writes fail with errClosed and closes the prepared
// statements (the connection's Close waits for a running transaction).
func (w *groupWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if !w.leading {
		for _, st := range w.stmts {
			_ = st.Close()
		}
		w.stmts = nil
	}
}

// WriteStats counts the work of a store's writer.
type WriteStats struct {
	// Transactions is the number of write transactions begun.
	Transactions int64
	// Writes is the number of write calls they carried (each store
	// method that changes something is one).
	Writes int64
}

// WriteStats returns the store's write counts since Open; Writes divided
// by Transactions is how many writes share a commit on average.
func (s *Store) WriteStats() WriteStats {
	return WriteStats{Transactions: s.write.transactions.Load(), Writes: s.write.writes.Load()}
}
