package executor

import (
	"fmt"
	"io"
	"sync"
)

// boundedBuffer keeps at most limit bytes of what is written to it: the
// first half and the most recent half, where an agent's errors and
// summary usually are.
type boundedBuffer struct {
	headCap, tailCap int
	head             []byte
	tail             []byte // grows to tailCap, then is a ring
	pos              int    // in a full ring, the index of the oldest byte
	total            int64
}

func newBoundedBuffer(limit int64) *boundedBuffer {
	headCap := int((limit + 1) / 2)
	return &boundedBuffer{headCap: headCap, tailCap: int(limit) - headCap}
}

func (b *boundedBuffer) write(p []byte) {
	b.total += int64(len(p))
	if room := b.headCap - len(b.head); room > 0 {
		n := min(room, len(p))
		b.head = append(b.head, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 || b.tailCap == 0 {
		return
	}
	if room := b.tailCap - len(b.tail); room > 0 {
		n := min(room, len(p))
		b.tail = append(b.tail, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	if len(p) >= b.tailCap {
		copy(b.tail, p[len(p)-b.tailCap:])
		b.pos = 0
		return
	}
	n := copy(b.tail[b.pos:], p)
	copy(b.tail, p[n:])
	b.pos = (b.pos + len(p)) % b.tailCap
}

// bytes returns the kept output, with a marker where bytes were dropped.
func (b *boundedBuffer) bytes() []byte {
	kept := int64(len(b.head) + len(b.tail))
	var marker string
	if omitted := b.total - kept; omitted > 0 {
		marker = fmt.Sprintf("\n[... %d bytes omitted ...]\n", omitted)
	}
	out := make([]byte, 0, int(kept)+len(marker))
	out = append(out, b.head...)
	out = append(out, marker...)
	out = append(out, b.tail[b.pos:]...)
	return append(out, b.tail[:b.pos]...)
}

// capture collects a process's stdout and stderr.
type capture struct {
	mu       sync.Mutex
	combined *boundedBuffer
	stdout   *boundedBuffer
	stderr   *boundedBuffer
	live     io.Writer // nil, or nil after a failed write
}

// stderrLimit bounds Result.Stderr, which serves failure summaries.
const stderrLimit = 64 << 10

func newCapture(limit int64, live io.Writer) *capture {
	return &capture{combined: newBoundedBuffer(limit), stdout: newBoundedBuffer(limit),
		stderr: newBoundedBuffer(min(limit, stderrLimit)), live: live}
}

func (c *capture) write(p []byte, isStdout bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.combined.write(p)
	if isStdout {
		c.stdout.write(p)
	} else {
		c.stderr.write(p)
	}
	if c.live != nil {
		if _, err := c.live.Write(p); err != nil {
			c.live = nil
		}
	}
}

// copyFrom feeds everything read from r to the capture until r ends.
func (c *capture) copyFrom(r io.Reader, isStdout bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.write(buf[:n], isStdout)
		}
		if err != nil {
			return
		}
	}
}
