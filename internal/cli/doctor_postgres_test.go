package cli

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// storage.mode postgres: the doctor connects (and migrates) as serve
// would; a server it cannot reach fails the storage row, without
// printing the URL's password.
func TestDoctorPostgresUnreachable(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.env[config.EnvPostgresURL] = "postgres://relay:do-not-print-me@127.0.0.1:1/relay?sslmode=disable&connect_timeout=2"
	run := s.run(t, "--storage", "postgres")
	require.NotEqual(t, 0, run.code, run.out)
	st := run.row(t, "storage")
	require.Equal(t, "FAIL", st.status, run.out)
	require.Contains(t, st.detail, "postgres")
	require.Contains(t, st.fix(), "storage.postgresUrl")
	require.NotContains(t, run.out, "do-not-print-me")
}
