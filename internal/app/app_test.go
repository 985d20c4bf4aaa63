package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dataDir returns a data dir whose service listens on a free port.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ServiceConfigFile),
		[]byte(fmt.Sprintf("askAnswer:\n  port: %d\n", freePort(t))), 0o600))
	return dir
}

// newService makes a service (not started) of a new data dir with its
// defaults; the caller closes it.
func newService(t *testing.T) *Service {
	t.Helper()
	cfg, err := config.LoadService(dataDir(t), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	svc, err := New(t.Context(), Options{Config: cfg, Logger: quiet, Version: "t"})
	require.NoError(t, err)
	return svc
}

// projectDir writes a project config dir with executor "sh" running argv.
func projectDir(t *testing.T, argv string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".mcp-task-relay")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	writeProject(t, dir, argv)
	return dir
}

func writeProject(t *testing.T, dir, argv string) {
	t.Helper()
	body := fmt.Sprintf("askAnswer:\n  runner:\n    enabled: false\nexecutors:\n  sh: {argv: [%s]}\n", argv)
	require.NoError(t, os.WriteFile(filepath.Join(dir, config.ConfigFileName), []byte(body), 0o600))
}

func TestSocketPathFallsBackWhenTooLong(t *testing.T) {
	t.Parallel()
	short := "/tmp/d"
	require.Equal(t, "/tmp/d/relay.sock", SocketPath(short))
	long := "/tmp/" + strings.Repeat("x", 120)
	p := SocketPath(long)
	require.LessOrEqual(t, len(p), maxSocketPath+40)
	require.NotContains(t, p, strings.Repeat("x", 20))
	require.Equal(t, p, SocketPath(long), "the same data dir, the same socket")
	require.NotEqual(t, p, SocketPath(long+"y"))
}

func TestForwardEnvNamesOnlyWhatTheProjectNames(t *testing.T) {
	t.Parallel()
	cfg := (&config.Config{
		Executors: config.Executors{ByName: map[string]config.Executor{
			"a": {Argv: []string{"x"}, PassEnv: []string{"OPENAI_API_KEY"}},
		}},
		AskAnswer: config.AskAnswer{Runner: config.Runner{Provider: config.ProviderAnthropic}},
	}).WithDefaults()
	env := map[string]string{
		"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2", "GITHUB_TOKEN": "gh",
		"PATH": "/bin", config.EnvPromptsDir: "rel/prompts", "UNRELATED": "x",
	}
	got := forwardEnv(cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.Equal(t, "sk-1", got["OPENAI_API_KEY"])
	require.Equal(t, "sk-2", got["ANTHROPIC_API_KEY"], "the runner's key")
	require.Equal(t, "/bin", got["PATH"])
	require.NotContains(t, got, "GITHUB_TOKEN")
	require.NotContains(t, got, "UNRELATED")
	require.True(t, filepath.IsAbs(got[config.EnvPromptsDir]), got[config.EnvPromptsDir])
	require.Equal(t, config.ProfileDev, got[config.EnvProfile])
}

func TestServiceEnvAllowed(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"HOME", "PATH", "LANG", "LC_ALL", "XDG_DATA_HOME", config.EnvDataDir, config.EnvStorage} {
		require.True(t, serviceEnvAllowed(k), k)
	}
	for _, k := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", config.EnvProfile, config.EnvConfigDir, "GITHUB_TOKEN"} {
		require.False(t, serviceEnvAllowed(k), k)
	}
}

// runDaemon runs the service of dir in this process until the test ends.
func runDaemon(t *testing.T, dir, version string) (*ServiceInfo, <-chan error) {
	t.Helper()
	ready := make(chan *ServiceInfo, 1)
	done := make(chan error, 1)
	finished := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(finished)
		done <- RunDaemon(ctx, DaemonOptions{DataDir: dir, Logger: quiet, Version: version,
			Getenv: func(string) (string, bool) { return "", false },
			Ready:  func(i *ServiceInfo) { ready <- i }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("the service did not stop")
		}
	})
	select {
	case info := <-ready:
		return info, done
	case err := <-done:
		t.Fatalf("service: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not start")
	}
	return nil, nil
}

// TestDaemonAndFront: a front carries an MCP session to the service over
// its socket; a second service on the data dir is refused; stop drains and
// unpublishes the service.
func TestDaemonAndFront(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	info, done := runDaemon(t, dir, "v1")
	published, err := ReadServiceInfo(dir)
	require.NoError(t, err)
	require.Equal(t, info.PID, published.PID)
	require.Equal(t, "v1", published.Version)
	require.True(t, Locked(dir))
	fi, err := os.Stat(info.Socket)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the socket is the user's only")

	err = RunDaemon(context.Background(), DaemonOptions{DataDir: dir, Logger: quiet, Version: "v1"})
	require.ErrorIs(t, err, ErrAlreadyRunning)

	_, err = Control(t.Context(), dir, &Hello{Op: "dance"})
	require.ErrorContains(t, err, `unknown op "dance"`)

	// A front of the same version, on pipes, with an MCP client on the
	// other end.
	proj := projectDir(t, `"/bin/sh"`)
	cfg, err := config.Load(config.Overrides{ConfigDir: &proj}, func(k string) (string, bool) {
		if k == config.EnvDataDir {
			return dir, true
		}
		return "", false
	})
	require.NoError(t, err)
	require.Equal(t, dir, cfg.DataDir)
	clientIn, frontOut := io.Pipe()
	frontIn, clientOut := io.Pipe()
	frontDone := make(chan error, 1)
	go func() {
		frontDone <- RunFront(t.Context(), FrontOptions{Config: cfg, Stdin: frontIn, Stdout: frontOut, Logger: quiet, Version: "v1"})
		_ = frontOut.Close()
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "0"}, nil)
	session, err := client.Connect(t.Context(), &mcp.IOTransport{Reader: clientIn, Writer: clientOut}, nil)
	require.NoError(t, err)
	tools, err := session.ListTools(t.Context(), nil)
	require.NoError(t, err)
	require.NotEmpty(t, tools.Tools)
	st, err := Control(t.Context(), dir, &Hello{Op: OpStatus})
	require.NoError(t, err)
	require.Equal(t, 1, st.Sessions)
	require.Len(t, st.Projects, 1)
	require.Equal(t, proj, st.Projects[0].Dir)
	require.Equal(t, []string{"sh"}, st.Projects[0].Executors)

	// Busy with a session: no restart for another version.
	_, err = Control(t.Context(), dir, &Hello{Op: OpRestartIfIdle, Version: "v2"})
	require.ErrorContains(t, err, "busy")

	require.NoError(t, session.Close())
	select {
	case err := <-frontDone:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the front did not end with its client")
	}

	_, err = Control(t.Context(), dir, &Hello{Op: OpStop, GraceS: 1})
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("stop did not stop the service")
	}
	_, err = ReadServiceInfo(dir)
	require.ErrorIs(t, err, ErrNoService)
	require.False(t, Locked(dir))
}

// TestProjectsReloadKeepsLastGood: a project's config is reloaded when
// its file changes; a broken one refuses submits and keeps the last good
// config for the jobs that run.
func TestProjectsReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	svc := newService(t)
	t.Cleanup(func() { _ = svc.Close(0) })
	proj := projectDir(t, `"/bin/sh"`)
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: t.TempDir(), BaselineCommit: strings.Repeat("a", 40)},
		Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "k"}
	// A path that is not a repository fails admission on the repository,
	// after the executor was found: the error names repo.*, not the executor.
	_, _, err := svc.projects.AdmitIn(t.Context(), proj, spec)
	require.ErrorContains(t, err, "repo.")

	// Break the file (with a new modification time).
	bad := filepath.Join(proj, config.ConfigFileName)
	require.NoError(t, os.WriteFile(bad, []byte("executors:\n  sh: {argv: [x], timeoutS: soon}\n"), 0o600))
	require.NoError(t, os.Chtimes(bad, time.Now().Add(time.Minute), time.Now().Add(time.Minute)))
	_, _, err = svc.projects.AdmitIn(t.Context(), proj, spec)
	require.ErrorContains(t, err, "does not load")
	require.ErrorContains(t, err, "executors.sh.timeoutS")
	p, st, err := svc.projects.get(t.Context(), proj)
	require.NoError(t, err, "the last good config stays in use")
	require.Equal(t, []string{"sh"}, st.cfg.Executors.Names())
	require.Error(t, p.Err())

	writeProject(t, proj, `"/bin/false"`)
	require.NoError(t, os.Chtimes(bad, time.Now().Add(2*time.Minute), time.Now().Add(2*time.Minute)))
	_, st, err = svc.projects.get(t.Context(), proj)
	require.NoError(t, err)
	require.NoError(t, p.Err())
	require.Equal(t, []string{"/bin/false"}, st.cfg.Executors.ByName["sh"].Argv)

	_, _, err = svc.projects.AdmitIn(t.Context(), "", spec)
	require.ErrorIs(t, err, ErrNoProject)
	_, _, err = svc.projects.AdmitIn(t.Context(), "relative/dir", spec)
	require.ErrorContains(t, err, "absolute")
}

func TestRotateLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, ServiceLogFile)
	require.NoError(t, os.WriteFile(log, []byte("small\n"), 0o600))
	rotateLog(log, 100)
	require.FileExists(t, log)
	require.NoFileExists(t, log+".1")
	require.NoError(t, os.WriteFile(log, []byte(strings.Repeat("x", 200)), 0o600))
	rotateLog(log, 100)
	require.NoFileExists(t, log)
	b, err := os.ReadFile(log + ".1")
	require.NoError(t, err)
	require.Len(t, b, 200)
}

// TestServiceAllowedHosts: askAnswer.allowedHosts of service.yaml reach the
// HTTP API's Host check.
func TestServiceAllowedHosts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ServiceConfigFile), []byte(fmt.Sprintf(
		"askAnswer:\n  port: %d\n  allowedHosts: [\"relay.tunnel:8080\"]\n", freePort(t))), 0o600))
	cfg, err := config.LoadService(dir, func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	require.Equal(t, []string{"relay.tunnel:8080"}, cfg.AskAnswer.AllowedHosts)
	svc, err := New(t.Context(), Options{Config: cfg, Logger: quiet, Version: "t"})
	require.NoError(t, err)
	require.NoError(t, svc.Start(t.Context()))
	t.Cleanup(func() { _ = svc.Close(0) })
	get := func(host string) int {
		req, err := http.NewRequest(http.MethodGet, svc.Origin()+"/healthz", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get("relay.tunnel:8080"))
	require.Equal(t, http.StatusForbidden, get("evil.example:8080"))
}

// A project reloading its config while the relay asks which projects and
// executors it may claim for (the cluster's claim filter, which locks the
// project list, then each project) never deadlocks: a reload must not
// wait for the project list while it holds its project.
func TestProjectReloadDuringClaimFilter(t *testing.T) {
	t.Parallel()
	svc := newService(t)
	deadlocked := false
	t.Cleanup(func() {
		if !deadlocked { // Close would wait for the locks too
			_ = svc.Close(0)
		}
	})
	proj := projectDir(t, `"/bin/sh"`)
	p, err := svc.projects.open(t.Context(), proj, nil)
	require.NoError(t, err)
	c := &cluster{s: svc}

	done := make(chan struct{})
	go func() {
		defer close(done)
		file := filepath.Join(proj, config.ConfigFileName)
		for i := range 300 {
			// A new modification time makes the next refresh load again.
			when := time.Now().Add(time.Duration(i+1) * time.Minute)
			if err := os.Chtimes(file, when, when); err != nil {
				t.Error(err)
				return
			}
			p.refresh(t.Context(), nil)
		}
	}()
	stop := make(chan struct{})
	filterDone := make(chan struct{})
	go func() {
		defer close(filterDone)
		for {
			select {
			case <-stop:
				return
			default:
				c.projects()
				c.executors()
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		deadlocked = true
		buf := make([]byte, 1<<20)
		t.Fatalf("project reloads did not finish: deadlocked with the claim filter\n%s", buf[:runtime.Stack(buf, true)])
	}
	close(stop)
	<-filterDone
	require.Equal(t, []string{proj}, c.projects())
	require.Equal(t, []string{"sh"}, c.executors())
}

// TestAfterFirstWrite: the standalone relay's stdout starts its follow-up
// once, after the first write (the initialize reply) is through.
func TestAfterFirstWrite(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	ran := make(chan string, 1)
	w := &afterFirstWrite{Writer: &out, then: func() { ran <- out.String() }}
	n, err := w.Write([]byte("{\"id\":1}\n"))
	require.NoError(t, err)
	require.Equal(t, 9, n)
	require.Equal(t, "{\"id\":1}\n", <-ran, "after the line was written")
	_, err = w.Write([]byte("{\"id\":2}\n"))
	require.NoError(t, err)
	w.once.Do(func() { t.Error("the follow-up is started by the first write only") })
	require.Empty(t, ran)
}

// TestProjectBadRoleFile: a project whose prompts dir holds a role file
// that does not parse fails its load with the role package's error, while
// another project of the same service (sharing the built-in roles) loads.
func TestProjectBadRoleFile(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	cfg, err := config.LoadService(dir, func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	svc, err := New(t.Context(), Options{Config: cfg, Logger: quiet, Version: "t"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Close(0) })

	runner := "askAnswer:\n  runner:\n    enabled: true\nexecutors:\n  sh: {argv: [/bin/sh]}\n"
	bad := filepath.Join(t.TempDir(), ".mcp-task-relay")
	prompts := filepath.Join(bad, config.PromptsDirName)
	require.NoError(t, os.MkdirAll(prompts, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(bad, config.ConfigFileName), []byte(runner), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(prompts, "role.finder@v1.yaml"), []byte("id: finder\nversion: v1\npurpose: p\n"), 0o600))
	_, want := role.LoadCatalog(prompts)
	require.Error(t, want)

	p, err := svc.projects.open(t.Context(), bad, nil)
	require.NoError(t, err)
	require.EqualError(t, p.Err(), want.Error())

	good := filepath.Join(t.TempDir(), ".mcp-task-relay")
	require.NoError(t, os.MkdirAll(good, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(good, config.ConfigFileName), []byte(runner), 0o600))
	p, err = svc.projects.open(t.Context(), good, nil)
	require.NoError(t, err)
	require.NoError(t, p.Err())
}
