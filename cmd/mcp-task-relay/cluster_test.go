package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres/pgtest"
)

// pgSchema makes a fresh schema of the test database (see pgtest) and
// returns a connection to it, its name and the URL of a connection to it.
func pgSchema(t *testing.T) (*pgx.Conn, string, string) {
	t.Helper()
	url, schema := pgtest.SchemaURL(t)
	return pgtest.Connect(t, url), schema, url
}

// clusterRelay is one relay service (`daemon run`) of a cluster sharing a
// PostgreSQL schema: its own data dir and port, the cluster's operator
// token.
type clusterRelay struct {
	name    string
	dataDir string
	port    int
	token   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

func newClusterRelay(t *testing.T, name, pgURL, token, serverYAML string) *clusterRelay {
	t.Helper()
	r := &clusterRelay{name: name, dataDir: filepath.Join(t.TempDir(), name), port: freePort(t), token: token}
	require.NoError(t, os.MkdirAll(r.dataDir, 0o700))
	if !strings.Contains(serverYAML, "leaseTtlSec") {
		serverYAML = "  leaseTtlSec: 5\n  heartbeatIntervalSec: 1\n" + serverYAML
	}
	body := fmt.Sprintf("askAnswer:\n  port: %d\nstorage:\n  mode: postgres\n  postgresUrl: %q\nserver:\n%s",
		r.port, pgURL, serverYAML)
	require.NoError(t, os.WriteFile(filepath.Join(r.dataDir, "service.yaml"), []byte(body), 0o600))
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("relay %s log:\n%s", r.name, tail(r.logText(), 40))
		}
	})
	return r
}

func (r *clusterRelay) origin() string { return fmt.Sprintf("http://127.0.0.1:%d", r.port) }

func (r *clusterRelay) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		return ""
	}
	return r.log.String()
}

// start runs the relay and waits until its HTTP API is healthy.
func (r *clusterRelay) start(t *testing.T) {
	t.Helper()
	require.NoError(t, r.startErr())
}

// startErr is start for a goroutine other than the test's.
func (r *clusterRelay) startErr() error {
	cmd := exec.Command(binary, "daemon", "run", "--data-dir", r.dataDir)
	// `mcp-task-relay ask` is on the executors' PATH.
	cmd.Env = append(os.Environ(), "TASK_RELAY_API_TOKEN="+r.token, "TASK_RELAY_LOG_LEVEL=info",
		"TASK_RELAY_ANSWER_RUNNER_ENABLED=false", "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done, r.log = cmd, done, log
	r.mu.Unlock()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("relay %s exited at start: %s", r.name, tail(log.String(), 20))
		default:
		}
		resp, err := http.Get(r.origin() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("relay %s not healthy after 60 s", r.name)
}

// kill SIGKILLs the relay (as a machine dying would) and waits for it.
func (r *clusterRelay) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func (r *clusterRelay) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// do sends an operator request and decodes a JSON response into out.
func (r *clusterRelay) do(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.origin()+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, nil
}

// session connects an MCP client to the relay for project cfg.
func (r *clusterRelay) session(t *testing.T, cfg string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-cluster", Version: "0"}, nil)
	s, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: r.origin() + "/mcp?project=" + cfg,
		HTTPClient: &http.Client{Transport: bearer{r.token}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func callTool(t *testing.T, s *mcp.ClientSession, name string, args any) map[string]any {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	require.False(t, res.IsError, "%s: %v", name, res.Content)
	raw, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

type askItem struct {
	AskID       string `json:"askId"`
	JobID       string `json:"jobId"`
	StepID      string `json:"stepId"`
	ContextHash string `json:"contextHash"`
	Status      string `json:"status"`
}

// answerAsk answers an ask through r as the orchestrator would.
func answerAsk(r *clusterRelay, a askItem, text string) (int, error) {
	return r.do(http.MethodPost, "/answers", map[string]any{
		"type": "Answer", "ask_id": a.AskID, "job_id": a.JobID, "step_id": a.StepID, "status": "ANSWERED",
		"answer_text": text, "attestation": map[string]any{"context_hash": a.ContextHash, "answered_by": "orchestrator"},
	}, nil)
}

type jobView struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Attempt    int    `json:"attempt"`
	LeaseOwner string `json:"leaseOwner"`
}

// TestClusterCrossRelayAsk: two relay services share one PostgreSQL
// database. A job submitted through A runs on whichever relay claims it;
// its executor asks through its own relay; the orchestrator answers
// through the other one, whose notification wakes the waiting executor;
// the job's patch is then read through the relay that did not run it
// (from the database: the file is on the other relay's data dir).
func TestClusterCrossRelayAsk(t *testing.T) {
	t.Parallel()
	_, _, url := pgSchema(t)
	token := "tro_" + rand.Text()
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "ask.sh", askScript)
	cfg := writeConfig(t, dir, fmt.Sprintf("executors:\n  asker: {kind: command, argv: [%q]}\n", script))
	a := newClusterRelay(t, "a", url, token, "")
	b := newClusterRelay(t, "b", url, token, "")
	a.start(t)
	b.start(t)

	sa := a.session(t, cfg)
	jobID := callTool(t, sa, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "cluster-ask")})["jobId"].(string)

	var pending []askItem
	require.Eventually(t, func() bool {
		var list struct{ Items []askItem }
		_, err := a.do(http.MethodGet, "/asks?status=PENDING&jobId="+jobID, nil, &list)
		pending = list.Items
		return err == nil && len(pending) == 1
	}, 60*time.Second, 20*time.Millisecond, "the executor asks")
	var detail struct{ Job jobView }
	_, err := a.do(http.MethodGet, "/jobs/"+jobID, nil, &detail)
	require.NoError(t, err)
	job := detail.Job
	require.Equal(t, "WAITING_ON_ANSWER", job.State)
	runner, other := a, b
	if strings.Contains(job.LeaseOwner, fmt.Sprintf(":%d:", b.pid())) {
		runner, other = b, a
	}
	require.Contains(t, job.LeaseOwner, fmt.Sprintf(":%d:", runner.pid()), "the lease names one of the relays")
	t.Logf("job runs on relay %s; answering through relay %s", runner.name, other.name)

	code, err := answerAsk(other, pending[0], "Bonjour from the other relay")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)

	require.Eventually(t, func() bool {
		_, err := other.do(http.MethodGet, "/jobs/"+jobID, nil, &detail)
		return err == nil && detail.Job.State == "SUCCEEDED"
	}, 60*time.Second, 20*time.Millisecond, "the job succeeds once the other relay's answer wakes its executor")

	// The patch was written under the runner's data dir; the other relay
	// serves it from the database, checked against its digest.
	req, err := http.NewRequest(http.MethodGet, other.origin()+"/jobs/"+jobID+"/artifacts/patch.diff", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	patch, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", patch)
	require.Contains(t, string(patch), "+Bonjour from the other relay")
	sum := sha256.Sum256(patch)
	require.Equal(t, hex.EncodeToString(sum[:]), resp.Header.Get("X-Content-Sha256"))
	_, err = os.Stat(filepath.Join(other.dataDir, "artifacts", jobID))
	require.True(t, os.IsNotExist(err), "the other relay has no file of the job's artifacts")
}

// chaosScript records each run of an attempt (start, end, and the answer
// it got when it asks) in $CHAOS_RECORDS, with the relay it runs under
// ($ASK_ANSWER_ORIGIN), and writes its job id into the repository.
const chaosScript = `#!/bin/sh
set -eu
now() { date +%s%N; }
echo "start $TASK_RELAY_JOB_ID $TASK_RELAY_ATTEMPT $ASK_ANSWER_ORIGIN $(now)" >> "$CHAOS_RECORDS"
case "$TASK_RELAY_JOB_ID" in
*[0-7]) ;;
*)
	answer=$(mcp-task-relay ask --type CLARIFICATION "Which word for $TASK_RELAY_JOB_ID?")
	echo "answer $TASK_RELAY_JOB_ID $TASK_RELAY_ATTEMPT $answer" >> "$CHAOS_RECORDS"
	echo "$answer" >> answers.txt
	;;
esac
sleep "1.$(od -An -N1 -tu1 /dev/urandom | tr -d ' ' | cut -c1)"
echo "$TASK_RELAY_JOB_ID" >> jobs.txt
echo "end $TASK_RELAY_JOB_ID $TASK_RELAY_ATTEMPT $ASK_ANSWER_ORIGIN $(now)" >> "$CHAOS_RECORDS"
`

// TestClusterChaos: three relay services on one PostgreSQL database run
// 200 jobs while relays are SIGKILLed and restarted at random (at least
// 20 kills). Afterwards every job is terminal exactly once, no attempt
// ran on two relays at once, no ask, answer or event is lost or
// duplicated, and every artifact read through any relay matches its
// SHA-256. It takes a few minutes: set TASK_RELAY_CHAOS=1 to run it
// (.ci/run does, as its own step).
func TestClusterChaos(t *testing.T) {
	if os.Getenv("TASK_RELAY_CHAOS") != "1" {
		t.Skip("set TASK_RELAY_CHAOS=1 to run the cluster chaos test")
	}
	// Kills every 0.5–1.5 s, at most maxKills, then the jobs may finish.
	// The 200 jobs take ~35 s without kills on a fast day (9 run at once,
	// each sleeps 1–2 s): kills every 2.5 s on average were too few then.
	const nJobs, minKills, maxKills = 200, 20, 40
	conn, schema, url := pgSchema(t)
	token := "tro_" + rand.Text()
	dir := t.TempDir()
	repo, base := newRepo(t)
	records := filepath.Join(dir, "records.txt")
	script := writeScript(t, dir, "chaos.sh", chaosScript)
	cfg := writeConfig(t, dir, fmt.Sprintf("executors:\n  chaos:\n    argv: [%q]\n    env: {CHAOS_RECORDS: %q}\n", script, records))
	var relays []*clusterRelay
	for _, name := range []string{"a", "b", "c"} {
		r := newClusterRelay(t, name, url, token, "  maxConcurrency: 3\n")
		r.start(t)
		relays = append(relays, r)
	}
	pick := func(i int) *clusterRelay {
		for k := range relays {
			if r := relays[(i+k)%len(relays)]; r.pid() != 0 {
				return r
			}
		}
		return relays[0]
	}

	// Submit through relay a's MCP endpoint.
	s := relays[0].session(t, cfg)
	ids := make([]string, 0, nJobs)
	for i := range nJobs {
		spec := seedSpec("file://"+repo, base, fmt.Sprintf("chaos-%d", i))
		spec["execution"].(map[string]any)["maxAttempts"] = 20
		ids = append(ids, callTool(t, s, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string))
	}
	_ = s.Close()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	// The orchestrator answers pending asks through a random live relay.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			r := pick(i)
			var list struct{ Items []askItem }
			if _, err := r.do(http.MethodGet, "/asks?status=PENDING", nil, &list); err == nil {
				for _, a := range list.Items {
					// A conflict (answered meanwhile, attempt over) is
					// fine: the store keeps one answer.
					_, _ = answerAsk(r, a, "word-"+a.AskID)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// The chaos monkey: kill a random live relay, restart it a moment
	// later, until every job is terminal and enough kills happened.
	type kill struct {
		origin string
		at     int64
	}
	var killsMu sync.Mutex
	var kills []kill
	// Only the test's goroutine uses conn (a pgx.Conn is not safe for
	// concurrent use); the monkey reads the flag.
	var finished atomic.Bool
	allDone := func() bool {
		var n int
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM `+schema+`.jobs WHERE state NOT IN ('SUCCEEDED','FAILED','CANCELED','EXPIRED')`).Scan(&n)
		return err == nil && n == 0
	}
	startErrs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			time.Sleep(time.Duration(500+int(randByte())*4) * time.Millisecond)
			killsMu.Lock()
			n := len(kills)
			killsMu.Unlock()
			if finished.Load() || n >= maxKills {
				return
			}
			r := relays[int(randByte())%len(relays)]
			at := time.Now().UnixNano()
			r.kill()
			killsMu.Lock()
			kills = append(kills, kill{r.origin(), at})
			killsMu.Unlock()
			time.Sleep(time.Duration(100+int(randByte())*2) * time.Millisecond)
			if err := r.startErr(); err != nil {
				startErrs <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if allDone() {
			finished.Store(true)
			break
		}
		killsMu.Lock()
		n := len(kills)
		killsMu.Unlock()
		require.True(t, time.Now().Before(deadline), "jobs not all terminal after 10 min (%d kills)", n)
		select {
		case err := <-startErrs:
			t.Fatal(err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop()
	wg.Wait()
	t.Logf("%d kills while jobs ran", len(kills))
	require.GreaterOrEqual(t, len(kills), minKills, "the relays were killed often enough while the jobs ran")

	answers := checkChaosRecords(t, records, kills2map(kills, func(k kill) (string, int64) { return k.origin, k.at }))
	checkChaosStore(t, conn, schema, ids, answers)
	checkChaosArtifacts(t, conn, schema, relays, pick)
}

func randByte() byte {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return b[0]
}

func kills2map[K any](ks []K, f func(K) (string, int64)) map[string][]int64 {
	out := map[string][]int64{}
	for _, k := range ks {
		o, at := f(k)
		out[o] = append(out[o], at)
	}
	return out
}

// checkChaosRecords checks the executors' records: no two attempts of a
// job ran at the same time. An attempt's run ends at its "end" record or,
// when its relay was killed first, at that kill (the shim kills the
// executor with its relay). It returns the answers the executors got, by
// "jobId attempt".
func checkChaosRecords(t *testing.T, path string, kills map[string][]int64) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	type run struct {
		origin     string
		start, end int64
	}
	runs := map[string]map[string]*run{} // job → attempt → run
	answers := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "answer" {
			key := f[1] + " " + f[2]
			_, dup := answers[key]
			require.False(t, dup, "attempt %s got two answers", key)
			answers[key] = f[3]
			continue
		}
		require.Len(t, f, 5, "record %q", line)
		var ts int64
		_, err := fmt.Sscan(f[4], &ts)
		require.NoError(t, err)
		if runs[f[1]] == nil {
			runs[f[1]] = map[string]*run{}
		}
		r := runs[f[1]][f[2]]
		switch f[0] {
		case "start":
			require.Nil(t, r, "attempt %s of %s started twice", f[2], f[1])
			runs[f[1]][f[2]] = &run{origin: f[3], start: ts}
		case "end":
			require.NotNil(t, r, "attempt %s of %s ended without a start", f[2], f[1])
			require.Equal(t, r.origin, f[3])
			r.end = ts
		}
	}
	for job, attempts := range runs {
		var list []*run
		for _, r := range attempts {
			if r.end == 0 {
				// Killed with its relay: it ended at the first kill of
				// that relay after its start.
				for _, at := range kills[r.origin] {
					if at > r.start && (r.end == 0 || at < r.end) {
						r.end = at
					}
				}
				require.NotZero(t, r.end, "a run of %s on %s never ended and its relay was never killed after it started", job, r.origin)
			}
			list = append(list, r)
		}
		for i, x := range list {
			for _, y := range list[i+1:] {
				require.False(t, x.start < y.end && y.start < x.end,
					"job %s ran twice at once: on %s [%d, %d] and on %s [%d, %d]", job, x.origin, x.start, x.end, y.origin, y.start, y.end)
			}
		}
	}
	return answers
}

// checkChaosStore audits the database: every job terminal exactly once,
// every job's transitions one chain, every ask answered at most once and
// every ask of a successful attempt answered, with the answer its
// executor got.
func checkChaosStore(t *testing.T, conn *pgx.Conn, schema string, ids []string, got map[string]string) {
	t.Helper()
	ctx := context.Background()
	terminal := map[string]bool{"SUCCEEDED": true, "FAILED": true, "CANCELED": true, "EXPIRED": true}
	succeeded := 0
	for _, id := range ids {
		var state string
		var attempt int
		require.NoError(t, conn.QueryRow(ctx, `SELECT state, attempt FROM `+schema+`.jobs WHERE id = $1`, id).Scan(&state, &attempt))
		require.True(t, terminal[state], "job %s is %s", id, state)
		if state == "SUCCEEDED" {
			succeeded++
		}
		rows, err := conn.Query(ctx, `SELECT id, payload::text FROM `+schema+`.job_events WHERE job_id = $1 AND type = 'transition' ORDER BY id`, id)
		require.NoError(t, err)
		from, ends, version, last := "", 0, int64(0), int64(0)
		for rows.Next() {
			var eid int64
			var payload string
			require.NoError(t, rows.Scan(&eid, &payload))
			require.Greater(t, eid, last)
			last = eid
			var p struct {
				From, To     string
				StateVersion int64
			}
			require.NoError(t, json.Unmarshal([]byte(payload), &p))
			if from != "" {
				require.Equal(t, from, p.From, "job %s: transitions form one chain", id)
			}
			require.Greater(t, p.StateVersion, version, "job %s: state versions increase", id)
			version, from = p.StateVersion, p.To
			if terminal[p.To] {
				ends++
			}
		}
		require.NoError(t, rows.Err())
		require.Equal(t, 1, ends, "job %s reached a terminal state exactly once", id)
		require.Equal(t, state, from, "job %s: the last transition is its state", id)
	}
	t.Logf("%d of %d jobs succeeded", succeeded, len(ids))
	require.Greater(t, succeeded, len(ids)*9/10, "nearly every job succeeds despite the kills")

	// Asks: one answer at most per ask; the asks of the attempt that
	// succeeded were all answered (ANSWERED), and its executor got the
	// answer meant for it.
	var dupAnswers int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT ask_id FROM `+schema+`.answers GROUP BY ask_id HAVING count(*) > 1) d`).Scan(&dupAnswers))
	require.Zero(t, dupAnswers)
	var unanswered int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.asks a JOIN `+schema+`.jobs j ON j.id = a.job_id
		WHERE j.state = 'SUCCEEDED' AND a.attempt = j.attempt AND a.status <> 'ANSWERED'`).Scan(&unanswered))
	require.Zero(t, unanswered, "every ask of a successful attempt was answered")
	var pendingLeft int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.asks WHERE status = 'PENDING'`).Scan(&pendingLeft))
	require.Zero(t, pendingLeft, "no ask is left pending once every job ended")
	rows, err := conn.Query(ctx, `SELECT a.job_id, a.attempt, a.ask_id, n.answer_text FROM `+schema+`.asks a
		JOIN `+schema+`.jobs j ON j.id = a.job_id JOIN `+schema+`.answers n ON n.ask_id = a.ask_id
		WHERE j.state = 'SUCCEEDED' AND a.attempt = j.attempt`)
	require.NoError(t, err)
	checked := 0
	for rows.Next() {
		var job, askID, text string
		var attempt int
		require.NoError(t, rows.Scan(&job, &attempt, &askID, &text))
		require.Equal(t, "word-"+askID, text)
		require.Equal(t, text, got[fmt.Sprintf("%s %d", job, attempt)], "the executor of %s attempt %d got its answer", job, attempt)
		checked++
	}
	require.NoError(t, rows.Err())
	require.NotZero(t, checked)
	t.Logf("%d answers checked against what the executors got", checked)
}

// checkChaosArtifacts reads every artifact of every successful job through
// a rotating relay and checks it against the stored digest.
func checkChaosArtifacts(t *testing.T, conn *pgx.Conn, schema string, relays []*clusterRelay, pick func(int) *clusterRelay) {
	t.Helper()
	for _, r := range relays {
		if r.pid() == 0 {
			r.start(t)
		}
	}
	rows, err := conn.Query(context.Background(), `SELECT a.job_id, a.kind, a.digest FROM `+schema+`.artifacts a
		JOIN `+schema+`.jobs j ON j.id = a.job_id WHERE j.state = 'SUCCEEDED' ORDER BY a.job_id, a.kind`)
	require.NoError(t, err)
	type art struct{ job, kind, digest string }
	var arts []art
	for rows.Next() {
		var a art
		require.NoError(t, rows.Scan(&a.job, &a.kind, &a.digest))
		arts = append(arts, a)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, arts)
	for i, a := range arts {
		r := pick(i)
		req, err := http.NewRequest(http.MethodGet, r.origin()+"/jobs/"+a.job+"/artifacts/"+a.kind, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s of %s through %s: %s", a.kind, a.job, r.name, body)
		sum := sha256.Sum256(body)
		require.Equal(t, a.digest, hex.EncodeToString(sum[:]), "%s of %s through %s", a.kind, a.job, r.name)
	}
	t.Logf("%d artifacts checked", len(arts))
}

// TestClusterCancelElsewhere: a job canceled through the relay that does
// not run it stops its executor on the other relay at once (the cancel
// reaches it as a notification, not at its next heartbeat).
func TestClusterCancelElsewhere(t *testing.T) {
	t.Parallel()
	_, _, url := pgSchema(t)
	token := "tro_" + rand.Text()
	dir := t.TempDir()
	repo, base := newRepo(t)
	pidFile := filepath.Join(dir, "executor.pid")
	script := writeScript(t, dir, "slow.sh", fmt.Sprintf("#!/bin/sh\necho $$ > %q\nexec sleep 300\n", pidFile))
	cfg := writeConfig(t, dir, fmt.Sprintf("executors:\n  slow: {kind: command, argv: [%q]}\n", script))
	// The first heartbeat comes a minute after the job starts (where a
	// lost lease would also stop the run): only the notification can stop
	// the executor within the test's 8 s.
	a := newClusterRelay(t, "a", url, token, "  leaseTtlSec: 120\n  heartbeatIntervalSec: 60\n")
	b := newClusterRelay(t, "b", url, token, "  leaseTtlSec: 120\n  heartbeatIntervalSec: 60\n")
	a.start(t)
	b.start(t)
	jobID := callTool(t, a.session(t, cfg), "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "cluster-cancel")})["jobId"].(string)

	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		_, err = fmt.Sscan(strings.TrimSpace(string(b)), &pid)
		return err == nil && pid > 0
	}, 60*time.Second, 20*time.Millisecond, "the executor starts")
	var detail struct{ Job jobView }
	_, err := a.do(http.MethodGet, "/jobs/"+jobID, nil, &detail)
	require.NoError(t, err)
	other := a
	if strings.Contains(detail.Job.LeaseOwner, fmt.Sprintf(":%d:", a.pid())) {
		other = b
	}
	code, err := other.do(http.MethodPost, "/jobs/"+jobID+"/cancel", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return !pidExists(pid) }, 8*time.Second, 20*time.Millisecond,
		"the executor on the running relay is stopped by a cancel made through %s", other.name)
	_, err = a.do(http.MethodGet, "/jobs/"+jobID, nil, &detail)
	require.NoError(t, err)
	require.Equal(t, "CANCELED", detail.Job.State)
}
