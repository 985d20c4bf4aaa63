package relaytype_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestNotifyWebhookValidation(t *testing.T) {
	t.Parallel()
	spec := func(hook string) []byte {
		return []byte(`{"repo":{"type":"local","path":"/r"},"task":{"title":"t","description":"d"},"idempotencyKey":"k","notify":{"webhook":"` + hook + `","enablePr":true}}`)
	}
	s, err := relaytype.ParseJobSpec(spec("https://hooks.example.com/relay?x=1"))
	require.NoError(t, err)
	require.True(t, s.Notify.EnablePr)
	for _, bad := range []string{"ftp://example.com/h", "example.com/h", "http://", "https://user:pw@example.com/h", "javascript:alert(1)"} {
		_, err := relaytype.ParseJobSpec(spec(bad))
		var se *relaytype.SpecError
		require.ErrorAs(t, err, &se, bad)
		require.Equal(t, "notify.webhook", se.Field, bad)
	}
}
