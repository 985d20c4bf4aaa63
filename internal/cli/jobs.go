package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/answer"
	"github.com/mcp-task-relay/mcp-task-relay/internal/app"
	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Exit codes of the jobs and asks commands.
const (
	jobsExitFailed = 1 // the relay refused, is not running, or git failed
	jobsExitUsage  = 2 // bad flags or arguments, or a broken config
)

// jobsEnv is what the jobs and asks commands read from their process.
// Tests inject their own instead of changing the process environment.
type jobsEnv struct {
	// lookup reads TASK_RELAY_CONFIG_DIR, TASK_RELAY_DATA_DIR,
	// TASK_RELAY_API_TOKEN, HOME and the other variables config.Load reads.
	lookup func(string) (string, bool)
	// httpClient defaults to http.DefaultClient.
	httpClient *http.Client
}

// jobsFail returns err as a runtime failure (exit 1).
func jobsFail(err error) error { return &exitError{code: jobsExitFailed, err: err} }

// jobsUsage returns err as a usage error (exit 2).
func jobsUsage(err error) error { return &exitError{code: jobsExitUsage, err: err} }

// serviceFlags are the persistent flags of jobs and asks that say where
// the relay service is.
type serviceFlags struct {
	url, token, configDir string
}

func (f *serviceFlags) register(cmd *cobra.Command) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.url, "url", "", "base `URL` of the relay's HTTP API (default: the origin of the running service)")
	p.StringVar(&f.token, "token", "", "operator bearer `TOKEN` (default: $TASK_RELAY_API_TOKEN, else the service's api-token file)")
	p.StringVar(&f.configDir, "config-dir", "", "directory with config.yaml (env TASK_RELAY_CONFIG_DIR; default ./.mcp-task-relay)")
}

// session is one command's view of the relay service: the config (loaded
// on first use) and the API client.
type session struct {
	env   jobsEnv
	flags *serviceFlags
	cfg   *config.Config
}

// config loads the configuration as serve does, once.
func (s *session) config() (*config.Config, error) {
	if s.cfg != nil {
		return s.cfg, nil
	}
	var o config.Overrides
	if s.flags.configDir != "" {
		o.ConfigDir = &s.flags.configDir
	}
	cfg, err := config.Load(o, s.env.lookup)
	if err != nil {
		return nil, jobsUsage(err)
	}
	s.cfg = cfg
	return cfg, nil
}

// client finds the relay: --url, else the origin the running service
// published in its data directory; --token, else the operator token.
func (s *session) client() (*apiClient, error) {
	c := &apiClient{base: strings.TrimRight(strings.TrimSpace(s.flags.url), "/"), token: strings.TrimSpace(s.flags.token), http: s.env.httpClient}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.base != "" {
		u, err := url.Parse(c.base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, jobsUsage(fmt.Errorf("--url: want http://HOST:PORT or https://HOST:PORT, not %q", s.flags.url))
		}
	}
	if c.base != "" && c.token != "" {
		return c, nil
	}
	cfg, err := s.config()
	if err != nil {
		return nil, err
	}
	if c.base == "" {
		info, err := app.ReadServiceInfo(cfg.DataDir)
		if err != nil {
			return nil, jobsFail(err)
		}
		if info.Origin == "" {
			return nil, jobsFail(fmt.Errorf("%w: the service of data dir %s (pid %d) publishes no HTTP origin; restart it with `mcp-task-relay daemon start`", app.ErrNoService, cfg.DataDir, info.PID))
		}
		c.base, c.fromService = strings.TrimRight(info.Origin, "/"), true
	}
	if c.token == "" {
		// LoadOperatorToken writes a new token when there is none; a
		// client must not invent one the service does not know.
		if v, ok := s.env.lookup("TASK_RELAY_API_TOKEN"); !ok || strings.TrimSpace(v) == "" {
			if _, err := os.Stat(filepath.Join(cfg.DataDir, ask.OperatorTokenFile)); err != nil {
				return nil, jobsUsage(fmt.Errorf("no operator token: pass --token, set TASK_RELAY_API_TOKEN, or start the service (`mcp-task-relay daemon start`), which writes %s",
					filepath.Join(cfg.DataDir, ask.OperatorTokenFile)))
			}
		}
		tok, err := ask.LoadOperatorToken(cfg.DataDir, s.env.lookup)
		if err != nil {
			return nil, jobsFail(fmt.Errorf("operator token: %w", err))
		}
		c.token = tok
	}
	return c, nil
}

// apiError is an error response of the relay's HTTP API.
type apiError struct {
	Status  int                 `json:"-"`
	Code    relaytype.ErrorCode `json:"code"`
	Message string              `json:"message"`
	Field   string              `json:"field,omitempty"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// apiClient calls the relay's HTTP API with the operator token.
type apiClient struct {
	base, token string
	http        *http.Client
	// fromService is set when base came from the service's published
	// info: a refused connection then means the service is gone.
	fromService bool
}

// do sends a request and returns a 2xx response, or the API's error.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body any, header map[string]string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("relay request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if c.fromService && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %s does not answer (%v); start it with `mcp-task-relay daemon start`", app.ErrNoService, c.base, err)
		}
		return nil, fmt.Errorf("relay %s: %w", c.base, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(raw, e) != nil || e.Code == "" {
		e.Code = "HTTP_ERROR"
		e.Message = strings.TrimSpace(string(raw))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return nil, e
}

// call sends a request and returns the JSON body, decoded into out when
// out is not nil.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body, out any) ([]byte, error) {
	resp, err := c.do(ctx, method, path, query, body, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return raw, nil
}

// artifact downloads one artifact of a job and checks it against the
// digest the relay sends with it.
func (c *apiClient) artifact(ctx context.Context, jobID string, kind relaytype.ArtifactKind) ([]byte, string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/jobs/"+url.PathEscape(jobID)+"/artifacts/"+string(kind), nil, nil, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read %s of %s: %w", kind, jobID, err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if want := resp.Header.Get(httpapi.HeaderContentSHA256); want != "" && !strings.EqualFold(want, digest) {
		return nil, "", fmt.Errorf("%s of %s: received SHA-256 %s, the relay says %s", kind, jobID, digest, want)
	}
	return data, digest, nil
}

func (c *apiClient) job(ctx context.Context, id string) (*httpapi.JobDetail, []byte, error) {
	var d httpapi.JobDetail
	raw, err := c.call(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id), nil, nil, &d)
	if err != nil {
		return nil, nil, err
	}
	return &d, raw, nil
}

// writeRaw writes a JSON body as received, ending in a newline.
func writeRaw(w io.Writer, raw []byte) error {
	raw = bytes.TrimRight(raw, "\n")
	_, err := w.Write(append(raw, '\n'))
	return err
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeRaw(w, raw)
}

// usageArgs wraps a cobra argument check so that its errors exit 2.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return jobsUsage(err)
		}
		return nil
	}
}

// group returns a parent command that only holds subcommands: an unknown
// subcommand is a usage error, none prints help.
func group(use, short, long string, flags *serviceFlags, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return jobsUsage(fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()))
			}
			return cmd.Help()
		},
	}
	flags.register(cmd)
	cmd.AddCommand(subs...)
	for _, c := range append(subs, cmd) {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return jobsUsage(err) })
	}
	return cmd
}

func newJobs() *cobra.Command { return newJobsWith(jobsEnv{lookup: os.LookupEnv}) }

func newJobsWith(env jobsEnv) *cobra.Command {
	flags := &serviceFlags{}
	s := &session{env: env, flags: flags}
	return group("jobs", "List, inspect, cancel and apply the relay's jobs",
		`jobs talks to the running relay service (see mcp-task-relay daemon start):
it finds the service's HTTP API and operator token in the data directory of
the config (as serve resolves it), unless --url and --token say otherwise.
Every subcommand takes --json to print the API's JSON instead of text.`,
		flags,
		newJobsList(s), newJobsShow(s), newJobsLogs(s), newJobsDiff(s), newJobsCancel(s), newJobsApply(s))
}

func newJobsList(s *session) *cobra.Command {
	var (
		state       string
		allProjects bool
		limit       int
		offset      int
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "list [--state S] [--all-projects] [--limit N]",
		Short: "List jobs, newest first (by default only this project's)",
		Long: `list shows jobs newest first: by default those submitted from this project
(its config directory, --config-dir or TASK_RELAY_CONFIG_DIR or
./.mcp-task-relay), with --all-projects every project's.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st := relaytype.JobState(strings.ToUpper(strings.TrimSpace(state)))
			if st != "" && !st.Valid() {
				return jobsUsage(fmt.Errorf("--state: must be one of %s, not %q", joinStates(), state))
			}
			if limit < 1 || limit > httpapi.MaxJobsLimit {
				return jobsUsage(fmt.Errorf("--limit: must be from 1 to %d, not %d", httpapi.MaxJobsLimit, limit))
			}
			if offset < 0 {
				return jobsUsage(fmt.Errorf("--offset: must not be negative, not %d", offset))
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if offset > 0 {
				q.Set("offset", strconv.Itoa(offset))
			}
			if st != "" {
				q.Set("state", string(st))
			}
			project := ""
			if !allProjects {
				cfg, err := s.config()
				if err != nil {
					return err
				}
				project = cfg.ConfigDir
				q.Set("project", project)
			}
			c, err := s.client()
			if err != nil {
				return err
			}
			var l httpapi.JobList
			raw, err := c.call(cmd.Context(), http.MethodGet, "/jobs", q, nil, &l)
			if err != nil {
				return jobsFail(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeRaw(out, raw)
			}
			return printJobList(out, &l, project, offset, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only jobs in state `S`: "+strings.ToLower(joinStates()))
	f.BoolVar(&allProjects, "all-projects", false, "list the jobs of every project")
	f.IntVar(&limit, "limit", httpapi.DefaultJobsLimit, fmt.Sprintf("at most `N` jobs (1 to %d)", httpapi.MaxJobsLimit))
	f.IntVar(&offset, "offset", 0, "skip the `N` newest jobs")
	f.BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}

func joinStates() string {
	names := make([]string, len(relaytype.AllStates))
	for i, s := range relaytype.AllStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// printJobList writes the compact table of jobs list.
func printJobList(w io.Writer, l *httpapi.JobList, project string, offset int, now time.Time) error {
	if len(l.Items) == 0 {
		msg := "no jobs"
		if project != "" {
			msg += " in project " + project + " (--all-projects lists every project's)"
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tAGE\tEXECUTOR\tTITLE")
	for _, j := range l.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, age(now, j.CreatedAt), j.Executor, oneLine(j.Spec.Task.Title, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.HasMore {
		_, err := fmt.Fprintf(w, "(%d to %d of %d; --offset %d for more)\n", offset+1, offset+len(l.Items), l.Total, offset+len(l.Items))
		return err
	}
	return nil
}

// age renders how long ago t was: 45s, 12m, 3h, 5d.
func age(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// oneLine collapses whitespace and cuts s to at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// sizeOf renders a byte count: 512 B, 3.4 KiB, 1.2 MiB.
func sizeOf(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

func newJobsShow(s *session) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a job: state, reason, summary, attempts, usage and artifacts",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s.client()
			if err != nil {
				return err
			}
			d, raw, err := c.job(cmd.Context(), args[0])
			if err != nil {
				return jobsFail(err)
			}
			if asJSON {
				return writeRaw(cmd.OutOrStdout(), raw)
			}
			return printJob(cmd.OutOrStdout(), d, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON ({\"job\": …, \"artifacts\": […]})")
	return cmd
}

// printJob writes the text of jobs show.
func printJob(w io.Writer, d *httpapi.JobDetail, now time.Time) error {
	j := d.Job
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	when := func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339) + " (" + age(now, *t) + " ago)"
	}
	row("job", j.ID)
	row("state", string(j.State))
	row("reason", string(j.ReasonCode))
	row("summary", oneLine(j.Summary, 500))
	row("title", j.Spec.Task.Title)
	row("project", j.Project)
	repo := j.Spec.Repo.Path
	if j.Spec.Repo.Type == "git" {
		repo = j.Spec.Repo.URL
	}
	row("repo", repo)
	row("baseline", j.BaselineCommit)
	row("executor", j.Executor)
	row("attempts", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	row("priority", string(j.Priority))
	row("parent", j.ParentJobID)
	row("session", j.SessionID)
	row("created", when(&j.CreatedAt))
	row("started", when(j.StartedAt))
	row("finished", when(j.FinishedAt))
	u := j.Usage
	usage := fmt.Sprintf("%d input, %d output tokens", u.InputTokens, u.OutputTokens)
	if u.CachedInputTokens > 0 {
		usage += fmt.Sprintf(" (%d cached)", u.CachedInputTokens)
	}
	if u.CostUSD > 0 {
		usage += fmt.Sprintf(", $%.4f", u.CostUSD)
	}
	row("usage", usage)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Artifacts) == 0 {
		_, err := fmt.Fprintln(w, "artifacts: none")
		return err
	}
	fmt.Fprintln(w, "artifacts:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  KIND\tSIZE\tSHA-256")
	for _, a := range d.Artifacts {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.Kind, sizeOf(a.Size), a.Digest)
	}
	return tw.Flush()
}

// artifactView is the --json output of the commands that print an
// artifact (diff, and logs of an ended job).
type artifactView struct {
	JobID  string                 `json:"jobId"`
	State  relaytype.JobState     `json:"state,omitempty"`
	Kind   relaytype.ArtifactKind `json:"kind"`
	Digest string                 `json:"digest"`
	Size   int                    `json:"size"`
	Text   string                 `json:"text"`
}

func newJobsDiff(s *session) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff ID",
		Short: "Print a job's patch.diff",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s.client()
			if err != nil {
				return err
			}
			data, digest, err := c.artifact(cmd.Context(), args[0], relaytype.ArtifactPatch)
			if err != nil {
				return jobsFail(err)
			}
			if asJSON {
				return writeJSONLine(cmd.OutOrStdout(), artifactView{JobID: args[0], Kind: relaytype.ArtifactPatch,
					Digest: digest, Size: len(data), Text: string(data)})
			}
			if len(data) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "job %s: empty patch\n", args[0])
				return nil
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"jobId","kind","digest","size","text"}`)
	return cmd
}

func newJobsCancel(s *session) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job (a running executor is killed)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s.client()
			if err != nil {
				return err
			}
			var res httpapi.CancelResult
			raw, err := c.call(cmd.Context(), http.MethodPost, "/jobs/"+url.PathEscape(args[0])+"/cancel", nil, nil, &res)
			if err != nil {
				return jobsFail(err)
			}
			if asJSON {
				return writeRaw(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s: %s\n", res.JobID, res.State)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the API's JSON ({"ok","jobId","state"})`)
	return cmd
}

func newJobsLogs(s *session) *cobra.Command {
	var follow, asJSON bool
	cmd := &cobra.Command{
		Use:   "logs ID [-f]",
		Short: "Print a job's executor output; -f follows it until the job ends",
		Long: `logs prints logs.txt of a job that has ended. For a job that has not, it
prints the output streamed so far, and with -f keeps printing it as it
arrives until the job ends.

With --json: an ended job's logs.txt as {"jobId","state","kind","digest",
"size","text"}; a running job's output so far as {"jobId","state","text",
"lastEventId"}; with -f, every event of the job's audit log as one JSON
line each.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s.client()
			if err != nil {
				return err
			}
			if err := jobLogs(cmd, c, args[0], follow, asJSON); err != nil {
				return jobsFail(err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output until the job ends")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see above)")
	return cmd
}

func jobLogs(cmd *cobra.Command, c *apiClient, id string, follow, asJSON bool) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	d, _, err := c.job(ctx, id)
	if err != nil {
		return err
	}
	id = d.Job.ID
	if d.Job.State.Terminal() {
		data, digest, err := c.artifact(ctx, id, relaytype.ArtifactLogs)
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == relaytype.CodeArtifactNotFound {
			// Ended before its executor ran (canceled, expired): only
			// what was streamed, if anything.
			return printLogSoFar(ctx, c, out, id, asJSON)
		}
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSONLine(out, artifactView{JobID: id, State: d.Job.State, Kind: relaytype.ArtifactLogs,
				Digest: digest, Size: len(data), Text: string(data)})
		}
		_, err = out.Write(data)
		return err
	}
	if !follow {
		return printLogSoFar(ctx, c, out, id, asJSON)
	}
	return followLog(ctx, c, out, cmd.ErrOrStderr(), id, asJSON)
}

// printLogSoFar prints the output a job streamed so far.
func printLogSoFar(ctx context.Context, c *apiClient, out io.Writer, id string, asJSON bool) error {
	var l httpapi.JobLog
	raw, err := c.call(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/log", nil, nil, &l)
	if err != nil {
		return err
	}
	if asJSON {
		return writeRaw(out, raw)
	}
	_, err = io.WriteString(out, l.Text)
	return err
}

// sseMessage is one Server-Sent Event.
type sseMessage struct {
	id, event, data string
}

// readSSE calls fn for every event of an event stream until the stream
// ends, fn returns done or an error.
func readSSE(r io.Reader, fn func(sseMessage) (done bool, err error)) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var ev sseMessage
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if ev.event != "" || len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				if done, err := fn(ev); done || err != nil {
					return done, err
				}
			}
			ev, data = sseMessage{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "id":
			ev.id = v
		case "event":
			ev.event = v
		case "data":
			data = append(data, v)
		}
	}
	return false, sc.Err()
}

// followLog streams a job's events (GET /jobs/{id}/events) from the start,
// printing the text of "log" events, until a transition to a terminal
// state. A dropped stream is resumed after the last event seen.
func followLog(ctx context.Context, c *apiClient, out, errOut io.Writer, id string, asJSON bool) error {
	last := "0"
	const maxRetries = 5
	for retries := 0; ; {
		resp, err := c.do(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/events", nil, nil,
			map[string]string{"Accept": "text/event-stream", "Last-Event-ID": last})
		var done bool
		if err == nil {
			done, err = readSSE(resp.Body, func(ev sseMessage) (bool, error) {
				switch ev.event {
				case "connected", "heartbeat":
					return false, nil
				}
				retries = 0
				if ev.id != "" {
					last = ev.id
				}
				var e relaytype.Event
				if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
					return false, fmt.Errorf("event %s: %w", ev.id, err)
				}
				if asJSON {
					if err := writeRaw(out, []byte(ev.data)); err != nil {
						return false, err
					}
				}
				switch e.Type {
				case relaytype.EventLog:
					var p struct {
						Text string `json:"text"`
					}
					if err := json.Unmarshal(e.Payload, &p); err != nil {
						return false, fmt.Errorf("log event %d: %w", e.ID, err)
					}
					if !asJSON {
						if _, err := io.WriteString(out, p.Text); err != nil {
							return false, err
						}
					}
				case relaytype.EventTransition, relaytype.EventSubmitted:
					var p relaytype.TransitionPayload
					if err := json.Unmarshal(e.Payload, &p); err != nil {
						return false, fmt.Errorf("transition event %d: %w", e.ID, err)
					}
					if !asJSON && p.To != "" && p.To != relaytype.StateRunning && p.To != relaytype.StateQueued {
						fmt.Fprintf(errOut, "mcp-task-relay: job %s is %s\n", id, p.To)
					}
					if p.To.Terminal() {
						return true, nil
					}
				}
				return false, nil
			})
			resp.Body.Close()
		}
		if done || ctx.Err() != nil {
			return ctx.Err()
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return err
		}
		// The stream ended early (the service restarting): resume it.
		retries++
		if retries > maxRetries {
			if err == nil {
				err = errors.New("event stream ended")
			}
			return fmt.Errorf("follow job %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(retries) * 500 * time.Millisecond):
		}
	}
}

func newJobsApply(s *session) *cobra.Command {
	var (
		dir    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "apply ID [--dir D]",
		Short: "Apply a job's patch.diff to this git checkout (three-way)",
		Long: `apply applies a job's patch.diff to the git checkout of the current directory
(or --dir) with git apply --3way, which stages the changes in the index.

Nothing is changed when the patch touches a file with uncommitted changes
(commit or stash them first), when it does not apply, or when it would leave
conflicts: the message names the files, or gives git's reason.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				wd, err := os.Getwd()
				if err != nil {
					return jobsFail(fmt.Errorf("working directory: %w", err))
				}
				dir = wd
			}
			c, err := s.client()
			if err != nil {
				return err
			}
			if err := applyJob(cmd, c, args[0], dir, asJSON); err != nil {
				return jobsFail(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the git checkout to apply to (default: the current directory)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"jobId","dir","files","applied"}`)
	return cmd
}

// applyResult is the --json output of jobs apply.
type applyResult struct {
	JobID   string   `json:"jobId"`
	Dir     string   `json:"dir"`
	Files   []string `json:"files"`
	Applied bool     `json:"applied"`
}

var conflictRE = regexp.MustCompile(`(?m)^Applied patch to '(.+)' with conflicts\.$`)

func applyJob(cmd *cobra.Command, c *apiClient, id, dir string, asJSON bool) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	top, _, err := runGit(ctx, dir, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("--dir %s is not a git checkout: %w", dir, err)
	}
	top = strings.TrimSpace(top)
	d, _, err := c.job(ctx, id)
	if err != nil {
		return err
	}
	id = d.Job.ID
	if !slices.ContainsFunc(d.Artifacts, func(a *relaytype.Artifact) bool { return a.Kind == relaytype.ArtifactPatch }) {
		return fmt.Errorf("job %s is %s and has no patch.diff to apply", id, d.Job.State)
	}
	patch, _, err := c.artifact(ctx, id, relaytype.ArtifactPatch)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(patch)) == 0 {
		if asJSON {
			return writeJSONLine(out, applyResult{JobID: id, Dir: top, Files: []string{}})
		}
		_, err := fmt.Fprintf(out, "job %s has an empty patch: nothing to apply\n", id)
		return err
	}
	numstat, _, err := runGit(ctx, top, patch, "apply", "--numstat", "-z")
	if err != nil {
		return fmt.Errorf("read the patch of job %s: %w", id, err)
	}
	files := numstatPaths(numstat)
	status, _, err := runGit(ctx, top, nil, "status", "--porcelain", "-z", "--untracked-files=all")
	if err != nil {
		return fmt.Errorf("git status in %s: %w", top, err)
	}
	dirty := porcelainPaths(status)
	var clash []string
	for _, f := range files {
		if dirty[f] {
			clash = append(clash, f)
		}
	}
	if len(clash) > 0 {
		return fmt.Errorf("refusing to apply job %s to %s: the patch touches files with uncommitted changes: %s (commit or stash them first; nothing was changed)",
			id, top, strings.Join(clash, ", "))
	}
	_, stderr, err := runGit(ctx, top, patch, "apply", "--check", "--3way")
	if err != nil {
		return fmt.Errorf("the patch of job %s does not apply to %s (nothing was changed): %w", id, top, err)
	}
	if m := conflictRE.FindAllStringSubmatch(stderr, -1); len(m) > 0 {
		names := make([]string, len(m))
		for i, g := range m {
			names[i] = g[1]
		}
		return fmt.Errorf("the patch of job %s conflicts with %s in %s; nothing was changed (see it with `mcp-task-relay jobs diff %s`)",
			id, top, strings.Join(names, ", "), id)
	}
	if _, _, err := runGit(ctx, top, patch, "apply", "--3way"); err != nil {
		return fmt.Errorf("apply the patch of job %s to %s: %w", id, top, err)
	}
	if asJSON {
		return writeJSONLine(out, applyResult{JobID: id, Dir: top, Files: files, Applied: true})
	}
	stat, _, err := runGit(ctx, top, patch, "apply", "--stat")
	if err != nil {
		stat = strings.Join(files, "\n") + "\n"
	}
	_, err = fmt.Fprintf(out, "applied job %s to %s (changes staged):\n%s", id, top, stat)
	return err
}

// runGit runs git in dir with stdin, returning stdout and stderr; a
// failure's error carries git's message.
func runGit(ctx context.Context, dir string, stdin []byte, args ...string) (string, string, error) {
	c := exec.CommandContext(ctx, "git", args...)
	c.Dir = dir
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return stdout.String(), stderr.String(), fmt.Errorf("git %s: %w", args[0], err)
		}
		return stdout.String(), stderr.String(), fmt.Errorf("git %s: %s", args[0], strings.Join(strings.Split(msg, "\n"), "; "))
	}
	return stdout.String(), stderr.String(), nil
}

// numstatPaths returns the paths of `git apply --numstat -z` output: for
// a rename both the old and the new path.
func numstatPaths(out string) []string {
	var paths []string
	fields := strings.Split(out, "\x00")
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if f == "" {
			continue
		}
		parts := strings.SplitN(f, "\t", 3)
		if len(parts) < 3 {
			continue
		}
		if parts[2] != "" {
			paths = append(paths, parts[2])
			continue
		}
		// A rename or copy: the old and new paths follow.
		for k := 1; k <= 2 && i+k < len(fields); k++ {
			paths = append(paths, fields[i+k])
		}
		i += 2
	}
	return paths
}

// porcelainPaths returns the set of paths `git status --porcelain -z`
// reports as changed, staged or untracked (both paths of a rename).
func porcelainPaths(out string) map[string]bool {
	paths := map[string]bool{}
	fields := strings.Split(out, "\x00")
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if len(f) < 4 {
			continue
		}
		paths[f[3:]] = true
		if f[0] == 'R' || f[0] == 'C' {
			if i+1 < len(fields) {
				paths[fields[i+1]] = true
			}
			i++
		}
	}
	return paths
}

func newAsks() *cobra.Command { return newAsksWith(jobsEnv{lookup: os.LookupEnv}) }

func newAsksWith(env jobsEnv) *cobra.Command {
	flags := &serviceFlags{}
	s := &session{env: env, flags: flags}
	return group("asks", "List and answer executors' asks",
		`asks lists the questions executors asked (mcp-task-relay ask, sdk.Ask) and
answers them as the operator, through the running relay service.`,
		flags, newAsksList(s), newAsksAnswer(s))
}

// askStatuses are the statuses asks list filters by.
var askStatuses = []relaytype.AnswerStatus{relaytype.StatusPending, relaytype.StatusAnswered,
	relaytype.StatusRejected, relaytype.StatusTimeout, relaytype.StatusError}

func newAsksList(s *session) *cobra.Command {
	var (
		jobID, status string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "list [--job ID] [--status S]",
		Short: "List asks, oldest first",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st := relaytype.AnswerStatus(strings.ToUpper(strings.TrimSpace(status)))
			if st != "" && !slices.Contains(askStatuses, st) {
				return jobsUsage(fmt.Errorf("--status: must be one of PENDING, ANSWERED, REJECTED, TIMEOUT, ERROR, not %q", status))
			}
			q := url.Values{}
			if st != "" {
				q.Set("status", string(st))
			}
			if jobID = strings.TrimSpace(jobID); jobID != "" {
				q.Set("jobId", jobID)
			}
			c, err := s.client()
			if err != nil {
				return err
			}
			var l struct {
				Items []*relaytype.AskRecord `json:"items"`
			}
			raw, err := c.call(cmd.Context(), http.MethodGet, "/asks", q, nil, &l)
			if err != nil {
				return jobsFail(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeRaw(out, raw)
			}
			if len(l.Items) == 0 {
				_, err := fmt.Fprintln(out, "no asks")
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ASK ID\tJOB\tTYPE\tSTATUS\tAGE\tPROMPT")
			for _, a := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.AskID, a.JobID, a.AskType, a.Status, age(now, a.CreatedAt), oneLine(a.Prompt, 60))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&jobID, "job", "", "only the asks of job `ID`")
	f.StringVar(&status, "status", "", "only asks in status `S`: pending, answered, rejected, timeout or error")
	f.BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}

func newAsksAnswer(s *session) *cobra.Command {
	var (
		text, answerJSON, reason string
		approve, reject, asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "answer ASK_ID (--text T | --json J | --approve | --reject [--reason R])",
		Short: "Answer an ask as the operator",
		Long: `answer records the answer to an ask, and the executor that asked goes on.

  --text T     ANSWERED with answer_text T
  --json J     ANSWERED with answer_json J (a JSON value)
  --approve    ANSWERED with answer_json {"approved": true}, as a person
               approving through elicitation does
  --reject     REJECTED, with --reason R as answer_text; the job then fails
               with POLICY

--output-json prints the stored answer record.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			flags := cmd.Flags()
			var given []string
			for name, on := range map[string]bool{"text": flags.Changed("text"), "json": flags.Changed("json"), "approve": approve, "reject": reject} {
				if on {
					given = append(given, "--"+name)
				}
			}
			slices.Sort(given)
			if len(given) != 1 {
				return jobsUsage(fmt.Errorf("give exactly one of --text, --json, --approve, --reject (got %d: %s)", len(given), strings.Join(given, " ")))
			}
			if flags.Changed("reason") && !reject {
				return jobsUsage(errors.New("--reason goes with --reject"))
			}
			a := &relaytype.Answer{Type: "Answer", AskID: strings.TrimSpace(args[0]), Status: relaytype.StatusAnswered,
				Attestation: &relaytype.Attestation{AnsweredBy: answer.AnsweredByHuman}}
			switch {
			case flags.Changed("text"):
				if strings.TrimSpace(text) == "" {
					return jobsUsage(errors.New("--text: must not be empty"))
				}
				a.AnswerText = text
			case flags.Changed("json"):
				raw := bytes.TrimSpace([]byte(answerJSON))
				if !json.Valid(raw) {
					return jobsUsage(fmt.Errorf("--json: not valid JSON: %q", answerJSON))
				}
				a.AnswerJSON = raw
			case approve:
				a.AnswerText = "approved"
				a.AnswerJSON = json.RawMessage(`{"approved":true}`)
			case reject:
				a.Status = relaytype.StatusRejected
				a.AnswerText = strings.TrimSpace(reason)
				if a.AnswerText == "" {
					a.AnswerText = "rejected by the operator"
				}
			}
			c, err := s.client()
			if err != nil {
				return err
			}
			var rec relaytype.AnswerRecord
			raw, err := c.call(cmd.Context(), http.MethodPost, "/answers", nil, a, &rec)
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Code == relaytype.CodeInvalidRequest {
					return jobsUsage(err)
				}
				return jobsFail(err)
			}
			if asJSON {
				return writeRaw(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "ask %s of job %s: %s\n", rec.AskID, rec.JobID, rec.Status)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&text, "text", "", "answer with this text")
	f.StringVar(&answerJSON, "json", "", "answer with this JSON value")
	f.BoolVar(&approve, "approve", false, `approve: answer_json {"approved": true}`)
	f.BoolVar(&reject, "reject", false, "reject the ask (the job fails)")
	f.StringVar(&reason, "reason", "", "why the ask is rejected (with --reject)")
	f.BoolVar(&asJSON, "output-json", false, "print the stored answer record as JSON")
	return cmd
}
