package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoutingParseAndValidate(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`askAnswer:
  askTimeoutSec: 120
  routing:
    default: orchestrator
    byType: {APPROVAL: human, CLARIFICATION: runner}
    byRole: {diff_planner: runner}
`), "config.yaml")
	require.NoError(t, err)
	c = c.WithDefaults()
	c.DataDir = "/data"
	require.Equal(t, 120, c.AskAnswer.AskTimeoutSec)
	require.Equal(t, "human", c.AskAnswer.Routing.ByType["APPROVAL"])
	require.Equal(t, "runner", c.AskAnswer.Routing.ByRole["diff_planner"])

	bad, err := Parse([]byte("askAnswer:\n  routing:\n    byType: {QUESTION: human}\n    byRole: {x: robot}\n"), "config.yaml")
	require.NoError(t, err)
	err = bad.WithDefaults().Validate()
	require.ErrorContains(t, err, "askAnswer.routing.byType")
	require.ErrorContains(t, err, "QUESTION")
	require.ErrorContains(t, err, "askAnswer.routing.byRole.x")

	d := (&Config{}).WithDefaults()
	require.Equal(t, DefaultAskTimeoutSec, d.AskAnswer.AskTimeoutSec)
}
