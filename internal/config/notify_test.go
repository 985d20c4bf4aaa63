package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadNotify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.write(t, "notify:\n  webhookSecretFile: secrets/hook\n  prCommand: [hub, pull-request, -h, \"{branch}\"]\n  prAuthor: \"Bot <bot@example.com>\"\n")
	c, err := b.load(Overrides{})
	require.NoError(t, err)
	n := c.Notify
	require.Equal(t, filepath.Join(b.configDir, "secrets", "hook"), n.WebhookSecretFile, "relative to the config dir")
	require.True(t, n.HasWebhookSecret())
	require.Equal(t, []string{"hub", "pull-request", "-h", "{branch}"}, n.PRCommand)
	require.Equal(t, DefaultWebhookMaxAgeSec, n.WebhookMaxAgeSec)
	require.Equal(t, DefaultPRTimeoutSec, n.PRTimeoutSec)

	// Defaults.
	b = setup(t)
	c, err = b.load(Overrides{})
	require.NoError(t, err)
	require.False(t, c.Notify.HasWebhookSecret())
	require.Equal(t, DefaultPRCommand, c.Notify.PRCommand)
	require.Equal(t, DefaultPRAuthor, c.Notify.PRAuthor)

	// The delivery settings belong to the service.
	require.True(t, IsServiceKey("notify.webhookMaxAgeSec"))
	require.False(t, IsServiceKey("notify.webhookSecretEnv"))
}

func TestLoadNotifyErrors(t *testing.T) {
	t.Parallel()
	for doc, field := range map[string]string{
		"notify:\n  webhookSecretEnv: \"NOT A NAME\"\n":                "notify.webhookSecretEnv",
		"notify:\n  webhookSecretEnv: A\n  webhookSecretFile: f\n":     "notify.webhookSecretFile",
		"notify:\n  webhookRetryMinSec: 10\n  webhookRetryMaxSec: 5\n": "notify.webhookRetryMaxSec",
		"notify:\n  prAuthor: nobody\n":                                "notify.prAuthor",
		"notify:\n  prCommand: [\"\"]\n":                               "notify.prCommand",
		"notify:\n  prPassEnv: [\"A-B\"]\n":                            "notify.prPassEnv[0]",
		"notify:\n  webhookSecret: inline\n":                           "notify.webhookSecret",
	} {
		b := setup(t)
		b.write(t, doc)
		_, err := b.load(Overrides{})
		require.Error(t, err, doc)
		require.Contains(t, err.Error(), field, doc)
	}
}
