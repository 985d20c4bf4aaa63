package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// AskWake measures the Ask/Answer API over real HTTP on loopback, with
// an in-process stack of its own (in-memory SQLite store, relay with one
// job that stays running, ask service, this server on 127.0.0.1). It
// returns n samples of each:
//
//   - wake: a GET /asks/{id}/answer?wait= is parked; the time from just
//     before POST /answers to that GET returning the answer (target:
//     answer → executor wake p50 < 2 ms on loopback);
//   - roundTrip: POST /asks, POST /answers, then GET the answer.
func AskWake(ctx context.Context, n int) (wake, roundTrip []time.Duration, err error) {
	if n < 1 {
		return nil, nil, errors.New("bench wake: n must be at least 1")
	}
	b, err := newBenchStack(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, b.close()) }()

	wake = make([]time.Duration, 0, n)
	for range n {
		d, err := b.wakeOnce(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("bench wake: %w", err)
		}
		wake = append(wake, d)
	}
	roundTrip = make([]time.Duration, 0, n)
	for range n {
		d, err := b.roundTripOnce(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("bench round trip: %w", err)
		}
		roundTrip = append(roundTrip, d)
	}
	return wake, roundTrip, nil
}

// AskStack is the in-process stack AskWake measures, for Go benchmarks
// that time only the measured part of each iteration: an in-memory SQLite
// store, a relay running one job that stays RUNNING, the ask service and
// the Ask/Answer HTTP API on 127.0.0.1.
type AskStack struct {
	b *benchStack
}

// NewAskStack starts an AskStack; Close stops it.
func NewAskStack(ctx context.Context) (*AskStack, error) {
	b, err := newBenchStack(ctx)
	if err != nil {
		return nil, err
	}
	return &AskStack{b: b}, nil
}

// Close stops the stack.
func (s *AskStack) Close() error { return s.b.close() }

// ParkedAsk is an ask of the stack's job whose answer a long poll
// (GET /asks/{id}/answer?wait=) is waiting for.
type ParkedAsk struct {
	p *parkedAsk
}

// Park posts an ask and parks a long poll for its answer; it returns once
// the server holds the poll.
func (s *AskStack) Park(ctx context.Context) (*ParkedAsk, error) {
	p, err := s.b.park(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench park: %w", err)
	}
	return &ParkedAsk{p: p}, nil
}

// Answer posts the ask's answer and returns the time from just before
// POST /answers to the parked poll returning it.
func (a *ParkedAsk) Answer(ctx context.Context) (time.Duration, error) {
	d, err := a.p.answer(ctx, a.p.b)
	if err != nil {
		return 0, fmt.Errorf("bench answer: %w", err)
	}
	return d, nil
}

// RoundTrip asks (POST /asks), answers (POST /answers) and reads the
// answer (GET), and returns the time the three requests took.
func (s *AskStack) RoundTrip(ctx context.Context) (time.Duration, error) {
	d, err := s.b.roundTripOnce(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench round trip: %w", err)
	}
	return d, nil
}

// benchStack is the in-process relay AskWake measures.
type benchStack struct {
	base     string
	client   *http.Client
	operator string
	jobToken string
	job      *relaytype.Job
	envelope json.RawMessage
	hash     string
	parked   chan struct{}
	close    func() error
}

// holdHandler admits every job and runs it until its context ends, so a
// job stays RUNNING and can ask.
type holdHandler struct{}

func (holdHandler) Admit(context.Context, *relaytype.JobSpec) (string, string, error) {
	return "bench", "0123456789abcdef0123456789abcdef01234567", nil
}

func (holdHandler) Handle(ctx context.Context, _ *relaytype.Job) relay.Outcome {
	<-ctx.Done()
	return relay.Outcome{}
}

func newBenchStack(ctx context.Context) (*benchStack, error) {
	st, err := sqlite.Open(ctx, sqlite.Config{})
	if err != nil {
		return nil, fmt.Errorf("bench: open store: %w", err)
	}
	tokens, err := ask.NewTokens("tro_" + rand.Text())
	if err != nil {
		st.Close()
		return nil, err
	}
	return newBenchStackOn(ctx, st, tokens, true)
}

// newBenchStackOn builds the stack on st, which it closes with the stack.
// With withJob, its relay runs one job that stays running (its asks are
// the benchmark's); without, its relay claims nothing.
func newBenchStackOn(ctx context.Context, st store.Store, tokens *ask.Tokens, withJob bool) (_ *benchStack, err error) {
	quiet := slog.New(slog.DiscardHandler)
	closers := []func() error{st.Close}
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, closeAll())
		}
	}()

	var svc *ask.Service
	rcfg := relay.Config{Store: st, Handler: holdHandler{}, Logger: quiet, OnRemote: func(n store.Notification) {
		if n.Kind == store.NotifyAsk && svc != nil {
			svc.Wake(n.AskID)
		}
	}}
	if !withJob {
		rcfg.Projects = func() []string { return []string{} }
	}
	rl, err := relay.New(rcfg)
	if err != nil {
		return nil, err
	}
	svc, err = ask.New(ask.Config{Store: st, Logger: quiet, OnChange: func(j *relaytype.Job) { rl.Notify(j, true) }})
	if err != nil {
		return nil, err
	}
	if err := rl.Start(ctx); err != nil {
		return nil, err
	}
	closers = append(closers, func() error { rl.Stop(); return nil })
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	closers = append(closers, func() error { svc.Stop(); return nil })
	parked := make(chan struct{}, 1)
	srv, err := httpapi.New(httpapi.Config{Asks: svc, Jobs: rl, Tokens: tokens, Logger: quiet, OnWait: func(string) {
		select {
		case parked <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: listen: %w", err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: time.Minute}
	closers = append(closers, func() error {
		client.CloseIdleConnections()
		stop()
		return <-served
	})

	b := &benchStack{base: "http://" + ln.Addr().String(), client: client, operator: tokens.Operator(), parked: parked, close: closeAll}
	if !withJob {
		return b, nil
	}
	changes, unsubscribe := rl.Subscribe()
	defer unsubscribe()
	job, _, err := rl.Submit(ctx, &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: os.TempDir()},
		Task:           relaytype.Task{Title: "bench", Description: "answer wake-up benchmark"},
		IdempotencyKey: "bench-" + rand.Text(),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: submit: %w", err)
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for running := false; !running; {
		select {
		case c, ok := <-changes:
			if !ok {
				return nil, errors.New("bench: the relay stopped before the job started")
			}
			running = c.JobID == job.ID && c.State == relaytype.StateRunning
		case <-timeout.C:
			return nil, errors.New("bench: job did not start within 10s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	env := relaytype.NewEnvelope("github.com/u/r", "0123456789abcdef0123456789abcdef01234567", "prod", "2.0", "clarifier",
		map[string]any{"branch": "main"}, nil)
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	hash, err := env.Hash()
	if err != nil {
		return nil, err
	}
	b.jobToken, b.job, b.envelope, b.hash = tokens.Mint(job.ID), job, raw, hash
	return b, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// do sends one request and checks its status; out, when set, receives the
// JSON body.
func (b *benchStack) do(ctx context.Context, method, path, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (b *benchStack) newAsk() *relaytype.Ask {
	return &relaytype.Ask{
		Type: "Ask", AskID: newUUID(), JobID: b.job.ID, StepID: "bench", AskType: relaytype.AskClarification,
		Prompt: "Which branch?", ContextHash: b.hash, ContextEnvelope: b.envelope,
	}
}

func (b *benchStack) answer(askID string) *relaytype.Answer {
	return &relaytype.Answer{Type: "Answer", AskID: askID, JobID: b.job.ID, StepID: "bench",
		Status: relaytype.StatusAnswered, AnswerText: "main"}
}

// wakeOnce parks a long poll and measures the answer's way to it.
func (b *benchStack) wakeOnce(ctx context.Context) (time.Duration, error) {
	return b.wakeVia(ctx, b)
}

// wakeVia parks a long poll on b and posts the answer to via (another
// relay sharing b's store, or b itself).
func (b *benchStack) wakeVia(ctx context.Context, via *benchStack) (time.Duration, error) {
	p, err := b.park(ctx)
	if err != nil {
		return 0, err
	}
	return p.answer(ctx, via)
}

// parkedAsk is an ask whose answer a long poll is waiting for.
type parkedAsk struct {
	b   *benchStack
	ask *relaytype.Ask
	got chan parkResult
}

type parkResult struct {
	at  time.Time
	err error
}

// park posts an ask and parks a GET of its answer: what is set up before
// an answer's wake-up is timed.
func (b *benchStack) park(ctx context.Context) (*parkedAsk, error) {
	a := b.newAsk()
	if err := b.do(ctx, http.MethodPost, "/asks", b.jobToken, a, http.StatusAccepted, nil); err != nil {
		return nil, err
	}
	got := make(chan parkResult, 1)
	go func() {
		var rec relaytype.AnswerRecord
		err := b.do(ctx, http.MethodGet, "/asks/"+a.AskID+"/answer?wait=25s", b.jobToken, nil, http.StatusOK, &rec)
		got <- parkResult{time.Now(), err}
	}()
	select {
	case <-b.parked:
	case r := <-got:
		return nil, fmt.Errorf("long poll returned before the answer: %v", r.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &parkedAsk{b: b, ask: a, got: got}, nil
}

// answer posts the answer through via and returns the time from just
// before the POST to the parked GET returning.
func (p *parkedAsk) answer(ctx context.Context, via *benchStack) (time.Duration, error) {
	start := time.Now()
	if err := via.do(ctx, http.MethodPost, "/answers", via.operator, p.b.answer(p.ask.AskID), http.StatusAccepted, nil); err != nil {
		return 0, err
	}
	r := <-p.got
	if r.err != nil {
		return 0, r.err
	}
	return r.at.Sub(start), nil
}

// roundTripOnce asks, answers and reads the answer.
func (b *benchStack) roundTripOnce(ctx context.Context) (time.Duration, error) {
	a := b.newAsk()
	start := time.Now()
	if err := b.do(ctx, http.MethodPost, "/asks", b.jobToken, a, http.StatusAccepted, nil); err != nil {
		return 0, err
	}
	if err := b.do(ctx, http.MethodPost, "/answers", b.operator, b.answer(a.AskID), http.StatusAccepted, nil); err != nil {
		return 0, err
	}
	var rec relaytype.AnswerRecord
	if err := b.do(ctx, http.MethodGet, "/asks/"+a.AskID+"/answer", b.jobToken, nil, http.StatusOK, &rec); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
