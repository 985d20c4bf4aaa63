package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// principal is who a request comes from: the operator, or an executor
// holding the token of one job.
type principal struct {
	operator bool
	jobID    string
	// attempt is the job attempt a job token is scoped to, or zero.
	attempt int
}

// may reports whether p may act on jobID.
func (p principal) may(jobID string) bool {
	return p.operator || p.jobID == jobID
}

// authenticate checks the bearer token of r. On failure it has written
// the 401 and ok is false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (p principal, ok bool) {
	if s.cfg.AuthNone {
		return principal{operator: true}, true
	}
	token, err := bearer(r.Header.Get("Authorization"))
	if err == nil {
		var jobID string
		var attempt int
		var operator bool
		if jobID, attempt, operator, err = s.cfg.Tokens.CheckAttempt(token); err == nil {
			return principal{operator: operator, jobID: jobID, attempt: attempt}, true
		}
	}
	challenge := `Bearer realm="mcp-task-relay"`
	msg := "missing bearer token: send Authorization: Bearer <token>"
	if !errors.Is(err, ask.ErrNoToken) {
		challenge += `, error="invalid_token"`
		msg = "invalid bearer token"
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, &apiError{Status: http.StatusUnauthorized, Code: relaytype.CodeUnauthorized, Message: msg})
	return principal{}, false
}

// operatorOnly authenticates r and requires the operator token. On failure
// it has written the response and ok is false.
func (s *Server) operatorOnly(w http.ResponseWriter, r *http.Request) (ok bool) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return false
	}
	if !p.operator {
		writeError(w, forbidden("this needs the operator token; a job token may only create asks for its job, read their answers and read its own job"))
		return false
	}
	return true
}

// bearer returns the token of an Authorization header.
func bearer(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", ask.ErrNoToken
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ask.ErrBadToken
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", ask.ErrNoToken
	}
	return token, nil
}
