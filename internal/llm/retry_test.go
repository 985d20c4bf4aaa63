package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sleepRecorder is a RetryPolicy.Sleep that records the waits it was asked
// for and returns at once. OnSleep, if set, runs first (to cancel the
// caller's context, say).
type sleepRecorder struct {
	OnSleep func()

	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	if s.OnSleep != nil {
		s.OnSleep()
	}
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// retryTestPolicy waits Base/2 before the first retry: Rand is fixed at 0.5.
func retryTestPolicy(sleep *sleepRecorder) RetryPolicy {
	return RetryPolicy{Sleep: sleep.Sleep, Rand: func() float64 { return 0.5 }}
}

var retryTestRequest = &Request{System: "s", Messages: []Message{{Role: "user", Content: "hi"}}}

func TestRetryHonoursRetryAfter(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, n int, req anthropicWireRequest) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeAnthropicError(w, http.StatusTooManyRequests, "rate_limit_error", "Number of requests has exceeded your per-minute rate limit")
			return
		}
		writeAnthropicMessage(w, req.Model, 3, 4, "second time lucky")
	})
	var sleep sleepRecorder
	p := WithRetry(newTestAnthropic(t, wire.URL), retryTestPolicy(&sleep))
	require.Equal(t, "anthropic", p.Name())

	resp, err := p.Complete(t.Context(), retryTestRequest)
	require.NoError(t, err)
	require.Equal(t, "second time lucky", resp.Text)
	require.Len(t, wire.requests(), 2)
	require.Equal(t, []time.Duration{time.Second}, sleep.Waits())
}

func TestRetryServerErrors(t *testing.T) {
	t.Parallel()

	for _, status := range []int{500, 502, 503, 529} {
		t.Run(fmt.Sprint("anthropic ", status), func(t *testing.T) {
			t.Parallel()

			wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, n int, req anthropicWireRequest) {
				if n < 3 {
					writeAnthropicError(w, status, "api_error", "try again")
					return
				}
				writeAnthropicMessage(w, req.Model, 1, 1, "ok")
			})
			var sleep sleepRecorder
			p := WithRetry(newTestAnthropic(t, wire.URL), retryTestPolicy(&sleep))

			resp, err := p.Complete(t.Context(), retryTestRequest)
			require.NoError(t, err)
			require.Equal(t, "ok", resp.Text)
			require.Len(t, wire.requests(), 3)
			// Full jitter at 0.5 over ceilings of 200ms, then 400ms.
			require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, sleep.Waits())
		})
		t.Run(fmt.Sprint("openai ", status), func(t *testing.T) {
			t.Parallel()

			wire := newOpenAIWire(t, "", func(w http.ResponseWriter, _ *http.Request, n int, req openAIWireRequest) {
				if n == 1 {
					writeOpenAIError(w, status, "The server had an error while processing your request.", "server_error", nil)
					return
				}
				writeOpenAICompletion(w, req.Model, 1, 1, "ok")
			})
			openAI, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "m"})
			require.NoError(t, err)
			var sleep sleepRecorder
			p := WithRetry(openAI, retryTestPolicy(&sleep))

			resp, err := p.Complete(t.Context(), retryTestRequest)
			require.NoError(t, err)
			require.Equal(t, "ok", resp.Text)
			require.Len(t, wire.requests(), 2)
			require.Len(t, sleep.Waits(), 1)
		})
	}
}

func TestRetrySkipsClientErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		status  int
		errType string
		message string
		wantErr string
	}{
		{400, "invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\"",
			`anthropic: 400 Bad Request: messages: roles must alternate between "user" and "assistant"`},
		{401, "authentication_error", "invalid x-api-key", "anthropic: 401 Unauthorized: invalid x-api-key"},
		{404, "not_found_error", "model: claude-sonnet-9", "anthropic: 404 Not Found: model: claude-sonnet-9"},
		{413, "request_too_large", "Request exceeds the maximum allowed number of bytes.",
			"anthropic: 413 Request Entity Too Large: Request exceeds the maximum allowed number of bytes."},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()

			wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ anthropicWireRequest) {
				writeAnthropicError(w, tt.status, tt.errType, tt.message)
			})
			var sleep sleepRecorder
			p := WithRetry(newTestAnthropic(t, wire.URL), retryTestPolicy(&sleep))

			_, err := p.Complete(t.Context(), retryTestRequest)
			require.EqualError(t, err, tt.wantErr)
			require.Len(t, wire.requests(), 1)
			require.Empty(t, sleep.Waits())
		})
	}
}

func TestRetryGivesUp(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ anthropicWireRequest) {
		writeAnthropicError(w, 529, "overloaded_error", "Overloaded")
	})
	var sleep sleepRecorder
	p := WithRetry(newTestAnthropic(t, wire.URL), retryTestPolicy(&sleep))

	_, err := p.Complete(t.Context(), retryTestRequest)
	require.EqualError(t, err, "giving up after 3 attempts: anthropic: 529 Overloaded: Overloaded")
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 529, pe.StatusCode)
	require.Len(t, wire.requests(), 1+DefaultRetryMaxRetries)
	require.Len(t, sleep.Waits(), DefaultRetryMaxRetries)
}

func TestRetryMaxRetries(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		maxRetries   int
		wantAttempts int
	}{{-1, 1}, {0, 1 + DefaultRetryMaxRetries}, {1, 2}, {4, 5}} {
		t.Run(fmt.Sprint(tt.maxRetries), func(t *testing.T) {
			t.Parallel()

			var attempts atomic.Int32
			var sleep sleepRecorder
			pol := retryTestPolicy(&sleep)
			pol.MaxRetries = tt.maxRetries
			p := WithRetry(fakeProvider(func(context.Context) error {
				attempts.Add(1)
				return &ProviderError{Provider: "fake", StatusCode: 503, Retryable: true}
			}), pol)

			_, err := p.Complete(t.Context(), retryTestRequest)
			require.Error(t, err)
			require.Equal(t, tt.wantAttempts, int(attempts.Load()))
			require.Len(t, sleep.Waits(), tt.wantAttempts-1)
		})
	}
}

func TestRetryStopsWhenCallerCancels(t *testing.T) {
	t.Parallel()

	t.Run("while waiting", func(t *testing.T) {
		t.Parallel()

		wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ anthropicWireRequest) {
			writeAnthropicError(w, 503, "api_error", "unavailable")
		})
		ctx, cancel := context.WithCancel(t.Context())
		sleep := sleepRecorder{OnSleep: cancel}
		p := WithRetry(newTestAnthropic(t, wire.URL), retryTestPolicy(&sleep))

		_, err := p.Complete(ctx, retryTestRequest)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "anthropic: 503 Service Unavailable: unavailable", "the last failure is kept")
		require.Len(t, wire.requests(), 1)
	})
	t.Run("during a request", func(t *testing.T) {
		t.Parallel()

		ctx, cancel := context.WithCancel(t.Context())
		wire := newOpenAIWire(t, "", func(_ http.ResponseWriter, r *http.Request, _ int, _ openAIWireRequest) {
			cancel()
			<-r.Context().Done()
		})
		openAI, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "m"})
		require.NoError(t, err)
		var sleep sleepRecorder
		p := WithRetry(openAI, retryTestPolicy(&sleep))

		_, err = p.Complete(ctx, retryTestRequest)
		require.ErrorIs(t, err, context.Canceled)
		require.Len(t, wire.requests(), 1)
		require.Empty(t, sleep.Waits())
	})
}

func TestRetryAttemptTimeout(t *testing.T) {
	t.Parallel()

	// The first attempt hangs until the provider's per-attempt timeout cuts
	// it off; the second is answered (well within the timeout, even on a
	// busy machine).
	release := make(chan struct{})
	wire := newAnthropicWire(t, func(w http.ResponseWriter, r *http.Request, n int, req anthropicWireRequest) {
		if n == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		writeAnthropicMessage(w, req.Model, 1, 1, "awake now")
	})
	t.Cleanup(func() { close(release) })
	anthropicP, err := NewAnthropic(AnthropicConfig{APIKey: anthropicTestKey, BaseURL: wire.URL, Timeout: 250 * time.Millisecond})
	require.NoError(t, err)
	var sleep sleepRecorder
	p := WithRetry(anthropicP, retryTestPolicy(&sleep))

	resp, err := p.Complete(t.Context(), retryTestRequest)
	require.NoError(t, err)
	require.Equal(t, "awake now", resp.Text)
	require.Len(t, wire.requests(), 2)
	require.Len(t, sleep.Waits(), 1)
}

func TestRetryAttemptTimeoutError(t *testing.T) {
	t.Parallel()

	release := make(chan struct{})
	wire := newOpenAIWire(t, "", func(_ http.ResponseWriter, r *http.Request, _ int, _ openAIWireRequest) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	openAI, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "m", Timeout: 20 * time.Millisecond})
	require.NoError(t, err)

	_, err = openAI.Complete(t.Context(), retryTestRequest)
	require.EqualError(t, err, "openai: request timed out after 20ms: context deadline exceeded")
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.True(t, pe.Retryable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRetryConnectionErrors(t *testing.T) {
	t.Parallel()

	t.Run("dropped connection", func(t *testing.T) {
		t.Parallel()

		wire := newOpenAIWire(t, "", func(w http.ResponseWriter, _ *http.Request, n int, req openAIWireRequest) {
			if n == 1 {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return
			}
			writeOpenAICompletion(w, req.Model, 1, 1, "reconnected")
		})
		openAI, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "m"})
		require.NoError(t, err)
		var sleep sleepRecorder
		p := WithRetry(openAI, retryTestPolicy(&sleep))

		resp, err := p.Complete(t.Context(), retryTestRequest)
		require.NoError(t, err)
		require.Equal(t, "reconnected", resp.Text)
		require.Len(t, wire.requests(), 2)
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()

		// A port that was listening a moment ago and no longer is.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		anthropicP := newTestAnthropic(t, "http://"+addr)
		var sleep sleepRecorder
		p := WithRetry(anthropicP, retryTestPolicy(&sleep))

		_, err = p.Complete(t.Context(), retryTestRequest)
		require.ErrorContains(t, err, "giving up after 3 attempts: anthropic: ")
		var pe *ProviderError
		require.ErrorAs(t, err, &pe)
		require.True(t, pe.Retryable)
		require.Zero(t, pe.StatusCode)
	})
}

// fakeProvider is a Provider whose every attempt returns fn's error, or a
// reply if fn returns nil.
func fakeProvider(fn func(ctx context.Context) error) Provider {
	return ProviderFunc{ProviderName: "fake", Fn: func(ctx context.Context, _ *Request) (*Response, error) {
		if err := fn(ctx); err != nil {
			return nil, err
		}
		return &Response{Text: "ok"}, nil
	}}
}

func TestRetryUnclassifiedErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		err       error
		wantRetry bool
	}{
		{"attempt deadline", fmt.Errorf("sampling: %w", context.DeadlineExceeded), true},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutError{}}, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, true},
		{"unexpected EOF", fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF), true},
		{"unknown host", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}, false},
		{"plain", errors.New("client declined sampling"), false},
		{"canceled", context.Canceled, false},
		{"classified, not retryable", &ProviderError{Provider: "x", StatusCode: 503}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var attempts atomic.Int32
			var sleep sleepRecorder
			p := WithRetry(fakeProvider(func(context.Context) error {
				if attempts.Add(1) == 1 {
					return tt.err
				}
				return nil
			}), retryTestPolicy(&sleep))
			require.Equal(t, "fake", p.Name())

			_, err := p.Complete(t.Context(), retryTestRequest)
			if tt.wantRetry {
				require.NoError(t, err)
				require.Equal(t, 2, int(attempts.Load()))
			} else {
				require.ErrorIs(t, err, tt.err)
				require.Equal(t, 1, int(attempts.Load()))
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()

	var attempts atomic.Int32
	var sleep sleepRecorder
	p := WithRetry(fakeProvider(func(context.Context) error {
		if attempts.Add(1) == 1 {
			return &ProviderError{Provider: "fake", StatusCode: 429, Retryable: true, RetryAfter: time.Hour}
		}
		return nil
	}), retryTestPolicy(&sleep))

	_, err := p.Complete(t.Context(), retryTestRequest)
	require.NoError(t, err)
	require.Equal(t, []time.Duration{MaxRetryAfter}, sleep.Waits())
}

func TestRetryBackoff(t *testing.T) {
	t.Parallel()

	top := RetryPolicy{Rand: func() float64 { return 1 }}.WithDefaults()
	var got []time.Duration
	for retry := 1; retry <= 9; retry++ {
		got = append(got, top.backoff(retry))
	}
	require.Equal(t, []time.Duration{
		200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
		10 * time.Second, 10 * time.Second, 10 * time.Second,
	}, got)

	bottom := RetryPolicy{Rand: func() float64 { return 0 }}.WithDefaults()
	require.Zero(t, bottom.backoff(3), "full jitter reaches down to zero")

	custom := RetryPolicy{Base: time.Second, Max: 3 * time.Second, Rand: func() float64 { return 0.25 }}.WithDefaults()
	require.Equal(t, 250*time.Millisecond, custom.backoff(1))
	require.Equal(t, 750*time.Millisecond, custom.backoff(1000), "no overflow far past the cap")
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "1"}, time.Second},
		{"fractional seconds", map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
		{"http date", map[string]string{"Retry-After": "Sun, 01 Jun 2025 12:00:07 GMT"}, 7 * time.Second},
		{"http date passed", map[string]string{"Retry-After": "Sun, 01 Jun 2025 11:59:00 GMT"}, 0},
		{"http date far away", map[string]string{"Retry-After": "Mon, 02 Jun 2025 12:00:00 GMT"}, MaxRetryAfter},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"milliseconds win", map[string]string{"Retry-After-Ms": "1234", "Retry-After": "2"}, 1234 * time.Millisecond},
		{"bad milliseconds fall back", map[string]string{"Retry-After-Ms": "x", "Retry-After": "2"}, 2 * time.Second},
		{"capped", map[string]string{"Retry-After": "3600"}, MaxRetryAfter},
		{"absurd", map[string]string{"Retry-After": "1e300"}, MaxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			require.Equal(t, tt.want, retryAfter(h, now))
		})
	}
}

func TestRetrySleep(t *testing.T) {
	t.Parallel()

	require.NoError(t, retrySleep(t.Context(), 0))
	require.NoError(t, retrySleep(t.Context(), time.Nanosecond))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, retrySleep(ctx, time.Hour), context.Canceled)
	require.ErrorIs(t, retrySleep(ctx, 0), context.Canceled)
}

func TestProviderErrorMessage(t *testing.T) {
	t.Parallel()

	tests := []struct {
		err  *ProviderError
		want string
	}{
		{&ProviderError{Provider: "anthropic", StatusCode: 401, Message: "invalid x-api-key"}, "anthropic: 401 Unauthorized: invalid x-api-key"},
		{&ProviderError{Provider: "anthropic", StatusCode: 529}, "anthropic: 529 Overloaded"},
		{&ProviderError{Provider: "openai", StatusCode: 599, Message: "odd"}, "openai: 599: odd"},
		{&ProviderError{Provider: "openai", Err: io.ErrUnexpectedEOF}, "openai: unexpected EOF"},
		{&ProviderError{Provider: "openai", Message: "request timed out after 1s", Err: context.DeadlineExceeded}, "openai: request timed out after 1s: context deadline exceeded"},
		{&ProviderError{Provider: "openai", Message: "reply has no choices"}, "openai: reply has no choices"},
		{&ProviderError{}, "unknown error"},
	}
	for _, tt := range tests {
		require.EqualError(t, tt.err, tt.want)
	}
	require.ErrorIs(t, &ProviderError{Err: io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF)
}
