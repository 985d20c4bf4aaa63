package codex

import (
	"testing"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
)

func TestMain(m *testing.M) { executortest.Main(m) }
