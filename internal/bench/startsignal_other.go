//go:build !unix

package bench

import (
	"errors"
	"time"
)

// startSignal is unix-only: it needs a FIFO and a POSIX shell.
type startSignal struct{}

func newStartSignal(string, func(string, time.Time)) (*startSignal, error) {
	return nil, errors.New("bench: the full-pipeline run needs a unix system (FIFO, /bin/sh)")
}

func (*startSignal) command(script string) string { return script }

func (*startSignal) close() error { return nil }
