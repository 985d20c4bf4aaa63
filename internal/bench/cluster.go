package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Postgres measures relays sharing one PostgreSQL database, each with its
// own store (connection pool) as separate relay processes have: the
// notifications between them go through the server. Every run works in a
// fresh schema that Close drops.
type Postgres struct {
	url    string
	conn   *pgx.Conn
	schema []string
}

// NewPostgres connects to the database at url.
func NewPostgres(ctx context.Context, url string) (*Postgres, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to PostgreSQL: %w", err)
	}
	return &Postgres{url: url, conn: conn}, nil
}

// Close drops the schemas the runs made.
func (p *Postgres) Close() error {
	var errs []error
	for _, s := range p.schema {
		if _, err := p.conn.Exec(context.Background(), `DROP SCHEMA `+s+` CASCADE`); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, p.conn.Close(context.Background()))...)
}

// newSchema makes a fresh schema and returns its name.
func (p *Postgres) newSchema(ctx context.Context) (string, error) {
	s := "relay_bench_" + strings.ToLower(rand.Text()[:12])
	if _, err := p.conn.Exec(ctx, `CREATE SCHEMA `+s); err != nil {
		return "", fmt.Errorf("bench: create schema: %w", err)
	}
	p.schema = append(p.schema, s)
	return s, nil
}

// relays opens n stores on one fresh schema and a relay on each, with
// handler made by mk(i); claims(i) false makes relay i claim nothing.
func (p *Postgres) relays(ctx context.Context, n, concurrency int, mk func(i int) relay.Handler, claims func(i int) bool) ([]*relay.Relay, func(), error) {
	schema, err := p.newSchema(ctx)
	if err != nil {
		return nil, nil, err
	}
	var stores []*postgres.Store
	var rs []*relay.Relay
	closeAll := func() {
		for _, r := range rs {
			r.Stop()
		}
		for _, s := range stores {
			s.Close()
		}
	}
	for i := range n {
		st, err := postgres.Open(ctx, postgres.Config{URL: p.url, Schema: schema})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		stores = append(stores, st)
		cfg := relay.Config{Store: st, Handler: mk(i), Logger: slog.New(slog.DiscardHandler), MaxConcurrency: concurrency,
			InstanceID: fmt.Sprintf("bench-relay-%d", i)}
		if !claims(i) {
			cfg.Projects = func() []string { return []string{} }
		}
		r, err := relay.New(cfg)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		rs = append(rs, r)
	}
	return rs, closeAll, nil
}

// Throughput pushes n no-op jobs through relays relays sharing one
// schema, submitted round robin through all of them, and returns jobs per
// second from the first submit to the last SUCCEEDED.
func (p *Postgres) Throughput(ctx context.Context, relays, n, concurrency int) (Result, error) {
	rs, closeAll, err := p.relays(ctx, relays, concurrency, func(int) relay.Handler { return noop{} }, func(int) bool { return true })
	if err != nil {
		return Result{}, err
	}
	defer closeAll()
	el, err := drive(ctx, rs, n, 4, spec, 5*time.Minute)
	if err != nil {
		return Result{}, err
	}
	return Result{Name: fmt.Sprintf("no-op jobs, PostgreSQL, %d relay(s)", relays), N: n, PerSec: float64(n) / el.Seconds()}, nil
}

// Dispatch submits n jobs one at a time through relay A, which claims
// nothing, and measures the time from before the submit to the handler of
// relay B starting it: B hears of the job through PostgreSQL's
// notification.
func (p *Postgres) Dispatch(ctx context.Context, n int) (submit, dispatch Result, err error) {
	started := make(chan time.Time, 1)
	rs, closeAll, err := p.relays(ctx, 2, 3, func(int) relay.Handler {
		return noop{started: func(*relaytype.Job) { started <- time.Now() }}
	}, func(i int) bool { return i == 1 })
	if err != nil {
		return submit, dispatch, err
	}
	defer closeAll()
	for _, r := range rs {
		if err := r.Start(ctx); err != nil {
			return submit, dispatch, err
		}
	}
	sd, dd, err := measureDispatch(ctx, n, rs[0], started)
	if err != nil {
		return submit, dispatch, err
	}
	return Summarize("submit (PostgreSQL)", sd), Summarize("submit on A → start on B (PostgreSQL)", dd), nil
}

// AskWake measures an answer posted to relay A waking the executor's long
// poll parked on relay B (both HTTP APIs on loopback, one database): n
// samples from just before POST /answers on A to B's GET returning.
func (p *Postgres) AskWake(ctx context.Context, n int) ([]time.Duration, error) {
	schema, err := p.newSchema(ctx)
	if err != nil {
		return nil, err
	}
	tokens, err := ask.NewTokens("tro_" + rand.Text())
	if err != nil {
		return nil, err
	}
	open := func() (*postgres.Store, error) {
		return postgres.Open(ctx, postgres.Config{URL: p.url, Schema: schema})
	}
	sb, err := open()
	if err != nil {
		return nil, err
	}
	b, err := newBenchStackOn(ctx, sb, tokens, true)
	if err != nil {
		return nil, err
	}
	defer b.close()
	sa, err := open()
	if err != nil {
		return nil, err
	}
	a, err := newBenchStackOn(ctx, sa, tokens, false)
	if err != nil {
		return nil, err
	}
	defer a.close()
	out := make([]time.Duration, 0, n)
	for range n {
		d, err := b.wakeVia(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("bench cross-relay wake: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}
