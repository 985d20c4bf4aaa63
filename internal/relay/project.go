package relay

import (
	"context"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// ProjectView is the relay as the clients of one project see it: their
// submits belong to the project, and List shows the project's jobs (ListAll
// every project's). Everything else (Get, Cancel, events, artifacts,
// follow-ups) acts on any job by id.
type ProjectView struct {
	*Relay
	project string
}

// ForProject returns the view of project (the absolute path of its config
// directory).
func (r *Relay) ForProject(project string) *ProjectView {
	return &ProjectView{Relay: r, project: project}
}

// Project returns the project of the view.
func (v *ProjectView) Project() string { return v.project }

// Submit queues spec as a job of the view's project.
func (v *ProjectView) Submit(ctx context.Context, spec *relaytype.JobSpec) (*relaytype.Job, bool, error) {
	return v.SubmitTo(ctx, v.project, spec)
}

// List returns a page of the project's jobs, newest first, and the total.
func (v *ProjectView) List(ctx context.Context, state relaytype.JobState, limit, offset int) ([]*relaytype.Job, int, error) {
	p := v.project
	return v.ListJobs(ctx, ListParams{State: state, Project: &p, Limit: limit, Offset: offset})
}

// ListAll returns a page of the jobs of every project.
func (v *ProjectView) ListAll(ctx context.Context, state relaytype.JobState, limit, offset int) ([]*relaytype.Job, int, error) {
	return v.Relay.List(ctx, state, limit, offset)
}
