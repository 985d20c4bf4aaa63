package ask

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Errors of token checks.
var (
	ErrNoToken  = errors.New("missing bearer token")
	ErrBadToken = errors.New("invalid bearer token")
)

// OperatorTokenFile is the file in the data directory holding the
// generated operator token.
const OperatorTokenFile = "api-token"

// Tokens mints and checks bearer tokens. The operator token allows every
// request. A job token ("trj.<jobId>.<mac>") allows only creating asks for
// its job and reading their answers; it is an HMAC of the job id under a
// key derived from the operator token, so any relay that shares the
// operator token can check it without storing it.
type Tokens struct {
	operator string
	key      []byte
}

// NewTokens returns Tokens for an operator token.
func NewTokens(operator string) (*Tokens, error) {
	if len(operator) < 16 {
		return nil, errors.New("operator token must be at least 16 characters")
	}
	k := sha256.Sum256([]byte("mcp-task-relay job token v1\x00" + operator))
	return &Tokens{operator: operator, key: k[:]}, nil
}

// Operator returns the operator token.
func (t *Tokens) Operator() string { return t.operator }

func (t *Tokens) mac(jobID string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(jobID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Mint returns the job token of jobID, valid for every attempt.
func (t *Tokens) Mint(jobID string) string {
	return "trj." + jobID + "." + t.mac(jobID)
}

// MintAttempt returns the token of one attempt of a job
// ("trj.<jobId>.<attempt>.<mac>"): asks made with it are refused once the
// attempt is over, so an executor left running by a relay that lost its
// lease cannot ask in the name of the job's next attempt.
func (t *Tokens) MintAttempt(jobID string, attempt int) string {
	scope := jobID + "." + strconv.Itoa(attempt)
	return "trj." + scope + "." + t.mac(scope)
}

// Check returns the job a token is scoped to, or operator=true for the
// operator token.
func (t *Tokens) Check(token string) (jobID string, operator bool, err error) {
	jobID, _, operator, err = t.CheckAttempt(token)
	return jobID, operator, err
}

// CheckAttempt is Check that also returns the attempt a token of
// MintAttempt is scoped to (zero for a token of Mint or the operator's).
func (t *Tokens) CheckAttempt(token string) (jobID string, attempt int, operator bool, err error) {
	if token == "" {
		return "", 0, false, ErrNoToken
	}
	if hmac.Equal([]byte(token), []byte(t.operator)) {
		return "", 0, true, nil
	}
	rest, ok := strings.CutPrefix(token, "trj.")
	if !ok {
		return "", 0, false, ErrBadToken
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", 0, false, ErrBadToken
	}
	scope := rest[:i]
	if !hmac.Equal([]byte(rest[i+1:]), []byte(t.mac(scope))) {
		return "", 0, false, ErrBadToken
	}
	jobID = scope
	if id, n, ok := strings.Cut(scope, "."); ok {
		a, err := strconv.Atoi(n)
		if err != nil || a < 1 || strconv.Itoa(a) != n {
			return "", 0, false, ErrBadToken
		}
		jobID, attempt = id, a
	}
	if !relaytype.ValidJobID(jobID) {
		return "", 0, false, ErrBadToken
	}
	return jobID, attempt, false, nil
}

type attemptKey struct{}

// WithAttempt returns ctx carrying the job attempt an ask is made for (from
// a token of Tokens.MintAttempt): Service.Create refuses the ask once that
// attempt is over.
func WithAttempt(ctx context.Context, attempt int) context.Context {
	if attempt == 0 {
		return ctx
	}
	return context.WithValue(ctx, attemptKey{}, attempt)
}

func attemptOf(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

// LoadOperatorToken returns the operator token: env TASK_RELAY_API_TOKEN
// when set, else the one stored in dataDir/api-token, else a new random
// token written there with mode 0600.
func LoadOperatorToken(dataDir string, getenv func(string) (string, bool)) (string, error) {
	if v, ok := getenv("TASK_RELAY_API_TOKEN"); ok && strings.TrimSpace(v) != "" {
		if len(strings.TrimSpace(v)) < 16 {
			return "", errors.New("TASK_RELAY_API_TOKEN: must be at least 16 characters")
		}
		return strings.TrimSpace(v), nil
	}
	p := filepath.Join(dataDir, OperatorTokenFile)
	if b, err := os.ReadFile(p); err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 16 {
			return tok, nil
		}
		return "", fmt.Errorf("%s: token too short; delete the file to generate a new one", p)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read operator token: %w", err)
	}
	tok := "tro_" + rand.Text() + rand.Text()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.CreateTemp(dataDir, ".api-token-*")
	if err != nil {
		return "", fmt.Errorf("write operator token: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write operator token: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", fmt.Errorf("write operator token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("write operator token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write operator token: %w", err)
	}
	// Link rather than rename so that a token another relay wrote first
	// wins and both agree.
	if err := os.Link(f.Name(), p); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOperatorToken(dataDir, func(string) (string, bool) { return "", false })
		}
		return "", fmt.Errorf("write operator token: %w", err)
	}
	return tok, nil
}
