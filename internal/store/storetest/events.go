package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// exerciseEvents checks EventAppend and EventList: per-job logs, rising
// IDs, AfterID, Limit and payload round-trips.
func exerciseEvents(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)
	b.insert(t, jobOpts{ID: "job_ev_a"})
	b.insert(t, jobOpts{ID: "job_ev_b"})

	// Interleave appends to both jobs.
	appended := map[string][]*relaytype.Event{}
	for i := range 6 {
		id := []string{"job_ev_a", "job_ev_b"}[i%2]
		payload := json.RawMessage(fmt.Sprintf(`{"line":"step %d","n":%d,"nested":{"ok":true}}`, i, i))
		at := b.at(time.Duration(i+1) * time.Second)
		ev, err := b.store.EventAppend(b.ctx, &store.EventAppendParams{JobID: id, Type: relaytype.EventLog, Payload: payload, Now: at})
		require.NoError(t, err)
		require.Positive(t, ev.ID)
		require.Equal(t, id, ev.JobID)
		require.Equal(t, relaytype.EventLog, ev.Type)
		requireTime(t, at, &ev.Time, "event time")
		require.JSONEq(t, string(payload), string(ev.Payload))
		appended[id] = append(appended[id], ev)
	}

	for _, id := range []string{"job_ev_a", "job_ev_b"} {
		all := b.events(t, id)
		require.Len(t, all, 4, "submitted + 3 log events")
		require.Equal(t, relaytype.EventSubmitted, all[0].Type)
		for i, ev := range all {
			require.Equal(t, id, ev.JobID, "EventList returns only the job's events")
			if i > 0 {
				require.Greater(t, ev.ID, all[i-1].ID, "IDs rise")
			}
		}
		for i, want := range appended[id] {
			got := all[i+1]
			require.Equal(t, want.ID, got.ID)
			require.Equal(t, want.Type, got.Type)
			requireTime(t, want.Time, &got.Time, "event time")
			require.JSONEq(t, string(want.Payload), string(got.Payload))
		}

		tests := []struct {
			name    string
			afterID int64
			limit   int
			want    []*relaytype.Event
		}{
			{"AfterFirst", all[0].ID, 0, all[1:]},
			{"AfterSecond", all[1].ID, 0, all[2:]},
			{"AfterLast", all[3].ID, 0, nil},
			{"Limit", 0, 2, all[:2]},
			{"AfterAndLimit", all[0].ID, 2, all[1:3]},
			{"LimitAboveCount", all[2].ID, 10, all[3:]},
		}
		for _, tt := range tests {
			t.Run(id+"/"+tt.name, func(t *testing.T) {
				got, err := b.store.EventList(b.ctx, &store.EventListParams{JobID: id, AfterID: tt.afterID, Limit: tt.limit})
				require.NoError(t, err)
				require.Equal(t, eventIDs(tt.want), eventIDs(got))
			})
		}
	}

	// A transition's event comes after the log events appended before it.
	b.transition(t, &store.JobTransitionParams{ID: "job_ev_a", To: relaytype.StateCanceled, Now: b.at(time.Minute)})
	all := b.events(t, "job_ev_a")
	require.Len(t, all, 5)
	require.Equal(t, relaytype.EventTransition, all[4].Type)
	require.True(t, slices.IsSortedFunc(all, func(x, y *relaytype.Event) int { return int(x.ID - y.ID) }))

	none, err := b.store.EventList(b.ctx, &store.EventListParams{JobID: "job_ev_missing"})
	if err == nil {
		require.Empty(t, none, "a job that does not exist has no events")
	} else {
		requireErrorIs(t, err, relaytype.ErrJobNotFound)
	}
}

// eventIDs returns the IDs of evs.
func eventIDs(evs []*relaytype.Event) []int64 {
	out := []int64{}
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// testArtifact returns artifact metadata for job id with a digest derived
// from tag.
func testArtifact(id string, kind relaytype.ArtifactKind, tag string, at time.Time) *relaytype.Artifact {
	return &relaytype.Artifact{
		JobID:     id,
		Kind:      kind,
		URI:       relaytype.ArtifactURI(id, kind),
		Digest:    "sha256:" + tag,
		Size:      int64(len(tag)) * 100,
		CreatedAt: at,
	}
}

// exerciseArtifacts checks that artifacts passed with transitions are
// stored, replaced per kind, listed by kind, and that missing ones are
// reported with ErrArtifactNotFound.
func exerciseArtifacts(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("StoredWithTransitions", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_art"
		b.reach(t, id, relaytype.StateRunning)

		steps := []struct {
			to        relaytype.JobState
			artifacts []*relaytype.Artifact
		}{
			{relaytype.StateWaitingOnAnswer, []*relaytype.Artifact{testArtifact(id, relaytype.ArtifactLogs, "logs-1", b.at(2*time.Minute))}},
			{relaytype.StateRunning, []*relaytype.Artifact{
				testArtifact(id, relaytype.ArtifactLogs, "logs-2", b.at(3*time.Minute)),
				testArtifact(id, relaytype.ArtifactOut, "out-1", b.at(3*time.Minute)),
			}},
			{relaytype.StateSucceeded, []*relaytype.Artifact{
				testArtifact(id, relaytype.ArtifactPatch, "patch-1", b.at(4*time.Minute)),
				testArtifact(id, relaytype.ArtifactLogs, "logs-3", b.at(4*time.Minute)),
			}},
		}
		for i, step := range steps {
			b.transition(t, &store.JobTransitionParams{ID: id, To: step.to, Owner: reachOwner, LeaseTTL: testLeaseTTL, Now: b.at(time.Duration(i+2) * time.Minute), Artifacts: step.artifacts})
		}

		want := []*relaytype.Artifact{
			testArtifact(id, relaytype.ArtifactLogs, "logs-3", b.at(4*time.Minute)),
			testArtifact(id, relaytype.ArtifactOut, "out-1", b.at(3*time.Minute)),
			testArtifact(id, relaytype.ArtifactPatch, "patch-1", b.at(4*time.Minute)),
		}
		got, err := b.store.ArtifactList(b.ctx, &store.ArtifactListParams{JobID: id})
		require.NoError(t, err)
		require.Len(t, got, len(want), "one artifact per kind, replaced not duplicated")
		for i := range want {
			requireArtifact(t, want[i], got[i])
		}
		for _, w := range want {
			a, err := b.store.ArtifactGet(b.ctx, &store.ArtifactGetParams{JobID: id, Kind: w.Kind})
			require.NoError(t, err)
			requireArtifact(t, w, a)
		}

		// A failed transition stores none of its artifacts.
		_, err = b.store.JobTransition(b.ctx, &store.JobTransitionParams{
			ID: id, To: relaytype.StateRunning, Now: b.at(5 * time.Minute),
			Artifacts: []*relaytype.Artifact{testArtifact(id, relaytype.ArtifactPR, "pr-1", b.at(5*time.Minute))},
		})
		requireErrorIs(t, err, relaytype.ErrIllegalTransition)
		_, err = b.store.ArtifactGet(b.ctx, &store.ArtifactGetParams{JobID: id, Kind: relaytype.ArtifactPR})
		requireErrorIs(t, err, relaytype.ErrArtifactNotFound)
	})

	t.Run("WrongOwnerStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_art", relaytype.StateRunning)
		_, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{
			ID: "job_art", To: relaytype.StateSucceeded, Owner: "intruder", Now: b.at(2 * time.Minute),
			Artifacts: []*relaytype.Artifact{testArtifact("job_art", relaytype.ArtifactPatch, "patch-1", b.at(2*time.Minute))},
		})
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		got, err := b.store.ArtifactList(b.ctx, &store.ArtifactListParams{JobID: "job_art"})
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_art"})
		got, err := b.store.ArtifactList(b.ctx, &store.ArtifactListParams{JobID: "job_art"})
		require.NoError(t, err)
		require.Empty(t, got)
		for _, kind := range relaytype.ArtifactKinds {
			_, err := b.store.ArtifactGet(b.ctx, &store.ArtifactGetParams{JobID: "job_art", Kind: kind})
			requireErrorIs(t, err, relaytype.ErrArtifactNotFound)
			require.Equal(t, relaytype.CodeArtifactNotFound, relaytype.CodeOf(err))
		}
		_, err = b.store.ArtifactGet(b.ctx, &store.ArtifactGetParams{JobID: "job_missing", Kind: relaytype.ArtifactPatch})
		requireErrorIs(t, err, relaytype.ErrArtifactNotFound, relaytype.ErrJobNotFound)
	})
}

// requireArtifact compares artifact metadata.
func requireArtifact(t testingT, want, got *relaytype.Artifact) {
	t.Helper()
	require.Equal(t, want.JobID, got.JobID)
	require.Equal(t, want.Kind, got.Kind)
	require.Equal(t, want.URI, got.URI)
	require.Equal(t, want.Digest, got.Digest, "digest of %s", want.Kind)
	require.Equal(t, want.Size, got.Size)
	requireTime(t, want.CreatedAt, &got.CreatedAt, "CreatedAt of ", want.Kind)
}
