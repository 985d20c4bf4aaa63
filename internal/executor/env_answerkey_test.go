package executor_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// The attestation key is no secret, but one the relay inherited is
// another relay's: it never reaches a child, whatever the pass list says,
// so the relay's own key (set on top) is the only one an executor sees.
func TestScrubEnvDropsInheritedAnswerKey(t *testing.T) {
	t.Parallel()
	require.False(t, executor.LooksSecret("TASK_RELAY_ANSWER_PUBKEY"))
	env := []string{"TASK_RELAY_ANSWER_PUBKEY=b3RoZXIgcmVsYXk=", "HOME=/home/u"}
	require.Equal(t, []string{"HOME=/home/u"}, executor.ScrubEnv(env, nil))
	require.Equal(t, []string{"HOME=/home/u"}, executor.ScrubEnv(env, []string{"TASK_RELAY_ANSWER_PUBKEY"}))
}
