package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	stdpng "image/png"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// EnvNoBrowser, set to "off", lets the browser tests skip where Chromium
// is not installed; without it they fail, so that CI (which installs
// Chromium) never passes without running them.
const envNoBrowser = "TASK_RELAY_TEST_BROWSER"

// screenshotDir is where the browser tests save their screenshots with
// -update-screenshots, relative to this package: the README shows them.
// Without the flag they go to a temporary directory, so that a test run
// leaves the working tree as it was.
const screenshotDir = "../../docs/screenshots"

var updateScreenshots = flag.Bool("update-screenshots", false, "save the browser tests' screenshots in docs/screenshots")

// Viewports of the tests: a phone and a desktop.
const (
	phoneWidth, phoneHeight     = 390, 844
	desktopWidth, desktopHeight = 1280, 860
)

// chromium returns the path of Debian's chromium (or another Chromium on
// PATH), skipping the test only when it is absent and the environment
// says the browser tests may be skipped.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(envNoBrowser) == "off" {
		t.Skipf("chromium is not installed and %s=off", envNoBrowser)
	}
	t.Fatalf("chromium is not installed: apt-get install chromium (or set %s=off to skip the browser tests)", envNoBrowser)
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab's context, ended with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, desktopHeight),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first step starts the browser, which lives as long as ctx: no
	// timeout on it, only on the steps after it.
	require.NoError(t, chromedp.Do(ctx))
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// viewport sizes the page as a phone (touch, mobile) or a desktop.
func viewport(width, height int) chromedp.Action[chromedp.Void] {
	if width <= phoneWidth {
		return chromedp.EmulateViewport(int64(width), int64(height), chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	return chromedp.EmulateViewport(int64(width), int64(height))
}

// screenshot saves the whole page as name.png (in docs/screenshots with
// -update-screenshots).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	_, err = stdpng.DecodeConfig(bytes.NewReader(png))
	require.NoError(t, err, "screenshot %s is not a PNG", name)
	dir := t.TempDir()
	if *updateScreenshots {
		dir = screenshotDir
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// openURL runs `mcp-task-relay open --no-browser` and returns the login
// link it prints.
func (s *relayService) openURL(t *testing.T, cfg string) string {
	t.Helper()
	out, code := s.cli(t, t.TempDir(), "open", "--no-browser", "--config-dir", cfg)
	require.Zero(t, code, out)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "http://") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("open printed no link: %s", out)
	return ""
}

// login opens the one-time link and waits for the dashboard to be ready.
func login(t *testing.T, ctx context.Context, link string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.False(t, strings.Contains(loc, "code="), "the code is not left in the address bar: %s", loc)
}

// gatedScript runs until the file gate exists, printing as it goes, then
// changes hello.txt and reports in out.md's NOTES.
func gatedScript(gate string) string {
	return fmt.Sprintf(`#!/bin/sh
set -eu
echo "step 1: reading the repository"
while [ ! -f %q ]; do sleep 0.1; done
echo "step 2: writing the change"
printf 'dashboard change\n' >> hello.txt
echo "### NOTES"
echo "Changed **hello.txt** for the <dashboard> test."
`, gate)
}

// TestDashboardFollowsAJob: a person logs in with `open`'s link; the jobs
// list and a running job's page update by themselves, without a reload,
// until the job has SUCCEEDED and the page shows its diff and notes.
func TestDashboardFollowsAJob(t *testing.T) {
	ctx := browser(t)
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	cfg := project(t, dir, gatedScript(gate))
	f := svc.front(t, cfg)
	id := f.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "dashboard-follow")})["jobId"].(string)
	f.waitState(t, id, "RUNNING")

	login(t, ctx, svc.openURL(t, cfg))
	jobRow := fmt.Sprintf(`#jobs li[data-job=%q] .state`, id)
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(jobRow))))

	// The job's page, opened while it runs: its log shows, and a marker
	// set on the window now survives only if the page never reloads.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(svc.origin()+"/#/job/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#job-state .state`)),
	))
	state := textOf(t, ctx, `#job-state`)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__stayed = true`))
	require.NoError(t, err)
	require.NotContains(t, state, "SUCCEEDED")
	waitText(t, ctx, "#log", "step 1")

	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	waitText(t, ctx, "#job-state", "SUCCEEDED")
	waitText(t, ctx, "#diff-files", "hello.txt")
	waitText(t, ctx, ".diff tr.add", "dashboard change")
	waitText(t, ctx, "#log", "step 2")
	waitText(t, ctx, "#out-md strong", "hello.txt")
	stayed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__stayed === true`))
	require.NoError(t, err)
	notes := textOf(t, ctx, `#out-md`)
	strong := textOf(t, ctx, `#out-md strong`)
	require.True(t, stayed, "the page updated without a reload")
	require.Contains(t, notes, "<dashboard>", "out.md's markup is shown as text")
	require.Equal(t, "hello.txt", strong)
	apply := textOf(t, ctx, `#apply-command`)
	require.Contains(t, apply, "mcp-task-relay jobs apply "+id)

	screenshot(t, ctx, "job-desktop")
	require.NoError(t, chromedp.Do(ctx, viewport(phoneWidth, phoneHeight)))
	screenshot(t, ctx, "job-phone")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(svc.origin()+"/#/"),
		chromedp.WaitVisible(chromedp.CSS(jobRow)),
	))
	waitText(t, ctx, jobRow, "SUCCEEDED")
	screenshot(t, ctx, "jobs-phone")
	require.NoError(t, chromedp.Do(ctx, viewport(desktopWidth, desktopHeight)))
	screenshot(t, ctx, "jobs-desktop")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(svc.origin()+"/#/usage"), chromedp.WaitVisible(chromedp.CSS(`.chart svg`))))
	screenshot(t, ctx, "usage-desktop")
}

// waitText waits (generously) until the element of selector shows want.
// textOf returns the text of the first element selector matches, found
// and read in one evaluation in the page: the page re-renders parts of
// itself as a job changes, and a node looked up first and read after may
// be gone by then.
func textOf(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); return e.textContent; })()`,
		selector, selector)))
	require.NoError(t, err)
	return text
}

func waitText(t *testing.T, ctx context.Context, selector, want string) {
	t.Helper()
	var got string
	require.Eventually(t, func() bool {
		var err error
		got, err = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`Array.from(document.querySelectorAll(%q)).map(e => e.textContent).join("\n")`, selector)))
		return err == nil && strings.Contains(got, want)
	}, 2*time.Minute, 100*time.Millisecond, "%s never showed %q (last: %q)", selector, want, got)
}

const dashboardApprovalScript = `#!/bin/sh
set -eu
echo "about to migrate"
mcp-task-relay ask --type APPROVAL "Apply the schema migration to the staging database?" > approval.txt
echo "migrated"
`

// TestDashboardApprovalOnAPhone: an APPROVAL ask routed to a human, with
// no MCP client to ask, waits in the inbox; one tap on Approve at phone
// width answers it, the executor goes on at once and the job succeeds.
// Requests that change state are refused without the session, without
// its CSRF token, or from a foreign Origin.
func TestDashboardApprovalOnAPhone(t *testing.T) {
	ctx := browser(t)
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	dir := t.TempDir()
	script := writeScript(t, dir, "approve.sh", dashboardApprovalScript)
	cfg := writeConfig(t, dir, fmt.Sprintf("executors:\n  approver: {argv: [%q]}\naskAnswer:\n  routing:\n    byType: {APPROVAL: human}\n", script))
	f := svc.front(t, cfg)
	id := f.call(t, "jobs_submit", map[string]any{"spec": localSpec(repo, "dashboard-approve")})["jobId"].(string)
	f.waitState(t, id, "WAITING_ON_ANSWER")

	link := svc.openURL(t, cfg)
	login(t, ctx, link)
	card := `#asks article[data-ask]`
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(svc.origin()+"/#/inbox"),
		chromedp.WaitVisible(chromedp.CSS(card)),
	))
	waitText(t, ctx, card+" .prompt", "Apply the schema migration to the staging database?")
	waitText(t, ctx, "#inbox-count", "1")
	screenshot(t, ctx, "inbox-desktop")

	refusals(t, ctx, svc, cfg, link, id)

	require.NoError(t, chromedp.Do(ctx, viewport(phoneWidth, phoneHeight), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(card+" button.ok"))))
	screenshot(t, ctx, "inbox-phone")
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.clientWidth`))
	require.NoError(t, err)
	require.Equal(t, phoneWidth, width)
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
	require.NoError(t, err)
	require.False(t, overflow, "the inbox fits the phone's width")

	// One tap on Approve.
	require.NoError(t, chromedp.Do(ctx, chromedp.Tap(chromedp.CSS(card+" button.ok"))))
	job := f.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	patch := f.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff")
	require.True(t, strings.HasPrefix(fileFromPatch(t, patch, "approval.txt"), "approved"), patch)
	asks := f.call(t, "asks_list", map[string]any{"jobId": id, "status": "ALL"})["items"].([]any)
	require.Len(t, asks, 1)
	require.Equal(t, "ANSWERED", asks[0].(map[string]any)["status"])
	waitText(t, ctx, "main", "No ask is waiting for an answer.")
}

// refusals checks that state changes need the session, its CSRF token
// and the relay's own Origin: none of these cancels the job.
func refusals(t *testing.T, ctx context.Context, svc *relayService, cfg, usedLink, jobID string) {
	t.Helper()
	cancel := svc.origin() + "/ui/jobs/" + jobID + "/cancel"
	post := func(c *http.Client, header map[string]string) int {
		req, err := http.NewRequest(http.MethodPost, cancel, nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// No session.
	require.Equal(t, http.StatusUnauthorized, post(http.DefaultClient, map[string]string{"Origin": svc.origin()}))
	// The link the browser used works no more.
	resp, err := http.Get(usedLink)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// A session of its own, from a fresh link.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err = c.Get(svc.openURL(t, cfg))
	require.NoError(t, err)
	resp.Body.Close()
	u, _ := url.Parse(svc.origin())
	require.Len(t, jar.Cookies(u), 1)
	resp, err = c.Get(svc.origin() + "/ui/session")
	require.NoError(t, err)
	var session struct {
		CSRF string `json:"csrf"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&session))
	resp.Body.Close()
	require.NotEmpty(t, session.CSRF)
	// Without its CSRF token, or with it from a foreign Origin: refused.
	require.Equal(t, http.StatusForbidden, post(c, map[string]string{"Origin": svc.origin()}))
	require.Equal(t, http.StatusForbidden, post(c, map[string]string{"Origin": "http://evil.example", "X-CSRF-Token": session.CSRF}))
	require.Equal(t, http.StatusForbidden, post(c, map[string]string{"X-CSRF-Token": session.CSRF}), "no Origin at all")

	// In the browser: a request without the CSRF token is refused.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`fetch(%q, {method: "POST"}).then(r => r.status)`,
		"/ui/jobs/"+jobID+"/cancel"), chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status)

	out, code := svc.cli(t, t.TempDir(), "jobs", "show", jobID, "--url", svc.origin(), "--token", svc.token(t))
	require.Zero(t, code, out)
	require.Contains(t, out, "WAITING_ON_ANSWER", "no refused request canceled the job")
}
