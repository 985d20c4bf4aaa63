package relaytype_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// seedSpec is the JobSpec JSON of the seed's own tests, verbatim.
const seedSpec = `{
  "repo": {"type": "git", "url": "https://github.com/test/repo.git", "baseBranch": "main", "baselineCommit": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
  "task": {"title": "Test Task", "description": "Test description", "acceptance": ["Criterion 1"]},
  "scope": {"readPaths": ["src/"], "disallowReformatting": false},
  "outputContract": ["DIFF", "TEST_PLAN", "NOTES"],
  "execution": {"preferredModel": "gpt-4", "sandbox": "read-only", "askPolicy": "untrusted", "priority": "P1", "ttlS": 3600},
  "idempotencyKey": "test-key-123"
}`

func TestParseSeedSpec(t *testing.T) {
	t.Parallel()
	s, err := relaytype.ParseJobSpec([]byte(seedSpec))
	require.NoError(t, err)
	require.Equal(t, "git", s.Repo.Type)
	require.Equal(t, relaytype.PriorityP1, s.Execution.Priority)
	require.Equal(t, 3600, s.Execution.TTLS)
	require.Equal(t, relaytype.DefaultMaxAttempts, s.Execution.MaxAttempts)
	require.Equal(t, []string{"DIFF", "TEST_PLAN", "NOTES"}, s.OutputContract)
}

func TestParseSpecErrorsNameTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		field string
		from  string
		to    string
	}{
		{"repo.baselineCommit", `"baselineCommit": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"`, `"baselineCommit": "xyz"`},
		{"repo.type", `"type": "git"`, `"type": "svn"`},
		{"repo.url", `"url": "https://github.com/test/repo.git"`, `"url": ""`},
		{"repo.url", `"url": "https://github.com/test/repo.git"`, `"url": "--upload-pack=evil"`},
		{"repo.path", `"type": "git"`, `"type": "local"`},
		{"task.title", `"title": "Test Task"`, `"title": "` + strings.Repeat("t", 201) + `"`},
		{"task.description", `"description": "Test description"`, `"description": ""`},
		{"execution.priority", `"priority": "P1"`, `"priority": "P9"`},
		{"execution.askPolicy", `"askPolicy": "untrusted"`, `"askPolicy": "auto"`},
		{"execution.ttlS", `"ttlS": 3600`, `"ttlS": "soon"`},
		{"outputContract[1]", `"TEST_PLAN"`, `"PATCH"`},
		{"idempotencyKey", `"idempotencyKey": "test-key-123"`, `"idempotencyKey": " "`},
		{"surprise", `"idempotencyKey"`, `"surprise": 1, "idempotencyKey"`},
		{"execution.maxAttempts", `"ttlS": 3600`, `"ttlS": 3600, "maxAttempts": 99`},
	} {
		t.Run(tc.field, func(t *testing.T) {
			t.Parallel()
			raw := strings.Replace(seedSpec, tc.from, tc.to, 1)
			require.NotEqual(t, seedSpec, raw)
			_, err := relaytype.ParseJobSpec([]byte(raw))
			var se *relaytype.SpecError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.field, se.Field, err.Error())
			require.ErrorIs(t, err, relaytype.ErrInvalidSpec)
			require.Equal(t, relaytype.CodeInvalidSpec, relaytype.CodeOf(err))
		})
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	allowed := map[relaytype.JobState][]relaytype.JobState{
		relaytype.StateQueued:          {relaytype.StateRunning, relaytype.StateCanceled, relaytype.StateExpired},
		relaytype.StateRunning:         {relaytype.StateSucceeded, relaytype.StateFailed, relaytype.StateCanceled, relaytype.StateExpired, relaytype.StateStale, relaytype.StateWaitingOnAnswer},
		relaytype.StateWaitingOnAnswer: {relaytype.StateRunning, relaytype.StateFailed, relaytype.StateCanceled, relaytype.StateExpired},
		relaytype.StateStale:           {relaytype.StateQueued, relaytype.StateRunning, relaytype.StateFailed, relaytype.StateExpired},
	}
	for _, from := range relaytype.AllStates {
		require.True(t, from.Valid())
		for _, to := range relaytype.AllStates {
			want := false
			for _, a := range allowed[from] {
				want = want || a == to
			}
			require.Equal(t, want, relaytype.CanTransition(from, to), "%s → %s", from, to)
		}
		require.Equal(t, len(allowed[from]) == 0, from.Terminal(), from)
	}
	require.False(t, relaytype.JobState("DONE").Valid())
	err := fmt.Errorf("wrapped: %w", &relaytype.TransitionError{JobID: "job_x", From: relaytype.StateSucceeded, To: relaytype.StateRunning})
	require.ErrorIs(t, err, relaytype.ErrIllegalTransition)
	require.Equal(t, relaytype.CodeIllegalTransition, relaytype.CodeOf(err))
	require.Equal(t, relaytype.CodeJobNotFound, relaytype.CodeOf(fmt.Errorf("x: %w", relaytype.ErrJobNotFound)))
	require.Equal(t, relaytype.ErrorCode(""), relaytype.CodeOf(errors.New("plain")))
}

func TestIDsAndURIs(t *testing.T) {
	t.Parallel()
	require.True(t, relaytype.ValidJobID("job_01ABC"))
	for _, bad := range []string{"", "job_", "job_../x", "x_1", "job_a/b"} {
		require.False(t, relaytype.ValidJobID(bad), bad)
	}
	require.Equal(t, "mcp://jobs/job_1/artifacts/patch.diff", relaytype.ArtifactURI("job_1", relaytype.ArtifactPatch))
	require.False(t, relaytype.ArtifactKind("../x").Valid())
	require.Equal(t, 0, relaytype.PriorityP0.Rank())
	require.Equal(t, relaytype.PriorityP2, relaytype.PriorityFromRank(2))
}
