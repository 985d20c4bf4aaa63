package cli

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// gcPercent reads the collector's pace without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

// Start-up runs the collector at startupGCPercent and ready restores the
// pace it found, once; a GOGC the user set is left alone.
func TestStartupGC(t *testing.T) {
	before := gcPercent()
	t.Cleanup(func() { debug.SetGCPercent(before) })

	t.Setenv("GOGC", "") // set, so cleared for the first case below
	debug.SetGCPercent(70)
	ready := startupGC()
	require.Equal(t, 70, gcPercent(), "GOGC is set: the user's pace stays")
	ready()
	require.Equal(t, 70, gcPercent())

	unsetenv(t, "GOGC")
	ready = startupGC()
	require.Equal(t, startupGCPercent, gcPercent())
	ready()
	require.Equal(t, 70, gcPercent())
	debug.SetGCPercent(90)
	ready()
	require.Equal(t, 90, gcPercent(), "a second call changes nothing")
}

// unsetenv removes k from the environment for the rest of the test.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "") // restores the old value at the end
	require.NoError(t, os.Unsetenv(k))
}
