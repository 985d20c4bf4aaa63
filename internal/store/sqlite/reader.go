package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// readDB runs the store's reads with statements prepared once per query
// text: database/sql prepares a statement on each reader connection the
// first time it runs there and keeps it, so SQLite parses a read once per
// connection instead of at every call (parsing was most of the CPU time
// of a short read). At most maxStmts texts are kept; others run
// unprepared.
type readDB struct {
	db *sql.DB

	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	closed bool
}

// stmt returns the prepared statement of query, or nil when it cannot be
// prepared (the unprepared call then reports the error) or the cache is
// full or closed.
func (r *readDB) stmt(ctx context.Context, query string) *sql.Stmt {
	r.mu.Lock()
	st, ok := r.stmts[query]
	full := r.closed || len(r.stmts) >= maxStmts
	r.mu.Unlock()
	if ok || full {
		return st
	}
	// Prepared without the lock: preparing waits for a free connection,
	// and reads of statements already cached must not wait behind it.
	st, err := r.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cached, ok := r.stmts[query]; ok || r.closed {
		_ = st.Close() // another call prepared it first, or the store closed
		return cached
	}
	if r.stmts == nil {
		r.stmts = make(map[string]*sql.Stmt)
	}
	r.stmts[query] = st
	return st
}

// QueryContext runs a read.
func (r *readDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := r.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.db.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a read of one row.
func (r *readDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := r.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.db.QueryRowContext(ctx, query, args...)
}

// close closes the prepared statements; later reads run unprepared (and
// fail on the closed database).
func (r *readDB) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, st := range r.stmts {
		_ = st.Close()
	}
	r.stmts = nil
}
