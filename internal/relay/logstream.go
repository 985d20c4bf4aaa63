package relay

import (
	"context"
	"sync"
	"time"
	"unicode/utf8"
)

// Log streaming bounds: output is stored as "log" events in chunks at
// most every logFlushEvery, and at most logStreamMax bytes per attempt
// (logs.txt keeps the whole bounded output either way).
const (
	logFlushEvery = 250 * time.Millisecond
	logChunkMax   = 16 << 10
	logStreamMax  = 1 << 20
)

// LogSink receives chunks of a running executor's output.
type LogSink func(ctx context.Context, jobID string, chunk []byte) error

// logStream is the io.Writer handed to an executor run: writes never
// block on storage; a flusher hands batched chunks to the sink.
type logStream struct {
	sink  LogSink
	jobID string

	mu        sync.Mutex
	buf       []byte
	total     int
	truncated bool

	stop chan struct{}
	done chan struct{}
}

func newLogStream(ctx context.Context, jobID string, sink LogSink) *logStream {
	l := &logStream{sink: sink, jobID: jobID, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run(context.WithoutCancel(ctx))
	return l
}

// Write keeps p for the next flush, dropping what exceeds the per-attempt
// bound.
func (l *logStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := logStreamMax - l.total - len(l.buf)
	switch {
	case room <= 0:
		l.truncated = true
	case len(p) > room:
		l.buf = append(l.buf, p[:room]...)
		l.truncated = true
	default:
		l.buf = append(l.buf, p...)
	}
	return len(p), nil
}

// take removes the next chunk to store: whole UTF-8 characters only, unless
// final.
func (l *logStream) take(final bool) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(l.buf), logChunkMax)
	if !final {
		// Leave a character split across writes for the next chunk.
		for i := 0; i < utf8.UTFMax && n > 0 && !utf8.Valid(l.buf[:n]); i++ {
			n--
		}
		if !utf8.Valid(l.buf[:n]) {
			n = min(len(l.buf), logChunkMax)
		}
	}
	chunk := append([]byte(nil), l.buf[:n]...)
	l.buf = l.buf[n:]
	l.total += n
	return chunk
}

func (l *logStream) flush(ctx context.Context, final bool) {
	for {
		chunk := l.take(final)
		if len(chunk) == 0 {
			break
		}
		// Best effort: a lost chunk is still in logs.txt.
		_ = l.sink(ctx, l.jobID, chunk)
	}
	if final {
		l.mu.Lock()
		truncated := l.truncated
		l.mu.Unlock()
		if truncated {
			_ = l.sink(ctx, l.jobID, []byte("\n[live log truncated at 1 MiB; logs.txt has the output]\n"))
		}
	}
}

func (l *logStream) run(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.flush(ctx, true)
			return
		case <-t.C:
			l.flush(ctx, false)
		}
	}
}

// Close flushes what is left and stops the flusher.
func (l *logStream) Close() {
	close(l.stop)
	<-l.done
}
