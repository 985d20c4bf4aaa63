package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fuzzFrameLimit is the LineTransport's MaxFrame under fuzzing, small so
// that the fuzzer reaches the frame-too-long path.
const fuzzFrameLimit = 512

// FuzzLineTransport checks that after any bytes, a newline and a valid
// request, the request is answered, every line the server wrote is JSON,
// and the session ends cleanly when the input does.
func FuzzLineTransport(f *testing.F) {
	for _, c := range malformedCases() {
		if len(c.line) <= 2*fuzzFrameLimit {
			f.Add([]byte(c.line))
		}
	}
	f.Add([]byte(strings.Repeat("x", fuzzFrameLimit+1)))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n" + `{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	// Sessions start uninitialized (which keeps each run short); these
	// initialize, at a version with batches and at one without.
	for _, v := range []string{"2025-03-26", legacyProtocol} {
		f.Add([]byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + v + `","capabilities":{},"clientInfo":{"name":"f","version":"0"}}}` + "\n" +
			`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" +
			`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"ping"},7,{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`))
	}
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: fake, Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(f, err)
	n := 0
	f.Fuzz(func(t *testing.T, b []byte) {
		n++
		// Each session subscribes to the relay once; the fake counts
		// subscriptions in a bounded channel.
		for len(fake.subscribed) > 0 {
			<-fake.subscribed
		}
		s := startLineSession(t, srv, fuzzFrameLimit, "")
		probe := fmt.Sprintf(`"probe-%d-%x"`, n, time.Now().UnixNano())
		sent := make(chan error, 1)
		go func() {
			_, err := s.in.Write(append(append([]byte{}, b...), '\n'))
			if err == nil {
				_, err = io.WriteString(s.in, `{"jsonrpc":"2.0","id":`+probe+`,"method":"ping"}`+"\n")
			}
			sent <- err
		}()
		for answered := false; !answered; {
			line := s.nextLine(t)
			require.True(t, json.Valid(line), "the server wrote a line that is not JSON: %q", line)
			var one reply
			var many []reply
			if bytes.HasPrefix(line, []byte("[")) {
				require.NoError(t, json.Unmarshal(line, &many))
			} else {
				require.NoError(t, json.Unmarshal(line, &one))
				many = []reply{one}
			}
			for _, r := range many {
				answered = answered || string(r.ID) == probe
			}
		}
		require.NoError(t, <-sent)
		require.NoError(t, s.in.Close())
		for {
			select {
			case err := <-s.done:
				require.NoError(t, err, "Run at the end of the input")
				return
			case <-s.lines:
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return at the end of the input")
			}
		}
	})
}
