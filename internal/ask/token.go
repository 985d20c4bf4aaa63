package ask

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Mint returns the job token of jobID.
func (t *Tokens) Mint(jobID string) string {
	return "trj." + jobID + "." + t.mac(jobID)
}

// Check returns the job a token is scoped to, or operator=true for the
// operator token.
func (t *Tokens) Check(token string) (jobID string, operator bool, err error) {
	if token == "" {
		return "", false, ErrNoToken
	}
	if hmac.Equal([]byte(token), []byte(t.operator)) {
		return "", true, nil
	}
	rest, ok := strings.CutPrefix(token, "trj.")
	if !ok {
		return "", false, ErrBadToken
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", false, ErrBadToken
	}
	jobID = rest[:i]
	if !relaytype.ValidJobID(jobID) || !hmac.Equal([]byte(rest[i+1:]), []byte(t.mac(jobID))) {
		return "", false, ErrBadToken
	}
	return jobID, false, nil
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
