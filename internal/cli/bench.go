package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

// benchOptions are the flags of `mcp-task-relay bench`.
type benchOptions struct {
	storage, pgURL                                                     string
	jobs, dispatchN, coldN, concurrency, pipelineN, asksN, soakN, runs int
	markdown                                                           bool
}

// benchStep is one measurement of a run: it returns its figures.
type benchStep struct {
	name string
	run  func(ctx context.Context) ([]bench.Figure, error)
}

func newBench() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure cold start (standalone and front), the size of tools/list and the instructions, submit and dispatch latency, the ask API, queue throughput and the full pipeline, phase by phase",
		Long: `Measure the relay (see docs/BENCHMARKS.md). Every measurement is repeated
--runs times; the output gives each figure's minimum, median and maximum
over the runs (--markdown: as a markdown table), with the load average of
the machine before and after.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.storage, "storage", "sqlite", "sqlite: the single-relay runs; postgres: relays sharing one PostgreSQL database (throughput with 1 and 3 relays, submit on one relay → start on another, cross-relay answer wake-up)")
	cmd.Flags().StringVar(&o.pgURL, "postgres-url", "", "database for --storage postgres (default $TASK_RELAY_POSTGRES_URL); runs use fresh schemas they drop")
	cmd.Flags().IntVar(&o.jobs, "jobs", 5000, "no-op jobs for the throughput run")
	cmd.Flags().IntVar(&o.dispatchN, "dispatch", 500, "jobs for the latency run")
	cmd.Flags().IntVar(&o.coldN, "cold", 20, "cold starts (standalone and front) to time; 0 skips them and the tools/list size")
	cmd.Flags().IntVar(&o.asksN, "asks", 1000, "asks for the answer wake-up and round-trip runs")
	cmd.Flags().IntVar(&o.concurrency, "concurrency", 8, "workers for the throughput runs (no-op and full pipeline)")
	cmd.Flags().IntVar(&o.soakN, "soak", 500, "real jobs submitted over MCP to a relay process (standalone, SQLite file, a shell executor) before its idle memory is read again; 0 skips it")
	cmd.Flags().IntVar(&o.pipelineN, "pipeline", 100, "real jobs (git worktree, shell executor through the shim, patch) for each full-pipeline run: one at a time for submit → executor process start and the phases, then with --concurrency workers for throughput; 0 skips them")
	cmd.Flags().IntVar(&o.runs, "runs", 3, "times each measurement is repeated; each figure is shown as min/median/max over the runs")
	cmd.Flags().BoolVar(&o.markdown, "markdown", false, "print the figures as a markdown table (for docs/BENCHMARKS.md)")
	return cmd
}

// runBench checks o, runs the measurements o.runs times and writes the
// table of their figures to out.
func runBench(ctx context.Context, out io.Writer, o benchOptions) error {
	if o.runs < 1 {
		return fmt.Errorf("--runs: must be at least 1, got %d", o.runs)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"--jobs", o.jobs}, {"--dispatch", o.dispatchN}, {"--asks", o.asksN}, {"--concurrency", o.concurrency}} {
		if f.n < 1 {
			return fmt.Errorf("%s: must be at least 1, got %d", f.name, f.n)
		}
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"--cold", o.coldN}, {"--pipeline", o.pipelineN}, {"--soak", o.soakN}} {
		if f.n < 0 {
			return fmt.Errorf("%s: must not be negative, got %d", f.name, f.n)
		}
	}
	dir, err := os.MkdirTemp("", "mcp-task-relay-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var steps []benchStep
	switch o.storage {
	case "sqlite":
		steps = sqliteSteps(o, self, dir)
	case "postgres":
		url := o.pgURL
		if url == "" {
			url = os.Getenv("TASK_RELAY_POSTGRES_URL")
		}
		if url == "" {
			return fmt.Errorf("--postgres-url: required with --storage postgres (or set TASK_RELAY_POSTGRES_URL)")
		}
		pg, err := bench.NewPostgres(ctx, url)
		if err != nil {
			return err
		}
		defer pg.Close()
		steps = postgresSteps(o, pg)
	default:
		return fmt.Errorf("--storage: must be sqlite or postgres, got %q", o.storage)
	}
	host, _ := os.Hostname()
	header := fmt.Sprintf("machine: %s, %s/%s, %d CPUs, %s; %s; storage %s, %d run(s)",
		host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), o.storage, o.runs)
	prefix := ""
	if o.markdown {
		prefix = "- "
	}
	fmt.Fprintf(out, "%s%s\n%sload average before: %s\n", prefix, header, prefix, loadAverage())
	var table bench.Table
	for run := 1; run <= o.runs; run++ {
		for _, s := range steps {
			figures, err := s.run(ctx)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, s.name, err)
			}
			table.Add(figures...)
		}
	}
	fmt.Fprintf(out, "%sload average after: %s\n", prefix, loadAverage())
	if o.markdown {
		fmt.Fprintln(out)
	}
	return table.Write(out, o.markdown)
}

// sqliteSteps are the measurements of one run of the single relay.
func sqliteSteps(o benchOptions, self, dir string) []benchStep {
	var steps []benchStep
	if o.coldN > 0 {
		steps = append(steps,
			benchStep{"cold start", func(ctx context.Context) ([]bench.Figure, error) {
				cold, mem, err := bench.ColdStart(ctx, self, dir, o.coldN)
				return append(cold.Figures(), mib("idle RSS after initialize (median)", mem.RSS),
					mib("idle private memory after initialize (median)", mem.Private)), err
			}},
			benchStep{"context size", func(ctx context.Context) ([]bench.Figure, error) {
				size, err := bench.ContextCost(ctx, self, dir)
				return size.Figures(), err
			}},
			benchStep{"front start", func(ctx context.Context) ([]bench.Figure, error) {
				front, mem, err := bench.FrontStart(ctx, self, dir, o.coldN)
				return append(front.Figures(), mib("idle front RSS (median)", mem.RSS),
					mib("idle front private memory (median)", mem.Private)), err
			}})
	}
	steps = append(steps,
		benchStep{"dispatch", func(ctx context.Context) ([]bench.Figure, error) {
			qdir, err := os.MkdirTemp(dir, "queue-")
			if err != nil {
				return nil, err
			}
			q, err := bench.NewQueue(ctx, qdir, 3)
			if err != nil {
				return nil, err
			}
			submit, dispatch, err := q.Dispatch(ctx, o.dispatchN)
			q.Close()
			return append(submit.Figures(), dispatch.Figures()...), err
		}},
		benchStep{"asks", func(ctx context.Context) ([]bench.Figure, error) {
			wake, round, err := bench.AskWake(ctx, o.asksN)
			return append(bench.Summarize("answer → parked waiter wake-up", wake).Figures(),
				bench.Summarize("ask round trip (HTTP)", round).Figures()...), err
		}},
		benchStep{"throughput", func(ctx context.Context) ([]bench.Figure, error) {
			tp, err := bench.Throughput(ctx, dir, o.jobs, o.concurrency)
			return tp.Figures(), err
		}})
	if o.pipelineN > 0 {
		workers := []int{1}
		if o.concurrency > 1 {
			workers = append(workers, o.concurrency)
		}
		for _, conc := range workers {
			steps = append(steps, benchStep{fmt.Sprintf("full pipeline, %d worker(s)", conc), func(ctx context.Context) ([]bench.Figure, error) {
				run, err := bench.Pipeline(ctx, bench.PipelineConfig{Dir: dir, Shim: self, Jobs: o.pipelineN, Concurrency: conc})
				if err != nil {
					return nil, err
				}
				if conc > 1 {
					return run.Throughput.Figures(), nil
				}
				return run.Figures(), nil
			}})
		}
	}
	if o.soakN > 0 {
		steps = append(steps, benchStep{"soak", func(ctx context.Context) ([]bench.Figure, error) {
			soak, err := bench.RunSoak(ctx, self, dir, o.soakN)
			name := fmt.Sprintf("after %d jobs over MCP", soak.Jobs)
			return []bench.Figure{mib("idle RSS "+name, soak.After.RSS), mib("idle private memory "+name, soak.After.Private)}, err
		}})
	}
	return steps
}

// postgresSteps are the measurements of one run of relays sharing one
// PostgreSQL database.
func postgresSteps(o benchOptions, pg *bench.Postgres) []benchStep {
	var steps []benchStep
	for _, n := range []int{1, 3} {
		steps = append(steps, benchStep{fmt.Sprintf("throughput, %d relay(s)", n), func(ctx context.Context) ([]bench.Figure, error) {
			tp, err := pg.Throughput(ctx, n, o.jobs, o.concurrency)
			return tp.Figures(), err
		}})
	}
	return append(steps,
		benchStep{"dispatch", func(ctx context.Context) ([]bench.Figure, error) {
			submit, dispatch, err := pg.Dispatch(ctx, o.dispatchN)
			return append(submit.Figures(), dispatch.Figures()...), err
		}},
		benchStep{"cross-relay wake", func(ctx context.Context) ([]bench.Figure, error) {
			wake, err := pg.AskWake(ctx, o.asksN)
			return bench.Summarize("answer on A → waiter on B wake-up", wake).Figures(), err
		}})
}

// mib is a figure of bytes in MiB.
func mib(name string, bytes int64) bench.Figure {
	return bench.Figure{Name: name, Unit: "MiB", Value: float64(bytes) / (1 << 20)}
}

// loadAverage returns the system's load averages (1, 5, 15 minutes), or
// "unknown" where /proc/loadavg does not exist.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}
