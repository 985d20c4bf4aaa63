package codex

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCodexSessionID checks the id check against the form it stands for,
// ^[0-9A-Za-z][0-9A-Za-z-]{0,127}$.
func TestCodexSessionID(t *testing.T) {
	t.Parallel()
	form := regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z-]{0,127}$`)
	for _, id := range []string{
		"", "-", "a", "Z", "0", "019a1b2c-3d4e-7f60-8a9b-0c1d2e3f4a5b", "-abc", "abc-", "a b", "a/b", "../x",
		"a*", "é", "a\n", strings.Repeat("a", 128), strings.Repeat("a", 129), "A" + strings.Repeat("-", 127),
	} {
		require.Equal(t, form.MatchString(id), codexSessionID(id), "%q", id)
	}
}
