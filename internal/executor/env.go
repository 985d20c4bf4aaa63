package executor

import (
	"slices"
	"strings"
)

// Relay tokens never reach a child through the inherited environment,
// whatever a pass list says: the operator token controls the whole relay,
// and a job token found in the relay's own environment belongs to another
// job (a relay run by an executor of another relay). The relay sets a job's
// own TASK_RELAY_TOKEN on top of the scrubbed environment.
const (
	envOperatorToken = "TASK_RELAY_API_TOKEN"
	envJobToken      = "TASK_RELAY_TOKEN"
)

// envAnswerKey is the attestation key executors verify runner answers
// with. It is no secret, but one inherited from the relay's own
// environment is another relay's: the relay sets its own on top of the
// scrubbed environment, and an inherited one is always dropped.
const envAnswerKey = "TASK_RELAY_ANSWER_PUBKEY"

// secretWords are words (the parts of a name between underscores) that
// mark a variable holding a credential wherever they appear in its name:
// GITHUB_TOKEN, AWS_SESSION_TOKEN, VAULT_TOKEN_FILE, PGPASSWORD,
// CLIENT_SECRET, SENTRY_DSN, OPENAI_KEY, SMTP_PASS. Matching whole words
// keeps TOKENIZERS_PARALLELISM and KEYBOARD_LAYOUT.
var secretWords = []string{
	"TOKEN", "TOKENS", "AUTHTOKEN", "SECRET", "SECRETS", "KEY", "KEYS", "APIKEY", "PRIVATEKEY",
	"PASSWORD", "PASSWD", "PASS", "PASSPHRASE", "PWD", "CREDENTIAL", "CREDENTIALS", "CREDS",
	"DSN", "COOKIE", "SESSIONID", "CONNSTR", "JWT", "BEARER", "AUTH", "OAUTH",
}

// notSecret are names the patterns would catch that name no credential:
// the SSH agent's socket, which the relay's own git needs to clone over
// ssh.
var notSecret = []string{"SSH_AUTH_SOCK"}

// secretInfixes mark a credential anywhere in a name, also inside a
// word: PGPASSWORD, MYSQLPASSWD, DB_CONNECTION_STRING.
var secretInfixes = []string{"PASSWORD", "PASSWD", "SECRET", "APIKEY", "CONNECTION_STRING"}

// secretNames are credentials that no pattern above catches.
var secretNames = []string{"DATABASE_URL", "NETRC", "PGPASSFILE", "PGSERVICEFILE", "NPM_CONFIG__AUTH", "KUBECONFIG"}

// secretPrefixes mark a whole family of variables as credentials: the AWS
// SDKs read keys, session tokens and web identity files from AWS_*.
var secretPrefixes = []string{"AWS_"}

// LooksSecret reports whether an environment variable name looks like it
// holds a credential: ANTHROPIC_API_KEY, OPENAI_KEY, GITHUB_TOKEN,
// AWS_SECRET_ACCESS_KEY, PGPASSWORD, MYSQL_PWD, SENTRY_DSN, DATABASE_URL,
// GOOGLE_APPLICATION_CREDENTIALS, any AWS_* and the relay's own tokens.
// Names are compared without regard to case. PWD and OLDPWD, the working
// directory, are not secrets.
func LooksSecret(name string) bool {
	u := strings.ToUpper(name)
	if u == envOperatorToken || u == envJobToken || slices.Contains(secretNames, u) {
		return true
	}
	if slices.Contains(notSecret, u) {
		return false
	}
	for _, p := range secretPrefixes {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	for _, s := range secretInfixes {
		if strings.Contains(u, s) {
			return true
		}
	}
	words := strings.Split(u, "_")
	if len(words) < 2 {
		return false // PWD, TOKEN, KEY alone name no credential of anything
	}
	for _, w := range words {
		if slices.Contains(secretWords, w) {
			return true
		}
	}
	return false
}

// LooksSecretEntry reports whether an environment entry ("NAME=VALUE")
// looks like it holds a credential: by its name (LooksSecret), or because
// it is a URL (NAME ending in _URL, _URI, _ADDR or _ENDPOINT) whose value
// carries user information, as in postgres://user:pass@host/db or
// https://TOKEN@host/repo.git.
func LooksSecretEntry(kv string) bool {
	name, value, _ := strings.Cut(kv, "=")
	return LooksSecret(name) || (urlName(name) && hasUserinfo(value))
}

// urlName reports whether name is that of a variable holding an address.
func urlName(name string) bool {
	u := strings.ToUpper(name)
	for _, s := range []string{"_URL", "_URI", "_ADDR", "_ENDPOINT", "_DSN"} {
		if strings.HasSuffix(u, s) {
			return true
		}
	}
	return u == "URL" || u == "URI"
}

// hasUserinfo reports whether a value holds a URL with user information
// ("scheme://user[:password]@host..."), anywhere in it (a list of URLs
// included).
func hasUserinfo(v string) bool {
	for {
		i := strings.Index(v, "://")
		if i < 0 {
			return false
		}
		v = v[i+3:]
		end := strings.IndexAny(v, "/?# ,;\t\n")
		if end < 0 {
			end = len(v)
		}
		if strings.Contains(v[:end], "@") {
			return true
		}
		v = v[end:]
	}
}

// ScrubEnv returns env ("KEY=VALUE" entries) without the entries that look
// like credentials (LooksSecretEntry), except those named in pass. The
// relay's own tokens (TASK_RELAY_API_TOKEN, and a TASK_RELAY_TOKEN it
// inherited) and an inherited TASK_RELAY_ANSWER_PUBKEY are dropped even
// when pass names them. The relay starts
// executors from ScrubEnv(environ, passEnv), so that its API keys reach an
// executor only when the configuration says so, and every other child that
// is to see no credential at all (workspace setup commands, the relay's own
// git) from ScrubEnv(environ, nil).
func ScrubEnv(env, pass []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if u := strings.ToUpper(name); u == envOperatorToken || u == envJobToken || u == envAnswerKey {
			continue
		}
		if LooksSecretEntry(kv) && !slices.Contains(pass, name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}
