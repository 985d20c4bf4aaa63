//go:build unix

package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// startSignal is a FIFO that executor processes write their job id to as
// their first action; the time a line arrives is taken in the bench
// process, so it covers the exec of the shim and of the executor.
type startSignal struct {
	path string
	f    *os.File
	done chan struct{}
}

// newStartSignal makes a FIFO in dir and reads it until close, calling
// arrived with each job id the moment its line is read.
func newStartSignal(dir string, arrived func(jobID string, at time.Time)) (*startSignal, error) {
	path := filepath.Join(dir, "executor-started.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("bench: make FIFO: %w", err)
	}
	// Opened for reading and writing: the open does not wait for a
	// writer, and the reader never sees end of file between executors.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("bench: open FIFO: %w", err)
	}
	s := &startSignal{path: path, f: f, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id := strings.TrimSpace(sc.Text())
			if id == stopLine {
				return
			}
			arrived(id, time.Now())
		}
	}()
	return s, nil
}

// command returns the shell command line of an executor that signals its
// start, then runs script.
func (s *startSignal) command(script string) string {
	return `printf '%s\n' "$TASK_RELAY_JOB_ID" > '` + s.path + `'; ` + script
}

// stopLine ends the reading: no job id looks like it.
const stopLine = "-"

// close stops reading the FIFO (through its own write end: closing a FIFO
// under a blocked read does not wake it everywhere) and removes it.
func (s *startSignal) close() error {
	_, err := s.f.WriteString(stopLine + "\n")
	if err == nil {
		<-s.done
	}
	return errors.Join(err, s.f.Close(), os.Remove(s.path))
}
