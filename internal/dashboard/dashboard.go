// Package dashboard owns the relay's web dashboard: the embedded page
// (plain HTML, CSS and JavaScript, no build step), the JSON endpoints it
// reads and acts through under /ui/, the login by one-time code, the
// session cookie and its CSRF token, and signed one-tap links that
// notifications carry to approve or reject an ask.
//
// Who may do what:
//
//   - The page and its assets are public; they hold no data.
//   - GET /login?code=C trades a one-time code (made by POST
//     /ui/login-codes with the operator token, as `mcp-task-relay open`
//     does) for a session cookie: HttpOnly, SameSite=Strict, one random
//     id the relay keeps in memory.
//   - Every /ui/ endpoint takes that session or the operator bearer token
//     (scripts). A state-changing request on a session also needs the
//     session's CSRF token in X-CSRF-Token and an Origin header that is
//     the relay's own (scheme and Host of the request).
//   - POST /ui/asks/{askId}/action takes no session: its query carries a
//     decision, an expiry and an HMAC over both made with the relay's
//     action key, which only the relay's notifications hand out.
package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Defaults of Config.
const (
	// DefaultSessionTTL is how long a dashboard session lasts.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultCodeTTL is how long a one-time login code can be used.
	DefaultCodeTTL = 2 * time.Minute
	// DefaultHeartbeat is the interval of comments on the change stream.
	DefaultHeartbeat = 15 * time.Second
	// DefaultActionTTL is how long a signed ask action link works when
	// the ask has no earlier deadline.
	DefaultActionTTL = 24 * time.Hour
)

// Names on the wire.
const (
	// SessionCookie is the name of the session cookie.
	SessionCookie = "mtr_session"
	// CSRFHeader carries the session's CSRF token on state-changing
	// requests.
	CSRFHeader = "X-CSRF-Token"
	// LoginPath is where a one-time code is traded for a session.
	LoginPath = "/login"
)

//go:embed assets
var assets embed.FS

// Jobs is the part of *relay.Relay the dashboard uses.
type Jobs interface {
	// Get returns one job or an error wrapping relaytype.ErrJobNotFound.
	Get(ctx context.Context, id string) (*relaytype.Job, error)
	// Events returns a job's audit log after afterID, at most limit.
	Events(ctx context.Context, id string, afterID int64, limit int) ([]*relaytype.Event, error)
	// Subscribe returns a channel of job changes and a function that ends
	// the subscription.
	Subscribe() (<-chan relay.Change, func())
	// ListJobs returns a page of jobs, newest first, and the total.
	ListJobs(ctx context.Context, p relay.ListParams) ([]*relaytype.Job, int, error)
	// Artifacts returns the metadata of a job's stored artifacts.
	Artifacts(ctx context.Context, id string) ([]*relaytype.Artifact, error)
	// ReadArtifact returns the bytes and metadata of one artifact.
	ReadArtifact(ctx context.Context, jobID string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error)
	// Cancel cancels a job and returns it in its new state.
	Cancel(ctx context.Context, id string) (*relaytype.Job, error)
	// Followup starts a job that continues a finished one.
	Followup(ctx context.Context, parentID, instruction string) (*relaytype.Job, error)
}

var _ Jobs = (*relay.Relay)(nil)

// Asks is the part of *ask.Service the dashboard uses.
type Asks interface {
	// Get returns one ask.
	Get(ctx context.Context, askID string) (*relaytype.AskRecord, error)
	// List returns asks oldest first, optionally of one job and status.
	List(ctx context.Context, jobID string, status relaytype.AnswerStatus) ([]*relaytype.AskRecord, error)
	// Answer records the answer to an ask.
	Answer(ctx context.Context, a *relaytype.Answer) (*relaytype.AnswerRecord, bool, error)
}

// Config configures a Dashboard.
type Config struct {
	// Jobs reads and steers jobs. Required.
	Jobs Jobs
	// Asks lists and answers asks. Required.
	Asks Asks
	// Operator reports whether a bearer token is the operator's.
	// Required unless AuthNone.
	Operator func(token string) bool
	// AuthNone serves every request as the operator's, as the HTTP API
	// does with askAnswer.auth none (loopback only); state-changing
	// requests still need the relay's own Origin. Defaults to false.
	AuthNone bool
	// ActionKey signs the approve/reject links of notifications; at
	// least 32 bytes. Defaults to a random key (links then die with the
	// process).
	ActionKey []byte
	// SessionTTL is how long a session lasts. Defaults to 12 h.
	SessionTTL time.Duration
	// CodeTTL is how long a one-time login code can be used. Defaults to
	// 2 min.
	CodeTTL time.Duration
	// Heartbeat is the interval of keep-alive comments on the change
	// stream. Defaults to 15 s.
	Heartbeat time.Duration
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
}

// Dashboard serves the web dashboard.
type Dashboard struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	codes    map[string]time.Time // one-time login codes → expiry
	sessions map[string]*session  // session id → session
}

// session is one logged-in browser.
type session struct {
	csrf    string
	expires time.Time
}

// New returns a Dashboard.
func New(cfg Config) (*Dashboard, error) {
	switch {
	case cfg.Jobs == nil:
		return nil, errors.New("dashboard: Jobs is required")
	case cfg.Asks == nil:
		return nil, errors.New("dashboard: Asks is required")
	case cfg.Operator == nil && !cfg.AuthNone:
		return nil, errors.New("dashboard: Operator is required unless AuthNone is set")
	}
	if cfg.ActionKey == nil {
		cfg.ActionKey = []byte(randomToken())
	}
	if len(cfg.ActionKey) < 32 {
		return nil, errors.New("dashboard: ActionKey must have at least 32 bytes")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dashboard{cfg: cfg, log: cfg.Logger, codes: map[string]time.Time{}, sessions: map[string]*session{}}, nil
}

// Handlers returns the dashboard's routes as ServeMux patterns.
func (d *Dashboard) Handlers() map[string]http.Handler {
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	h := map[string]http.HandlerFunc{
		"GET /{$}": d.index,
		"GET /assets/": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			http.StripPrefix("/assets", files).ServeHTTP(w, r)
		},
		"GET " + LoginPath:               d.login,
		"POST /ui/login-codes":           d.loginCode,
		"POST /ui/logout":                d.logout,
		"GET /ui/session":                d.read(d.sessionInfo),
		"GET /ui/jobs":                   d.read(d.listJobs),
		"GET /ui/jobs/{jobId}":           d.read(d.getJob),
		"GET /ui/jobs/{jobId}/log":       d.read(d.getLog),
		"GET /ui/stream":                 d.read(d.stream),
		"GET /ui/asks":                   d.read(d.listAsks),
		"GET /ui/usage":                  d.read(d.usage),
		"POST /ui/jobs/{jobId}/cancel":   d.write(d.cancel),
		"POST /ui/jobs/{jobId}/followup": d.write(d.followup),
		"POST /ui/asks/{askId}/answer":   d.write(d.answer),
		"POST /ui/asks/{askId}/action":   d.action,
	}
	out := make(map[string]http.Handler, len(h))
	for p, f := range h {
		out[p] = f
	}
	return out
}

// index serves the page with the headers that keep it to itself.
func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("assets/index.html")
	if err != nil {
		http.Error(w, "dashboard missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b)
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// LoginCode is the answer of POST /ui/login-codes.
type LoginCode struct {
	// URL opens the dashboard and logs the browser in; it works once.
	URL string `json:"url"`
	// ExpiresAt is when the code stops working.
	ExpiresAt time.Time `json:"expiresAt"`
}

// NewLoginCode makes a one-time login code.
func (d *Dashboard) NewLoginCode() (string, time.Time) {
	now := d.cfg.Now()
	code, exp := randomToken(), now.Add(d.cfg.CodeTTL)
	d.mu.Lock()
	defer d.mu.Unlock()
	for c, e := range d.codes {
		if !now.Before(e) {
			delete(d.codes, c)
		}
	}
	d.codes[code] = exp
	return code, exp
}

// loginCode is POST /ui/login-codes: the operator token makes a login
// URL at the origin it was called at.
func (d *Dashboard) loginCode(w http.ResponseWriter, r *http.Request) {
	if !d.cfg.AuthNone {
		tok, ok := bearer(r)
		if !ok || !d.cfg.Operator(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcp-task-relay"`)
			writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "a login code needs the operator token")
			return
		}
	}
	code, exp := d.NewLoginCode()
	writeJSON(w, http.StatusCreated, LoginCode{URL: selfOrigin(r) + LoginPath + "?code=" + url.QueryEscape(code), ExpiresAt: exp})
}

// login is GET /login?code=: a valid one-time code becomes a session
// cookie, and the browser goes on to the dashboard.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	now := d.cfg.Now()
	d.mu.Lock()
	exp, ok := d.codes[code]
	delete(d.codes, code)
	var id string
	var s *session
	if ok && now.Before(exp) {
		id, s = randomToken(), &session{csrf: randomToken(), expires: now.Add(d.cfg.SessionTTL)}
		for k, v := range d.sessions {
			if !now.Before(v.expires) {
				delete(d.sessions, k)
			}
		}
		d.sessions[id] = s
	}
	d.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if s == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Login failed</title>` +
			`<p>This login link is unknown, used or expired. Run <code>mcp-task-relay open</code> for a new one.</p>`))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(d.cfg.SessionTTL / time.Second)})
	d.log.Info("dashboard login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout is POST /ui/logout.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.authorize(w, r, true); !ok {
		return
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		d.mu.Lock()
		delete(d.sessions, c.Value)
		d.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

// caller is who an authorized request comes from.
type caller struct {
	// csrf is the session's CSRF token, "" for a bearer token or AuthNone.
	csrf string
}

// authorize checks a /ui/ request: the operator token, or a session
// (and, when mutating, its CSRF token and the relay's own Origin). On
// failure it has written the error.
func (d *Dashboard) authorize(w http.ResponseWriter, r *http.Request, mutating bool) (caller, bool) {
	if mutating {
		// A browser always sends Origin with a POST; a script with the
		// token may leave it out, but never send another site's.
		o := r.Header.Get("Origin")
		_, hasBearer := bearer(r)
		if (o == "" && !hasBearer) || (o != "" && !sameOrigin(r, o)) {
			writeErr(w, http.StatusForbidden, "FORBIDDEN", "cross-origin request refused")
			return caller{}, false
		}
	}
	if tok, ok := bearer(r); ok {
		if d.cfg.AuthNone || d.cfg.Operator(tok) {
			return caller{}, true
		}
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid bearer token")
		return caller{}, false
	}
	if d.cfg.AuthNone {
		return caller{}, true
	}
	s := d.sessionOf(r)
	if s == nil {
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "log in: run `mcp-task-relay open` and open the URL it prints")
		return caller{}, false
	}
	if mutating && subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(s.csrf)) != 1 {
		writeErr(w, http.StatusForbidden, "FORBIDDEN", "missing or wrong CSRF token")
		return caller{}, false
	}
	return caller{csrf: s.csrf}, true
}

// sessionOf returns the live session of r's cookie, or nil.
func (d *Dashboard) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[c.Value]
	if s == nil {
		return nil
	}
	if !d.cfg.Now().Before(s.expires) {
		delete(d.sessions, c.Value)
		return nil
	}
	return s
}

// read wraps a handler that only reads.
func (d *Dashboard) read(h func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c, ok := d.authorize(w, r, false); ok {
			w.Header().Set("Cache-Control", "no-store")
			h(w, r, c)
		}
	}
}

// write wraps a handler that changes state.
func (d *Dashboard) write(h func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c, ok := d.authorize(w, r, true); ok {
			w.Header().Set("Cache-Control", "no-store")
			h(w, r, c)
		}
	}
}

// bearer returns the bearer token of r, if it has one.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// selfOrigin is the origin r was sent to.
func selfOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// sameOrigin reports whether origin o is the one r was sent to.
func sameOrigin(r *http.Request, o string) bool {
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	self, err := url.Parse(selfOrigin(r))
	if err != nil {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "https" {
			return "443"
		}
		return "80"
	}
	return u.Scheme == self.Scheme && strings.EqualFold(u.Hostname(), self.Hostname()) && port(u) == port(self) &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == ""
}

// ActionDecision is what a signed ask action link does.
type ActionDecision string

// Decisions of signed ask action links.
const (
	ActionApprove ActionDecision = "approve"
	ActionReject  ActionDecision = "reject"
)

// ActionURL returns the URL (at origin) that approves or rejects askID
// with one POST and no session, valid until expires.
func (d *Dashboard) ActionURL(origin, askID string, decision ActionDecision, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	q := url.Values{"decision": {string(decision)}, "exp": {exp}, "sig": {d.sign(askID, string(decision), exp)}}
	return strings.TrimRight(origin, "/") + "/ui/asks/" + url.PathEscape(askID) + "/action?" + q.Encode()
}

func (d *Dashboard) sign(askID, decision, exp string) string {
	m := hmac.New(sha256.New, d.cfg.ActionKey)
	m.Write([]byte("ask-action\x00" + strings.ToLower(askID) + "\x00" + decision + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
