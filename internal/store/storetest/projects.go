package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// exerciseProjects checks that jobs keep their project, that lists and
// claims can be limited to projects, and that idempotency keys are scoped
// to a project.
func exerciseProjects(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)
	insert := func(id, project, key string) (*relaytype.Job, bool) {
		p := b.insertParams(jobOpts{ID: id, Key: key})
		p.Project = project
		j, created, err := b.store.JobInsert(b.ctx, p)
		require.NoError(t, err)
		return j, created
	}
	a1, created := insert("job_proj_a1", "/p/a", "same-key")
	require.True(t, created)
	require.Equal(t, "/p/a", a1.Project)
	// The same key in another project is another job.
	b1, created := insert("job_proj_b1", "/p/b", "same-key")
	require.True(t, created, "an idempotency key is scoped to its project")
	require.Equal(t, "/p/b", b1.Project)
	// The same key in the same project is the same job.
	again, created := insert("job_proj_a2", "/p/a", "same-key")
	require.False(t, created)
	require.Equal(t, a1.ID, again.ID)
	none, _ := insert("job_proj_none", "", "other-key")
	require.Empty(t, none.Project)

	got, err := b.store.JobGet(b.ctx, &store.JobGetParams{ID: b1.ID})
	require.NoError(t, err)
	require.Equal(t, "/p/b", got.Project)

	list := func(project *string) []string {
		jobs, total, err := b.store.JobList(b.ctx, &store.JobListParams{Project: project, Limit: 10})
		require.NoError(t, err)
		require.Len(t, jobs, total)
		return ids(jobs)
	}
	pa, pb, empty := "/p/a", "/p/b", ""
	require.Equal(t, []string{"job_proj_a1"}, list(&pa))
	require.Equal(t, []string{"job_proj_b1"}, list(&pb))
	require.Equal(t, []string{"job_proj_none"}, list(&empty))
	require.Len(t, list(nil), 3)

	claim := func(projects []string) []string {
		jobs, err := b.store.JobClaim(b.ctx, &store.JobClaimParams{Projects: projects, Owner: "w", Now: b.now, LeaseTTL: testLeaseTTL, Limit: 10})
		require.NoError(t, err)
		for _, j := range jobs {
			require.Contains(t, projects, j.Project)
		}
		return ids(jobs)
	}
	require.Empty(t, claim([]string{}), "an empty project list claims nothing")
	require.Empty(t, claim([]string{"/p/c"}))
	require.Equal(t, []string{"job_proj_b1"}, claim([]string{"/p/b"}))
	require.ElementsMatch(t, []string{"job_proj_a1", "job_proj_none"}, claim([]string{"/p/a", ""}))
}
