package app

import (
	"crypto/sha256"
	"net/http"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/dashboard"
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

// newDashboard builds the web dashboard: sessions made from one-time
// codes that the operator token asks for (`open`), and notification
// action links signed with a key derived from the operator token, so
// that they outlive a restart.
func (s *Service) newDashboard(operator string) (*dashboard.Dashboard, error) {
	key := sha256.Sum256([]byte("mcp-task-relay dashboard actions\x00" + operator))
	return dashboard.New(dashboard.Config{
		Jobs: s.relay,
		Asks: s.asks,
		Operator: func(tok string) bool {
			_, op, err := s.tokens.Check(tok)
			return err == nil && op
		},
		AuthNone:  s.cfg.AskAnswer.Auth == config.AuthNone,
		ActionKey: key[:],
		Logger:    s.log.With("component", "dashboard"),
	})
}

// handlers are the routes the HTTP API serves besides its own: the
// dashboard and /metrics.
func (s *Service) handlers() map[string]http.Handler {
	h := s.dashboard.Handlers()
	h["GET /metrics"] = s.metrics.Handler()
	return h
}
