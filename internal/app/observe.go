package app

import (
	"github.com/mcp-task-relay/mcp-task-relay/internal/metrics"
)

// newMetrics builds the service's Prometheus metrics: /metrics answers
// the operator token (and loopback callers), and usage is labelled with
// the kind of each project's executor.
func (s *Service) newMetrics() (*metrics.Metrics, error) {
	return metrics.New(metrics.Config{
		Store: s.store,
		Authorized: func(tok string) bool {
			_, operator, err := s.tokens.Check(tok)
			return err == nil && operator
		},
		ProviderOf: s.executorKind,
		Logger:     s.log.With("component", "metrics"),
	})
}

// executorKind returns the adapter kind (command, codex, claude, gemini)
// of a project's executor, from the project's last good config, or
// "unknown".
func (s *Service) executorKind(project, executor string) string {
	s.projects.mu.Lock()
	p := s.projects.byDir[project]
	s.projects.mu.Unlock()
	if p == nil {
		return "unknown"
	}
	cfg := p.Config()
	if cfg == nil {
		return "unknown"
	}
	e, ok := cfg.Executors.ByName[executor]
	switch {
	case !ok:
		return "unknown"
	case e.Kind == "":
		return "command"
	}
	return e.Kind
}
