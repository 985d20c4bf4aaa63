package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// fakeJobs holds one job in memory; only what the tests call works.
type fakeJobs struct {
	mu       sync.Mutex
	job      *relaytype.Job
	canceled int
}

func (f *fakeJobs) Get(_ context.Context, id string) (*relaytype.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != f.job.ID {
		return nil, relaytype.ErrJobNotFound
	}
	j := *f.job
	return &j, nil
}
func (f *fakeJobs) Events(context.Context, string, int64, int) ([]*relaytype.Event, error) {
	return nil, nil
}
func (f *fakeJobs) Subscribe() (<-chan relay.Change, func()) {
	return make(chan relay.Change), func() {}
}
func (f *fakeJobs) ListJobs(context.Context, relay.ListParams) ([]*relaytype.Job, int, error) {
	return []*relaytype.Job{f.job}, 1, nil
}
func (f *fakeJobs) Artifacts(context.Context, string) ([]*relaytype.Artifact, error) { return nil, nil }
func (f *fakeJobs) ReadArtifact(context.Context, string, relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error) {
	return nil, nil, relaytype.ErrArtifactNotFound
}
func (f *fakeJobs) Cancel(ctx context.Context, id string) (*relaytype.Job, error) {
	f.mu.Lock()
	f.canceled++
	f.job.State = relaytype.StateCanceled
	f.mu.Unlock()
	return f.Get(ctx, id)
}
func (f *fakeJobs) Followup(context.Context, string, string) (*relaytype.Job, error) {
	return nil, relaytype.ErrIllegalTransition
}

// fakeAsks records answers.
type fakeAsks struct {
	mu      sync.Mutex
	answers []*relaytype.Answer
}

func (f *fakeAsks) Get(context.Context, string) (*relaytype.AskRecord, error) { return nil, nil }
func (f *fakeAsks) List(context.Context, string, relaytype.AnswerStatus) ([]*relaytype.AskRecord, error) {
	return nil, nil
}
func (f *fakeAsks) Answer(_ context.Context, a *relaytype.Answer) (*relaytype.AnswerRecord, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append(f.answers, a)
	return &relaytype.AnswerRecord{AskID: a.AskID, Status: a.Status}, true, nil
}

type bundle struct {
	d    *Dashboard
	srv  *httptest.Server
	jobs *fakeJobs
	asks *fakeAsks
}

const operatorToken = "operator-secret"

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{jobs: &fakeJobs{job: &relaytype.Job{ID: "job_1", State: relaytype.StateRunning, Executor: "sh",
		Spec: relaytype.JobSpec{Task: relaytype.Task{Title: "t"}}}}, asks: &fakeAsks{}}
	d, err := New(Config{Jobs: b.jobs, Asks: b.asks, Operator: func(tok string) bool { return tok == operatorToken },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	mux := http.NewServeMux()
	for p, h := range d.Handlers() {
		mux.Handle(p, h)
	}
	b.d, b.srv = d, httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

// login trades a fresh code for a session and returns a client holding
// its cookie and the session's CSRF token.
func (b *bundle) login(t *testing.T) (*http.Client, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/ui/login-codes", nil)
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var lc LoginCode
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&lc))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.True(t, strings.HasPrefix(lc.URL, b.srv.URL+"/login?code="), lc.URL)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err = c.Get(lc.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "redirected to the page")
	u, _ := url.Parse(b.srv.URL)
	require.Len(t, jar.Cookies(u), 1)

	// The code worked once.
	resp, err = http.Get(lc.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, err = c.Get(b.srv.URL + "/ui/session")
	require.NoError(t, err)
	var si SessionInfo
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&si))
	resp.Body.Close()
	require.NotEmpty(t, si.CSRF)
	return c, si.CSRF
}

func do(t *testing.T, c *http.Client, method, u string, header map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestLoginCookieAttributes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _ := b.d.NewLoginCode()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(b.srv.URL + "/login?code=" + url.QueryEscape(code))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	set := resp.Header.Get("Set-Cookie")
	require.Contains(t, set, SessionCookie+"=")
	require.Contains(t, set, "HttpOnly")
	require.Contains(t, set, "SameSite=Strict")

	resp, err = c.Get(b.srv.URL + "/login?code=made-up")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestLoginCodeNeedsTheOperatorToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, http.StatusUnauthorized, do(t, http.DefaultClient, http.MethodPost, b.srv.URL+"/ui/login-codes", nil, ""))
	require.Equal(t, http.StatusUnauthorized, do(t, http.DefaultClient, http.MethodPost, b.srv.URL+"/ui/login-codes",
		map[string]string{"Authorization": "Bearer wrong"}, ""))
}

func TestExpiredCodeAndSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	var mu sync.Mutex
	b.d.cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	code, _ := b.d.NewLoginCode()
	advance(DefaultCodeTTL)
	resp, err := http.Get(b.srv.URL + "/login?code=" + url.QueryEscape(code))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an expired code")

	c, _ := b.login(t)
	require.Equal(t, http.StatusOK, do(t, c, http.MethodGet, b.srv.URL+"/ui/jobs", nil, ""))
	advance(DefaultSessionTTL)
	require.Equal(t, http.StatusUnauthorized, do(t, c, http.MethodGet, b.srv.URL+"/ui/jobs", nil, ""), "an expired session")
}

// TestStateChangesNeedSessionCSRFAndOrigin: reads need a session or the
// operator token; a state change on a session also needs its CSRF token
// and the relay's own Origin; the operator token alone is enough for
// scripts.
func TestStateChangesNeedSessionCSRFAndOrigin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cancel := b.srv.URL + "/ui/jobs/job_1/cancel"
	require.Equal(t, http.StatusUnauthorized, do(t, http.DefaultClient, http.MethodGet, b.srv.URL+"/ui/jobs", nil, ""))
	require.Equal(t, http.StatusUnauthorized, do(t, http.DefaultClient, http.MethodPost, cancel, map[string]string{"Origin": b.srv.URL}, ""),
		"no session")

	c, csrf := b.login(t)
	require.Equal(t, http.StatusOK, do(t, c, http.MethodGet, b.srv.URL+"/ui/jobs", nil, ""))
	for name, h := range map[string]map[string]string{
		"no CSRF token":  {"Origin": b.srv.URL},
		"wrong CSRF":     {"Origin": b.srv.URL, CSRFHeader: csrf + "x"},
		"no Origin":      {CSRFHeader: csrf},
		"foreign Origin": {"Origin": "http://evil.example", CSRFHeader: csrf},
		"other port":     {"Origin": "http://127.0.0.1:1", CSRFHeader: csrf},
	} {
		require.Equal(t, http.StatusForbidden, do(t, c, http.MethodPost, cancel, h, ""), name)
	}
	require.Zero(t, b.jobs.canceled)
	require.Equal(t, http.StatusOK, do(t, c, http.MethodPost, cancel, map[string]string{"Origin": b.srv.URL, CSRFHeader: csrf}, ""))
	require.Equal(t, 1, b.jobs.canceled)

	// Scripts: the operator token, no Origin, no CSRF.
	require.Equal(t, http.StatusOK, do(t, http.DefaultClient, http.MethodPost, cancel, map[string]string{"Authorization": "Bearer " + operatorToken}, ""))
	require.Equal(t, http.StatusForbidden, do(t, http.DefaultClient, http.MethodPost, cancel,
		map[string]string{"Authorization": "Bearer " + operatorToken, "Origin": "http://evil.example"}, ""))
	require.Equal(t, http.StatusUnauthorized, do(t, http.DefaultClient, http.MethodPost, cancel, map[string]string{"Authorization": "Bearer nope"}, ""))

	// Logging out ends the session.
	require.Equal(t, http.StatusNoContent, do(t, c, http.MethodPost, b.srv.URL+"/ui/logout", map[string]string{"Origin": b.srv.URL, CSRFHeader: csrf}, ""))
	require.Equal(t, http.StatusUnauthorized, do(t, c, http.MethodGet, b.srv.URL+"/ui/jobs", nil, ""))
}

func TestAnswerRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, csrf := b.login(t)
	h := map[string]string{"Origin": b.srv.URL, CSRFHeader: csrf}
	u := b.srv.URL + "/ui/asks/ask_1/answer"
	require.Equal(t, http.StatusOK, do(t, c, http.MethodPost, u, h, `{"approve":true}`))
	require.Equal(t, http.StatusOK, do(t, c, http.MethodPost, u, h, `{"reject":true,"text":"no"}`))
	require.Equal(t, http.StatusOK, do(t, c, http.MethodPost, u, h, `{"json":{"pick":2}}`))
	require.Equal(t, http.StatusOK, do(t, c, http.MethodPost, u, h, `{"text":"blue"}`))
	require.Equal(t, http.StatusBadRequest, do(t, c, http.MethodPost, u, h, `{}`))
	require.Equal(t, http.StatusBadRequest, do(t, c, http.MethodPost, u, h, `{"approve":true,"text":"x"}`))
	require.Len(t, b.asks.answers, 4)
	a := b.asks.answers
	require.Equal(t, relaytype.StatusAnswered, a[0].Status)
	require.JSONEq(t, `{"approved":true}`, string(a[0].AnswerJSON))
	require.Equal(t, relaytype.AnsweredByHuman, a[0].Attestation.AnsweredBy)
	require.Equal(t, relaytype.StatusRejected, a[1].Status)
	require.Equal(t, "no", a[1].AnswerText)
	require.JSONEq(t, `{"pick":2}`, string(a[2].AnswerJSON))
	require.Equal(t, "blue", a[3].AnswerText)
}

func TestSignedActionLinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exp := time.Now().Add(time.Hour)
	approve := b.d.ActionURL(b.srv.URL, "ask_9", ActionApprove, exp)
	require.Equal(t, http.StatusOK, do(t, http.DefaultClient, http.MethodPost, approve, nil, ""))
	require.Len(t, b.asks.answers, 1)
	require.Equal(t, relaytype.StatusAnswered, b.asks.answers[0].Status)

	// Another ask, another decision or a later expiry: not signed.
	for _, bad := range []string{
		strings.Replace(approve, "ask_9", "ask_8", 1),
		strings.Replace(approve, "decision=approve", "decision=reject", 1),
		strings.Replace(approve, "exp=", "exp=9", 1),
	} {
		require.Equal(t, http.StatusForbidden, do(t, http.DefaultClient, http.MethodPost, bad, nil, ""), bad)
	}
	expired := b.d.ActionURL(b.srv.URL, "ask_9", ActionReject, time.Now().Add(-time.Second))
	require.Equal(t, http.StatusGone, do(t, http.DefaultClient, http.MethodPost, expired, nil, ""))
	require.Len(t, b.asks.answers, 1)
}

func TestPageAndAssetsAreEmbedded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, p := range []string{"/", "/assets/app.js", "/assets/app.css"} {
		resp, err := http.Get(b.srv.URL + p)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.NotEmpty(t, body)
		require.NotContains(t, string(body), "https://", "%s loads nothing from elsewhere", p)
	}
}
