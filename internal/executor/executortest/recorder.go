package executortest

import (
	"fmt"
	"sync"
)

// Recorder is what every fake model server keeps: the turns scripted for
// the agent's main loop, the requests received and the problems met. It is
// safe for concurrent use; the fake servers embed it.
type Recorder[Turn, Request any] struct {
	mu       sync.Mutex
	turns    []Turn
	requests []Request
	problems []string
}

// Script queues turns for the main loop's next requests.
func (s *Recorder[Turn, Request]) Script(turns ...Turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turns = append(s.turns, turns...)
}

// Pending returns the number of scripted turns not yet taken.
func (s *Recorder[Turn, Request]) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.turns)
}

// Next takes the next scripted turn, if any.
func (s *Recorder[Turn, Request]) Next() (Turn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t Turn
	if len(s.turns) == 0 {
		return t, false
	}
	t, s.turns = s.turns[0], s.turns[1:]
	return t, true
}

// Record appends a received request and returns its index.
func (s *Recorder[Turn, Request]) Record(r Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	return len(s.requests) - 1
}

// Update changes the recorded request i (its usage, once the response is
// known).
func (s *Recorder[Turn, Request]) Update(i int, fn func(*Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.requests[i])
}

// Requests returns the requests received so far.
func (s *Recorder[Turn, Request]) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Problem records something that went wrong on the server's side.
func (s *Recorder[Turn, Request]) Problem(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, a...))
}

// Problems returns what went wrong on the server's side.
func (s *Recorder[Turn, Request]) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}
