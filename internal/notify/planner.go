package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Outbox message kinds the Planner enqueues besides store's webhooks.
const (
	// KindNtfy is a JSON publish to an ntfy-compatible server: the payload
	// names the topic; the target is the server's base URL.
	KindNtfy = "ntfy"
	// KindSlack is a JSON POST to a Slack-compatible incoming webhook.
	KindSlack = "slack"
)

// Defaults of PlannerConfig.
const (
	DefaultScanInterval = 5 * time.Second
	DefaultCatchUp      = 10 * time.Minute
)

// Targets are where a project's notifications go.
type Targets struct {
	// NtfyURL is an ntfy topic URL (https://ntfy.example/TOPIC), or "".
	NtfyURL string
	// SlackURL is a Slack-compatible incoming webhook URL, or "".
	SlackURL string
	// AskWaiting is how long an ask routed to a human or the
	// orchestrator waits before it is notified; zero: never.
	AskWaiting time.Duration
	// DashboardURL is the base URL of the dashboard that click links and
	// action buttons point at.
	DashboardURL string
}

// Jobs is what the Planner reads about jobs: *relay.Relay.
type Jobs interface {
	// Subscribe returns a channel of job changes and a function that ends
	// the subscription.
	Subscribe() (<-chan relay.Change, func())
	// Get returns one job.
	Get(ctx context.Context, id string) (*relaytype.Job, error)
}

// PlannerConfig configures a Planner.
type PlannerConfig struct {
	// Store holds the outbox and the asks. Required.
	Store store.Store
	// Jobs tells the planner about jobs that end. Required.
	Jobs Jobs
	// Targets returns a project's notification targets. Required.
	Targets func(ctx context.Context, project string) (Targets, error)
	// ActionURL returns a signed URL that approves or rejects an ask with
	// one POST ("approve" or "reject"), valid until expires; nil: no
	// action buttons. Defaults to nil.
	ActionURL func(dashboardURL, askID, decision string, expires time.Time) string
	// Wake is called after messages were enqueued (the Worker's Wake).
	// Defaults to nothing.
	Wake func()
	// Projects, when set, limits the planner to these projects.
	// Defaults to every project.
	Projects func() []string
	// ScanInterval is how often pending asks are looked at (and, sooner,
	// an ask created while Run runs, once its AskWaiting has passed).
	// Defaults to 5 s.
	ScanInterval time.Duration
	// CatchUp is how far back, at start, jobs that ended are notified if
	// they were not (a relay that stopped right after a job ended).
	// Defaults to 10 min.
	CatchUp time.Duration
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
}

// Planner turns job ends and asks that wait too long into outbox messages
// for each project's ntfy and Slack targets, and asks into "ask.waiting"
// signed webhooks of jobs with notify.webhook. Every message has an ID
// made of its job, kind, target and event, and the outbox stores an ID
// once: a message planned twice (after a restart, by two relays) is sent
// once.
type Planner struct {
	cfg PlannerConfig
}

// NewPlanner returns a Planner; call Run to run it.
func NewPlanner(cfg PlannerConfig) (*Planner, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("notify: Store is required")
	case cfg.Jobs == nil:
		return nil, errors.New("notify: Jobs is required")
	case cfg.Targets == nil:
		return nil, errors.New("notify: Targets is required")
	}
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = DefaultScanInterval
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Planner{cfg: cfg}, nil
}

// Run plans notifications until ctx ends or the relay stops: first for
// jobs that ended within CatchUp, then for each job that ends and, every
// ScanInterval, for asks that have waited long enough. An ask created
// while it runs is looked at again once its project's AskWaiting has
// passed, if that comes before the next scan.
func (p *Planner) Run(ctx context.Context) {
	changes, unsubscribe := p.cfg.Jobs.Subscribe()
	defer unsubscribe()
	p.catchUp(ctx)
	p.scanAsks(ctx)
	t := time.NewTimer(p.cfg.ScanInterval)
	defer t.Stop()
	next := time.Now().Add(p.cfg.ScanInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			if c.State.Terminal() {
				if j, err := p.cfg.Jobs.Get(ctx, c.JobID); err == nil {
					p.jobEnded(ctx, j)
				}
			}
			if c.Asks && c.State == relaytype.StateWaitingOnAnswer {
				if d := p.askWaiting(ctx, c.JobID); d > 0 && time.Now().Add(d).Before(next) {
					next = time.Now().Add(d)
					t.Reset(d)
				}
			}
		case <-t.C:
			p.scanAsks(ctx)
			next = time.Now().Add(p.cfg.ScanInterval)
			t.Reset(p.cfg.ScanInterval)
		}
	}
}

// askWaiting returns the AskWaiting of the project of job id (zero: no
// ask.waiting notifications, or not this planner's project).
func (p *Planner) askWaiting(ctx context.Context, id string) time.Duration {
	j, err := p.cfg.Jobs.Get(ctx, id)
	if err != nil || !p.serves(j.Project) {
		return 0
	}
	t, err := p.cfg.Targets(ctx, j.Project)
	if err != nil {
		return 0
	}
	return t.AskWaiting
}

func (p *Planner) serves(project string) bool {
	return p.cfg.Projects == nil || slices.Contains(p.cfg.Projects(), project)
}

// catchUp plans the jobs that ended within CatchUp.
func (p *Planner) catchUp(ctx context.Context) {
	since := p.cfg.Now().Add(-p.cfg.CatchUp)
	for _, st := range []relaytype.JobState{relaytype.StateSucceeded, relaytype.StateFailed, relaytype.StateCanceled, relaytype.StateExpired} {
		jobs, _, err := p.cfg.Store.JobList(ctx, &store.JobListParams{State: st, Limit: 500})
		if err != nil {
			p.cfg.Logger.Warn("notifications: list ended jobs", "err", err)
			return
		}
		for _, j := range jobs {
			if j.FinishedAt != nil && j.FinishedAt.After(since) {
				p.jobEnded(ctx, j)
			}
		}
	}
}

// jobEnded enqueues the notifications of a job that ended.
func (p *Planner) jobEnded(ctx context.Context, j *relaytype.Job) {
	if !j.State.Terminal() || !p.serves(j.Project) {
		return
	}
	t, err := p.cfg.Targets(ctx, j.Project)
	if err != nil {
		p.cfg.Logger.Debug("notifications: no targets", "project", j.Project, "err", err)
		return
	}
	n := jobNote(j, t.DashboardURL)
	p.enqueueChat(ctx, j, t, n, string(j.State))
}

// scanAsks enqueues the notifications of asks that waited long enough.
func (p *Planner) scanAsks(ctx context.Context) {
	asks, err := p.cfg.Store.AskList(ctx, &store.AskListParams{Status: relaytype.StatusPending, Limit: 10000})
	if err != nil {
		p.cfg.Logger.Warn("notifications: list pending asks", "err", err)
		return
	}
	now := p.cfg.Now()
	for _, a := range asks {
		if a.Route != "human" && a.Route != "orchestrator" {
			continue
		}
		j, err := p.cfg.Jobs.Get(ctx, a.JobID)
		if err != nil || !p.serves(j.Project) {
			continue
		}
		t, err := p.cfg.Targets(ctx, j.Project)
		if err != nil || t.AskWaiting <= 0 || now.Sub(a.CreatedAt) < t.AskWaiting {
			continue
		}
		n := askNote(j, a, t.DashboardURL)
		if a.AskType == relaytype.AskApproval && p.cfg.ActionURL != nil && t.DashboardURL != "" {
			n.approveURL = p.cfg.ActionURL(t.DashboardURL, a.AskID, "approve", a.DeadlineAt)
			n.rejectURL = p.cfg.ActionURL(t.DashboardURL, a.AskID, "reject", a.DeadlineAt)
		}
		event := "ask.waiting:" + a.AskID
		p.enqueueChat(ctx, j, t, n, event)
		if w := j.Spec.Notify; w != nil && w.Webhook != "" {
			body, err := json.Marshal(AskWaiting{Type: "ask.waiting", Timestamp: now, Data: AskWaitingData{
				JobID: j.ID, Project: j.Project, AskID: a.AskID, AskType: a.AskType, Route: a.Route,
				Prompt: store.MaskURLs(a.Prompt), CreatedAt: a.CreatedAt, DeadlineAt: a.DeadlineAt}})
			if err == nil {
				p.enqueue(ctx, &store.OutboxMessage{ID: store.OutboxMessageID(j.ID, store.OutboxKindWebhook, w.Webhook, event),
					JobID: j.ID, Project: j.Project, Kind: store.OutboxKindWebhook, Target: w.Webhook, Payload: body})
			}
		}
	}
}

// AskWaiting is the signed webhook payload about an ask that waits for
// a human or the orchestrator.
type AskWaiting struct {
	// Type is "ask.waiting".
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      AskWaitingData `json:"data"`
}

// AskWaitingData describes the ask.
type AskWaitingData struct {
	JobID      string            `json:"jobId"`
	Project    string            `json:"project,omitempty"`
	AskID      string            `json:"askId"`
	AskType    relaytype.AskType `json:"askType"`
	Route      string            `json:"route"`
	Prompt     string            `json:"prompt"`
	CreatedAt  time.Time         `json:"createdAt"`
	DeadlineAt time.Time         `json:"deadlineAt"`
}

// enqueueChat enqueues n to the project's ntfy and Slack targets.
func (p *Planner) enqueueChat(ctx context.Context, j *relaytype.Job, t Targets, n note, event string) {
	if t.NtfyURL != "" {
		base, body, err := n.ntfy(t.NtfyURL)
		if err != nil {
			p.cfg.Logger.Warn("notifications: ntfy target", "project", j.Project, "err", err)
		} else {
			p.enqueue(ctx, &store.OutboxMessage{ID: store.OutboxMessageID(j.ID, KindNtfy, t.NtfyURL, event),
				JobID: j.ID, Project: j.Project, Kind: KindNtfy, Target: base, Payload: body})
		}
	}
	if t.SlackURL != "" {
		if body, err := n.slack(); err == nil {
			p.enqueue(ctx, &store.OutboxMessage{ID: store.OutboxMessageID(j.ID, KindSlack, t.SlackURL, event),
				JobID: j.ID, Project: j.Project, Kind: KindSlack, Target: t.SlackURL, Payload: body})
		}
	}
}

func (p *Planner) enqueue(ctx context.Context, m *store.OutboxMessage) {
	_, created, err := p.cfg.Store.OutboxEnqueue(ctx, &store.OutboxEnqueueParams{Message: m, Now: p.cfg.Now()})
	switch {
	case err != nil:
		p.cfg.Logger.Warn("notifications: enqueue", "job_id", m.JobID, "kind", m.Kind, "err", err)
	case created:
		p.cfg.Logger.Debug("notification enqueued", "job_id", m.JobID, "kind", m.Kind, "message_id", m.ID)
		p.cfg.Wake()
	}
}

// note is one notification, before it is shaped for a target.
type note struct {
	title, message, click string
	priority              int
	tags                  []string
	approveURL, rejectURL string
}

func jobNote(j *relaytype.Job, dash string) note {
	title := store.MaskURLs(j.Spec.Task.Title)
	n := note{message: store.MaskURLs(j.Summary), priority: 3}
	switch j.State {
	case relaytype.StateSucceeded:
		n.title, n.tags = "Job succeeded: "+title, []string{"white_check_mark", "done"}
	case relaytype.StateFailed, relaytype.StateExpired:
		n.title, n.tags, n.priority = "Job "+strings.ToLower(string(j.State))+": "+title, []string{"x", "failed"}, 4
	default:
		n.title, n.tags, n.priority = "Job canceled: "+title, []string{"no_entry_sign", "canceled"}, 2
	}
	if n.message == "" {
		n.message = fmt.Sprintf("Job %s is %s.", j.ID, j.State)
	}
	if dash != "" {
		n.click = strings.TrimRight(dash, "/") + "/#/job/" + j.ID
	}
	return n
}

func askNote(j *relaytype.Job, a *relaytype.AskRecord, dash string) note {
	n := note{title: fmt.Sprintf("%s needs input: %s", store.MaskURLs(j.Spec.Task.Title), a.AskType), message: a.Prompt, priority: 4,
		tags: []string{"question", "needs-input"}}
	if a.AskType == relaytype.AskApproval {
		n.priority = 5
	}
	if dash != "" {
		n.click = strings.TrimRight(dash, "/") + "/#/inbox"
	}
	return n
}

// ntfy returns the server base URL and the JSON publish body of n for an
// ntfy topic URL.
func (n note) ntfy(topicURL string) (string, []byte, error) {
	i := strings.LastIndexByte(strings.TrimRight(topicURL, "/"), '/')
	if i < len("http://") {
		return "", nil, fmt.Errorf("ntfy URL %q names no topic", topicURL)
	}
	base, topic := topicURL[:i+1], strings.Trim(topicURL[i+1:], "/")
	type action struct {
		Action string `json:"action"`
		Label  string `json:"label"`
		URL    string `json:"url"`
		Method string `json:"method,omitempty"`
		Clear  bool   `json:"clear,omitempty"`
	}
	body := struct {
		Topic    string   `json:"topic"`
		Title    string   `json:"title"`
		Message  string   `json:"message"`
		Priority int      `json:"priority"`
		Tags     []string `json:"tags"`
		Click    string   `json:"click,omitempty"`
		Actions  []action `json:"actions,omitempty"`
	}{Topic: topic, Title: n.title, Message: n.message, Priority: n.priority, Tags: n.tags, Click: n.click}
	if n.approveURL != "" {
		body.Actions = []action{
			{Action: "http", Label: "Approve", URL: n.approveURL, Method: "POST", Clear: true},
			{Action: "http", Label: "Reject", URL: n.rejectURL, Method: "POST", Clear: true},
		}
	}
	if n.click != "" {
		body.Actions = append(body.Actions, action{Action: "view", Label: "Open", URL: n.click})
	}
	b, err := json.Marshal(body)
	return base, b, err
}

// slack returns the incoming-webhook JSON body of n.
func (n note) slack() ([]byte, error) {
	text := "*" + slackEscape(n.title) + "*\n" + slackEscape(n.message)
	blocks := []any{map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": text}}}
	if n.click != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []any{map[string]any{
			"type": "button", "text": map[string]string{"type": "plain_text", "text": "Open in dashboard"}, "url": n.click}}})
	}
	return json.Marshal(map[string]any{"text": n.title + "\n" + n.message, "blocks": blocks})
}

// slackEscape escapes the characters Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
