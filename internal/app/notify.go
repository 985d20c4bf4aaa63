package app

import (
	"context"
	"fmt"
	"net/mail"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/dashboard"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/notify"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// newNotifier builds the outbox delivery worker of the service: service
// settings for timeouts and retries, each project's secret for signing.
// only, when set, limits it to that project's messages (standalone).
func (s *Service) newNotifier(only string) (*notify.Worker, error) {
	n := s.cfg.Notify
	cfg := notify.Config{
		Store:    s.store,
		Secret:   s.webhookSecret,
		Timeout:  n.WebhookTimeout(),
		MaxAge:   n.WebhookMaxAge(),
		RetryMin: n.WebhookRetryMin(),
		RetryMax: n.WebhookRetryMax(),
		Logger:   s.log.With("component", "notify"),
	}
	if s.cluster != nil {
		// Deliver for the projects this relay has the config (and so the
		// webhook secret) of; other relays deliver the rest.
		cfg.Projects = s.cluster.projects
	}
	if only != "" {
		projects := []string{only}
		cfg.Projects = func() []string { return projects }
	}
	return notify.New(cfg)
}

// webhookSecret returns the signing key of a project's webhooks, from its
// current config.
func (s *Service) webhookSecret(ctx context.Context, project string) ([]byte, error) {
	p, err := s.projects.open(ctx, project, nil)
	if err != nil {
		return nil, err
	}
	return p.webhookSecret()
}

// webhookSecret resolves the project's notify.webhookSecretEnv or
// notify.webhookSecretFile.
func (p *Project) webhookSecret() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		if p.loadErr != nil {
			return nil, fmt.Errorf("%w: the config of project %s does not load: %w", notify.ErrNoSecret, p.Dir, p.loadErr)
		}
		return nil, fmt.Errorf("%w: project %s has no config", notify.ErrNoSecret, p.Dir)
	}
	return notify.ResolveSecret(p.cur.cfg.Notify, p.getenv)
}

// checkNotify refuses a spec whose notify settings the project cannot
// honour: a webhook needs a usable signing secret (unsigned webhooks
// would let anyone who learns the URL forge job results).
func (p *Project) checkNotify(spec *relaytype.JobSpec) error {
	if spec.Notify == nil || spec.Notify.Webhook == "" {
		return nil
	}
	if _, err := p.webhookSecret(); err != nil {
		return &relaytype.SpecError{Field: "notify.webhook",
			Message: fmt.Sprintf("refused: the relay signs every webhook, and project %s has no usable secret (%v)", p.Dir, err)}
	}
	return nil
}

// prConfig turns a project's notify settings into the pipeline's pull
// request settings; base is the project's environment.
func prConfig(cfg *config.Config, base []string) relay.PRConfig {
	n := cfg.Notify
	pc := relay.PRConfig{Command: n.PRCommand, Timeout: n.PRTimeout(), BaseEnv: executor.ScrubEnv(base, n.PRPassEnv)}
	if a, err := mail.ParseAddress(n.PRAuthor); err == nil {
		pc.AuthorName, pc.AuthorEmail = a.Name, a.Address
	}
	return pc
}

// newPlanner builds the planner of the chat notifications (ntfy, Slack)
// and of the ask.waiting webhooks. only, when set, limits it to that
// project (standalone).
func (s *Service) newPlanner(only string) (*notify.Planner, error) {
	cfg := notify.PlannerConfig{
		Store:   s.store,
		Jobs:    s.relay,
		Targets: s.notifyTargets,
		ActionURL: func(dash, askID, decision string, expires time.Time) string {
			return s.dashboard.ActionURL(dash, askID, dashboard.ActionDecision(decision), expires)
		},
		Wake:   s.notify.Wake,
		Logger: s.log.With("component", "notify"),
	}
	if only != "" {
		projects := []string{only}
		cfg.Projects = func() []string { return projects }
	}
	return notify.NewPlanner(cfg)
}

// notifyTargets returns a project's notification targets from its
// current config.
func (s *Service) notifyTargets(ctx context.Context, project string) (notify.Targets, error) {
	p, err := s.projects.open(ctx, project, nil)
	if err != nil {
		return notify.Targets{}, err
	}
	cfg := p.Config()
	if cfg == nil {
		return notify.Targets{}, fmt.Errorf("project %s has no usable config", project)
	}
	n := cfg.Notify
	t := notify.Targets{NtfyURL: n.NtfyURL, SlackURL: n.SlackWebhookURL, AskWaiting: n.AskWaiting(), DashboardURL: n.DashboardURL}
	if t.DashboardURL == "" {
		t.DashboardURL = s.origin
	}
	return t, nil
}
