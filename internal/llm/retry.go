package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults for RetryPolicy.
const (
	// DefaultRetryMaxRetries is how many attempts WithRetry makes after the
	// first one fails.
	DefaultRetryMaxRetries = 2
	// DefaultRetryBase is the backoff ceiling before the first retry; it
	// doubles for every retry after that.
	DefaultRetryBase = 200 * time.Millisecond
	// DefaultRetryMax caps the exponential backoff.
	DefaultRetryMax = 10 * time.Second
	// MaxRetryAfter caps a wait the provider asks for with Retry-After (or
	// retry-after-ms), so a misbehaving server cannot park an ask for hours.
	MaxRetryAfter = 60 * time.Second
)

// statusOverloaded is Anthropic's non-standard "overloaded" status.
const statusOverloaded = 529

// ProviderError is a failed completion, classified so that WithRetry can
// decide whether another attempt may succeed.
type ProviderError struct {
	// Provider is the Name of the provider that failed.
	Provider string
	// StatusCode is the HTTP status of the provider's reply, or 0 when no
	// reply arrived (connection error, timeout).
	StatusCode int
	// Message is the error message from the reply's body, if any.
	Message string
	// Retryable reports whether the same request may succeed if sent again:
	// rate limits, server errors, timeouts and connection errors.
	Retryable bool
	// RetryAfter is how long the provider asked us to wait before retrying
	// (Retry-After or retry-after-ms), or 0 if it did not say.
	RetryAfter time.Duration
	// Err is the underlying error: the API's error reply, or the transport's.
	Err error
}

// Error renders "provider: status: message", e.g.
// "anthropic: 401 Unauthorized: invalid x-api-key".
func (e *ProviderError) Error() string {
	var b strings.Builder
	if e.Provider != "" {
		b.WriteString(e.Provider)
		b.WriteString(": ")
	}
	switch {
	case e.StatusCode != 0:
		b.WriteString(strconv.Itoa(e.StatusCode))
		if text := providerStatusText(e.StatusCode); text != "" {
			b.WriteString(" ")
			b.WriteString(text)
		}
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	case e.Message != "":
		b.WriteString(e.Message)
		if e.Err != nil {
			b.WriteString(": ")
			b.WriteString(e.Err.Error())
		}
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ProviderError) Unwrap() error { return e.Err }

func providerStatusText(code int) string {
	if code == statusOverloaded {
		return "Overloaded"
	}
	return http.StatusText(code)
}

// RetryPolicy says how WithRetry retries. The zero value is the default
// policy.
type RetryPolicy struct {
	// MaxRetries is how many attempts to make after the first one fails. A
	// negative value disables retries. Defaults to DefaultRetryMaxRetries.
	MaxRetries int
	// Base is the backoff ceiling before the first retry; each later retry
	// doubles it. Defaults to DefaultRetryBase.
	Base time.Duration
	// Max caps the backoff ceiling. Defaults to DefaultRetryMax.
	Max time.Duration
	// Sleep waits d or until ctx is done, returning ctx's error in that case.
	// Tests replace it to record waits without waiting. Defaults to a timer
	// that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the backoff's jitter. Defaults to
	// math/rand/v2's Float64.
	Rand func() float64
}

// WithDefaults returns a copy of p with zero fields set to their defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	switch {
	case p.MaxRetries == 0:
		p.MaxRetries = DefaultRetryMaxRetries
	case p.MaxRetries < 0:
		p.MaxRetries = 0
	}
	if p.Base <= 0 {
		p.Base = DefaultRetryBase
	}
	if p.Max <= 0 {
		p.Max = DefaultRetryMax
	}
	if p.Sleep == nil {
		p.Sleep = retrySleep
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// backoff is the wait before retry number retry (1-based): full jitter
// over an exponentially growing ceiling, capped at Max.
func (p RetryPolicy) backoff(retry int) time.Duration {
	ceiling := p.Base
	for i := 1; i < retry && ceiling < p.Max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.Max)
	return time.Duration(p.Rand() * float64(ceiling))
}

// wait is how long to wait after err before retry number retry: what the
// provider asked for, if it did, or else the backoff.
func (p RetryPolicy) wait(retry int, err error) time.Duration {
	var pe *ProviderError
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return min(pe.RetryAfter, MaxRetryAfter)
	}
	return p.backoff(retry)
}

// WithRetry wraps p so that Complete retries failures another attempt may
// cure: HTTP 429, 408 and 5xx (including Anthropic's 529), timeouts of an
// attempt and connection errors. It does not retry other 4xx replies, nor
// once the caller's context is done. Between attempts it waits as long as
// the provider's Retry-After asks (up to MaxRetryAfter), or else backs off
// exponentially with full jitter.
func WithRetry(p Provider, pol RetryPolicy) Provider {
	return &retryProvider{next: p, policy: pol.WithDefaults()}
}

type retryProvider struct {
	next   Provider
	policy RetryPolicy
}

// Name implements Provider; it is the wrapped provider's name.
func (r *retryProvider) Name() string { return r.next.Name() }

// Complete implements Provider.
func (r *retryProvider) Complete(ctx context.Context, req *Request) (*Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := r.next.Complete(ctx, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil || !retryableError(err) {
			if attempt > 1 {
				return nil, fmt.Errorf("attempt %d: %w", attempt, err)
			}
			return nil, err
		}
		if attempt > r.policy.MaxRetries {
			return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		if sleepErr := r.policy.Sleep(ctx, r.policy.wait(attempt, err)); sleepErr != nil {
			return nil, fmt.Errorf("waiting to retry after %d attempts: %w (last error: %w)", attempt, sleepErr, err)
		}
	}
}

// retryableError reports whether err, returned while the caller's context
// is still live, may go away if the request is sent again.
func retryableError(err error) bool {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Retryable
	}
	// A provider that does not classify its errors (MCP sampling, a
	// ProviderFunc): only a timeout or a broken connection is worth another go.
	return transientTransportError(err)
}

// retrySleep waits d or until ctx is done.
func retrySleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryableStatus reports whether an HTTP status is worth retrying: request
// timeout, rate limit, and server-side failures (including 529 overloaded).
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout ||
		code == http.StatusTooManyRequests ||
		code >= http.StatusInternalServerError
}

// transientTransportError reports whether err, a failure to get a reply at
// all, is a timeout or a broken connection rather than a mistake in the
// request or the configuration.
func transientTransportError(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false // a misspelt host does not start existing
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true // dial, read or write failed: refused, reset, unreachable
	}
	return errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// newStatusError classifies a provider's HTTP error reply. The
// x-should-retry header, which both Anthropic and OpenAI send, overrides
// the status.
func newStatusError(provider string, code int, header http.Header, message string, err error) *ProviderError {
	retryable := retryableStatus(code)
	switch strings.ToLower(header.Get("X-Should-Retry")) {
	case "true":
		retryable = true
	case "false":
		retryable = false
	}
	return &ProviderError{
		Provider:   provider,
		StatusCode: code,
		Message:    message,
		Retryable:  retryable,
		RetryAfter: retryAfter(header, time.Now()),
		Err:        err,
	}
}

// newTransportError classifies a failure to get any reply: err is what the
// HTTP client returned, callerCtx the context the caller passed, and timeout the
// attempt's own deadline.
func newTransportError(provider string, callerCtx context.Context, timeout time.Duration, err error) *ProviderError {
	if callerCtx.Err() != nil {
		// The caller gave up; report its reason, not a retryable failure.
		return &ProviderError{Provider: provider, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &ProviderError{
			Provider:  provider,
			Message:   fmt.Sprintf("request timed out after %s", timeout),
			Retryable: true,
			Err:       err,
		}
	}
	return &ProviderError{Provider: provider, Retryable: transientTransportError(err), Err: err}
}

// retryAfter reads how long a reply asks the client to wait: retry-after-ms
// (Anthropic and OpenAI send it, in milliseconds), else Retry-After in
// seconds or as an HTTP date. It returns 0 when neither says.
func retryAfter(header http.Header, now time.Time) time.Duration {
	if header == nil {
		return 0
	}
	if v := strings.TrimSpace(header.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return clampRetryAfter(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return clampRetryAfter(secs * float64(time.Second))
	}
	if at, err := http.ParseTime(v); err == nil {
		if d := at.Sub(now); d > 0 {
			return min(d, MaxRetryAfter)
		}
	}
	return 0
}

// clampRetryAfter converts a float of nanoseconds to a Duration no longer
// than MaxRetryAfter, without overflowing on absurd values.
func clampRetryAfter(ns float64) time.Duration {
	if ns >= float64(MaxRetryAfter) {
		return MaxRetryAfter
	}
	return time.Duration(ns)
}

// errorBodySnippet shortens an error reply's body that is not the
// provider's JSON (an HTML page from a proxy, say) into a one-line message.
func errorBodySnippet(body string) string {
	const limit = 200
	body = strings.Join(strings.Fields(body), " ")
	if r := []rune(body); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return body
}
