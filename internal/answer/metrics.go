package answer

import (
	"sync/atomic"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/llm"
)

// Metrics counts what the Answer Runner does; the metrics endpoint
// exports them. The zero value is ready to use.
type Metrics struct {
	CacheHits       atomic.Int64
	CacheMisses     atomic.Int64
	ProviderCalls   atomic.Int64
	ProviderErrors  atomic.Int64
	SchemaRetries   atomic.Int64
	InputTokens     atomic.Int64
	OutputTokens    atomic.Int64
	providerLatency atomic.Int64 // nanoseconds, summed
}

// ObserveCall records one provider call.
func (m *Metrics) ObserveCall(d time.Duration, u llm.Usage, err error) {
	m.ProviderCalls.Add(1)
	m.providerLatency.Add(int64(d))
	if err != nil {
		m.ProviderErrors.Add(1)
		return
	}
	m.InputTokens.Add(int64(u.InputTokens))
	m.OutputTokens.Add(int64(u.OutputTokens))
}

// ProviderLatency returns the summed latency of all provider calls.
func (m *Metrics) ProviderLatency() time.Duration { return time.Duration(m.providerLatency.Load()) }
