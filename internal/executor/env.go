package executor

import (
	"slices"
	"strings"
)

// secretSuffixes mark environment variable names that hold credentials.
var secretSuffixes = []string{"_API_KEY", "_APIKEY", "_TOKEN", "_SECRET", "_PASSWORD", "_ACCESS_KEY", "_SECRET_KEY", "_CREDENTIALS"}

// LooksSecret reports whether an environment variable name looks like it
// holds a credential (ANTHROPIC_API_KEY, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY…).
func LooksSecret(name string) bool {
	u := strings.ToUpper(name)
	for _, s := range secretSuffixes {
		if strings.HasSuffix(u, s) {
			return true
		}
	}
	return false
}

// ScrubEnv returns env ("KEY=VALUE" entries) without the variables that
// look like secrets, except those named in pass. The relay starts
// executors from it so that its own API keys reach an executor only when
// the configuration says so.
func ScrubEnv(env, pass []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if LooksSecret(name) && !slices.Contains(pass, name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}
