package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Several relay services on one database
//
// With a store that several relay processes share (PostgreSQL), each
// relay service is one member of a cluster: it records itself in the
// store's registry (id = host and data directory, what it can run), and
// claims only the jobs it can run: those of projects whose config
// directory exists on its host (found by looking at the queued jobs), with
// an executor those projects define, and, for a local repository, only
// when submitted on its host. Changes other relays commit reach it
// through the store's notifications.

const (
	// registryEvery is how often a relay refreshes its registry record.
	registryEvery = 30 * time.Second
	// discoverEvery is how often a relay looks at the queued jobs for
	// projects it has not opened yet, besides whenever another relay
	// queues a job: a safety net for a lost notification.
	discoverEvery = 30 * time.Second
	// kickGap is the least time between two looks at the queue that
	// other relays' submits cause.
	kickGap = time.Second
	// missingFor is how long a project directory found missing on this
	// host is not looked for again.
	missingFor = 30 * time.Second
)

// cluster is the membership of one relay service in a shared store.
type cluster struct {
	s   *Service
	reg store.Registry
	// id is host:dataDir, stable across restarts.
	id, host, dataDir string

	started time.Time
	kick    chan struct{}

	mu      sync.Mutex
	missing map[string]time.Time // project dir → when found missing
}

// newCluster returns the membership of s, or nil when its store serves
// one relay process only.
func newCluster(s *Service) *cluster {
	reg, ok := store.As[store.Registry](s.store)
	if !ok {
		return nil
	}
	if _, ok := store.As[store.Notifier](s.store); !ok {
		return nil
	}
	host, _ := os.Hostname()
	dir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		dir = s.cfg.DataDir
	}
	return &cluster{s: s, reg: reg, id: host + ":" + dir, host: host, dataDir: dir, started: time.Now(),
		kick: make(chan struct{}, 1), missing: map[string]time.Time{}}
}

// projects returns the projects this relay claims jobs of: those it has
// opened whose config loaded.
func (c *cluster) projects() []string {
	ps := c.s.projects
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]string, 0, len(ps.byDir))
	for dir, p := range ps.byDir {
		p.mu.Lock()
		ok := p.cur != nil
		p.mu.Unlock()
		if ok {
			out = append(out, dir)
		}
	}
	slices.Sort(out)
	return out
}

// executors returns the executors the projects of projects define.
func (c *cluster) executors() []string {
	ps := c.s.projects
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []string
	for _, p := range ps.byDir {
		p.mu.Lock()
		if p.cur != nil {
			for name := range p.cur.cfg.Executors.ByName {
				out = append(out, name)
			}
		}
		p.mu.Unlock()
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// record returns this relay's registry record as of now.
func (c *cluster) record() *store.RelayRecord {
	return &store.RelayRecord{
		ID: c.id, Host: c.host, DataDir: c.dataDir, Instance: c.s.relay.InstanceID(), Version: c.s.version,
		Projects: c.projects(), Executors: c.executors(), StartedAt: c.started, SeenAt: time.Now(),
	}
}

// onRemote acts on a change another relay committed (after the relay
// has): ask waiters, the webhook worker, project discovery.
func (c *cluster) onRemote(n store.Notification) {
	switch n.Kind {
	case store.NotifyAsk:
		c.s.asks.Wake(n.AskID)
	case store.NotifyOutbox:
		c.s.notify.Wake()
	case store.NotifyJob:
		if n.State == relaytype.StateQueued {
			signalKick(c.kick)
		}
	case store.NotifyResync:
		c.s.asks.WakeAll()
		c.s.notify.Wake()
		signalKick(c.kick)
	}
}

func signalKick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run keeps the registry record fresh and discovers projects until ctx
// ends.
func (c *cluster) run(ctx context.Context) {
	c.upsert(ctx)
	c.discover(ctx)
	reg := time.NewTicker(registryEvery)
	defer reg.Stop()
	disc := time.NewTicker(discoverEvery)
	defer disc.Stop()
	// Kicks come with every job another relay queues: they are handled
	// at most once per kickGap, so that a burst of submits costs one look.
	last := time.Now()
	var soon <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-reg.C:
			c.upsert(ctx)
		case <-disc.C:
			c.discover(ctx)
			last = time.Now()
		case <-c.kick:
			if soon == nil {
				soon = time.After(max(0, kickGap-time.Since(last)))
			}
		case <-soon:
			soon = nil
			c.discover(ctx)
			last = time.Now()
		}
	}
}

func (c *cluster) upsert(ctx context.Context) {
	if err := c.reg.RelayUpsert(ctx, c.record()); err != nil && ctx.Err() == nil {
		c.s.log.Warn("record this relay in the registry", "err", err)
	}
}

// discover opens the projects of queued jobs whose config directory
// exists on this host, so that their jobs become claimable here.
func (c *cluster) discover(ctx context.Context) {
	jobs, _, err := c.s.store.JobList(ctx, &store.JobListParams{State: relaytype.StateQueued, Limit: 500})
	if err != nil {
		if ctx.Err() == nil {
			c.s.log.Warn("look for projects of queued jobs", "err", err)
		}
		return
	}
	known := c.projects()
	opened := false
	for _, j := range jobs {
		dir := j.Project
		if dir == "" || slices.Contains(known, dir) || !filepath.IsAbs(dir) {
			continue
		}
		c.mu.Lock()
		at, gone := c.missing[dir]
		c.mu.Unlock()
		if gone && time.Since(at) < missingFor {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			c.mu.Lock()
			c.missing[dir] = time.Now()
			c.mu.Unlock()
			continue
		}
		if _, err := c.s.projects.open(ctx, dir, nil); err != nil {
			c.s.log.Warn("open project of a queued job", "project", dir, "err", err)
			continue
		}
		known = append(known, dir)
		opened = true
		c.s.log.Info("serving project found in the queue", "project", dir)
	}
	if opened {
		c.upsert(ctx)
		c.s.relay.Wake()
	}
}
