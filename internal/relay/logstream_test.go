package relay

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestLogStream(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		chunks [][]byte
	)
	sink := func(_ context.Context, id string, c []byte) error {
		require.Equal(t, "job_L", id)
		mu.Lock()
		chunks = append(chunks, c)
		mu.Unlock()
		return nil
	}
	// A multi-byte character split across two writes stays whole.
	euro := []byte("€")
	l := &logStream{}
	_, _ = l.Write(append([]byte("price: "), euro[:1]...))
	require.Equal(t, "price: ", string(l.take(false)))
	_, _ = l.Write(euro[1:])
	require.Equal(t, "€", string(l.take(false)))

	ls := newLogStream(context.Background(), "job_L", sink)
	_, _ = ls.Write([]byte("héllo "))
	_, _ = ls.Write([]byte(strings.Repeat("x", 40<<10)))
	ls.Close()
	all := bytes.Join(chunks, nil)
	require.True(t, utf8.Valid(all))
	require.Equal(t, "héllo "+strings.Repeat("x", 40<<10), string(all))
	for _, c := range chunks {
		require.LessOrEqual(t, len(c), logChunkMax)
	}

	// Past the per-attempt bound, output is dropped and a note says so.
	chunks = nil
	ls = newLogStream(context.Background(), "job_L", sink)
	_, _ = ls.Write(bytes.Repeat([]byte("y"), logStreamMax+100))
	ls.Close()
	all = bytes.Join(chunks, nil)
	require.Contains(t, string(all), "live log truncated")
	require.Equal(t, logStreamMax, bytes.Count(all, []byte("y")))
}
