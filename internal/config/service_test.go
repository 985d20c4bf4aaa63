package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadService(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	t.Run("DefaultsWithoutFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg, err := LoadService(dir, env(nil))
		require.NoError(t, err)
		require.Equal(t, dir, cfg.DataDir)
		require.Equal(t, filepath.Join(dir, SQLiteFileName), cfg.Storage.SQLitePath)
		require.Equal(t, DefaultAskAnswerPort, cfg.AskAnswer.Port)
		require.Equal(t, DefaultAdmitTimeoutSec, cfg.Server.AdmitTimeoutSec)
	})
	t.Run("ServiceKeysAndEnv", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ServiceFileName), []byte(
			"server:\n  maxConcurrency: 7\n  admitTimeoutSec: 5\nstorage:\n  sqlitePath: db/relay.db\naskAnswer:\n  port: 4555\nlogging:\n  level: warn\n"), 0o600))
		cfg, err := LoadService(dir, env(map[string]string{EnvLogLevel: "debug", EnvProfile: "prod"}))
		require.NoError(t, err)
		require.Equal(t, 7, cfg.Server.MaxConcurrency)
		require.Equal(t, 5, cfg.Server.AdmitTimeoutSec)
		require.Equal(t, filepath.Join(dir, "db", "relay.db"), cfg.Storage.SQLitePath, "relative to the data dir")
		require.Equal(t, 4555, cfg.AskAnswer.Port)
		require.Equal(t, "debug", cfg.Logging.Level, "the environment wins over the file")
		require.Equal(t, ProfileDev, cfg.Profile, "a project setting of the environment does not apply")
	})
	t.Run("ProjectKeysAreErrors", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ServiceFileName), []byte(
			"executors:\n  sh: {argv: [true]}\naskAnswer:\n  port: 4555\n  routing:\n    default: human\n"), 0o600))
		_, err := LoadService(dir, env(nil))
		require.Error(t, err)
		require.ErrorIs(t, err, ErrInvalid)
		require.Contains(t, err.Error(), "executors")
		require.Contains(t, err.Error(), "askAnswer.routing")
		require.Contains(t, err.Error(), "project's config.yaml")
		require.NotContains(t, err.Error(), "askAnswer.port")
	})
	t.Run("RelativeDataDir", func(t *testing.T) {
		t.Parallel()
		_, err := LoadService("relative/dir", env(nil))
		require.ErrorContains(t, err, "absolute")
	})
	t.Run("IsServiceKey", func(t *testing.T) {
		t.Parallel()
		for _, k := range []string{"storage.mode", "server.leaseTtlSec", "askAnswer.port", "logging.level"} {
			require.True(t, IsServiceKey(k), k)
		}
		for _, k := range []string{"executors.sh.argv", "askAnswer.runner.model", "askAnswer.askTimeoutSec", "profile", "workspace.setup"} {
			require.False(t, IsServiceKey(k), k)
		}
	})
}
