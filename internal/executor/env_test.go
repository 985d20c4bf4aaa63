package executor_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

func TestScrubEnv(t *testing.T) {
	t.Parallel()
	env := []string{
		"PATH=/bin", "HOME=/root", "ANTHROPIC_API_KEY=sk-ant", "OPENAI_API_KEY=sk", "GITHUB_TOKEN=gh",
		"AWS_SECRET_ACCESS_KEY=aws", "DB_PASSWORD=pw", "TASK_RELAY_API_TOKEN=op", "TOKENIZER=keep", "LANG=C",
	}
	require.Equal(t, []string{"PATH=/bin", "HOME=/root", "OPENAI_API_KEY=sk", "TOKENIZER=keep", "LANG=C"},
		executor.ScrubEnv(env, []string{"OPENAI_API_KEY"}))
	require.True(t, executor.LooksSecret("my_api_key"))
	require.False(t, executor.LooksSecret("KEYBOARD"))
}
