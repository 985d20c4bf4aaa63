package bench

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// memoryOf reads both figures of a live process, the private part being
// a part of the resident set.
func TestMemoryOf(t *testing.T) {
	t.Parallel()
	m := memoryOf(os.Getpid())
	require.Positive(t, m.RSS)
	require.Positive(t, m.Private)
	require.LessOrEqual(t, m.Private, m.RSS)
	require.Zero(t, memoryOf(-1))
}
