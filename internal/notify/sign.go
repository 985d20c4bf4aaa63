package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a Standard Webhooks secret: base64 of the key.
const secretPrefix = "whsec_"

// MinSecretBytes is the shortest signing key accepted.
const MinSecretBytes = 16

// ErrNoSecret means no webhook secret is configured for a project, or the
// configured source holds none.
var ErrNoSecret = errors.New("no webhook secret")

// ErrBadSecret means a webhook secret cannot be used as a signing key.
var ErrBadSecret = errors.New("invalid webhook secret")

// ParseSecret returns the signing key of a secret: the base64-decoded rest
// of a "whsec_..." secret (the Standard Webhooks format), else the bytes of
// the secret itself. Keys shorter than MinSecretBytes are refused.
func ParseSecret(secret string) ([]byte, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, ErrNoSecret
	}
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return nil, fmt.Errorf("%w: the part after %q is not base64: %w", ErrBadSecret, secretPrefix, err)
		}
	}
	if len(key) < MinSecretBytes {
		return nil, fmt.Errorf("%w: the key is %d bytes, at least %d are needed", ErrBadSecret, len(key), MinSecretBytes)
	}
	return key, nil
}

// ResolveSecret reads the webhook signing key a project's notify settings
// point at: the variable notify.webhookSecretEnv names (looked up with
// getenv) or the file notify.webhookSecretFile. Errors wrap ErrNoSecret or
// ErrBadSecret and say which setting is at fault.
func ResolveSecret(n config.Notify, getenv func(string) (string, bool)) ([]byte, error) {
	var (
		raw, src string
	)
	switch {
	case n.WebhookSecretEnv != "":
		src = "notify.webhookSecretEnv (" + n.WebhookSecretEnv + ")"
		v, ok := getenv(n.WebhookSecretEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("%w: the variable %s named by notify.webhookSecretEnv is not set in the relay's environment",
				ErrNoSecret, n.WebhookSecretEnv)
		}
		raw = v
	case n.WebhookSecretFile != "":
		src = "notify.webhookSecretFile (" + n.WebhookSecretFile + ")"
		b, err := os.ReadFile(n.WebhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%w: read notify.webhookSecretFile: %w", ErrNoSecret, err)
		}
		raw = string(b)
	default:
		return nil, fmt.Errorf("%w: set notify.webhookSecretEnv or notify.webhookSecretFile in the project's config.yaml", ErrNoSecret)
	}
	key, err := ParseSecret(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return key, nil
}

// Sign returns the webhook-signature header value of a message:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the Unix seconds
// of ts.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// hostOf returns the host of a target URL for logs (never its path or
// query, which may carry tokens).
func hostOf(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "?"
	}
	return u.Host
}

// redact drops the URL from a client error (its query may carry a token).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
