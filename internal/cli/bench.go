package cli

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

func newBench() *cobra.Command {
	var (
		jobs, dispatchN, coldN, concurrency, pipelineN, asksN int
		storage, pgURL                                        string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure cold start (standalone and front), the size of tools/list and the instructions, submit and dispatch latency, and queue throughput",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			dir, err := os.MkdirTemp("", "mcp-task-relay-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			host, _ := os.Hostname()
			fmt.Fprintf(out, "machine: %s, %s/%s, %d CPUs, %s\n", host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
			switch storage {
			case "sqlite":
			case "postgres":
				return benchPostgres(cmd, pgURL, jobs, dispatchN, asksN, concurrency)
			default:
				return fmt.Errorf("--storage: must be sqlite or postgres, got %q", storage)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cold, rss, err := bench.ColdStart(ctx, self, dir, coldN)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, cold)
			fmt.Fprintf(out, "%-34s %.1f MiB\n", "idle RSS after initialize (p50)", float64(rss)/(1<<20))
			size, err := bench.ContextCost(ctx, self, dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, size)
			front, frontRSS, err := bench.FrontStart(ctx, self, dir, coldN)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, front)
			fmt.Fprintf(out, "%-34s %.1f MiB\n", "idle front RSS (p50)", float64(frontRSS)/(1<<20))
			q, err := bench.NewQueue(ctx, dir, 3)
			if err != nil {
				return err
			}
			submit, dispatch, err := q.Dispatch(ctx, dispatchN)
			q.Close()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, submit)
			fmt.Fprintln(out, dispatch)
			wake, round, err := bench.AskWake(ctx, asksN)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, bench.Summarize("answer → parked waiter wake-up", wake))
			fmt.Fprintln(out, bench.Summarize("ask round trip (HTTP)", round))
			tp, err := bench.Throughput(ctx, dir, jobs, concurrency)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, tp)
			if pipelineN > 0 {
				pr, err := bench.Pipeline(ctx, dir, self, pipelineN, concurrency)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, pr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&storage, "storage", "sqlite", "sqlite: the single-relay runs; postgres: relays sharing one PostgreSQL database (throughput with 1 and 3 relays, submit on one relay → start on another, cross-relay answer wake-up)")
	cmd.Flags().StringVar(&pgURL, "postgres-url", "", "database for --storage postgres (default $TASK_RELAY_POSTGRES_URL); runs use fresh schemas they drop")
	cmd.Flags().IntVar(&jobs, "jobs", 5000, "no-op jobs for the throughput run")
	cmd.Flags().IntVar(&dispatchN, "dispatch", 500, "jobs for the latency run")
	cmd.Flags().IntVar(&coldN, "cold", 20, "cold starts to time")
	cmd.Flags().IntVar(&asksN, "asks", 1000, "asks for the answer wake-up and round-trip runs")
	cmd.Flags().IntVar(&concurrency, "concurrency", 8, "workers for the throughput runs")
	cmd.Flags().IntVar(&pipelineN, "pipeline", 100, "real jobs (git worktree, shell executor, patch) for the full-pipeline run; 0 skips it")
	return cmd
}

// benchPostgres runs the benchmarks of relays sharing one PostgreSQL
// database.
func benchPostgres(cmd *cobra.Command, url string, jobs, dispatchN, asksN, concurrency int) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
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
	for _, n := range []int{1, 3} {
		tp, err := pg.Throughput(ctx, n, jobs, concurrency)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, tp)
	}
	submit, dispatch, err := pg.Dispatch(ctx, dispatchN)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, submit)
	fmt.Fprintln(out, dispatch)
	wake, err := pg.AskWake(ctx, asksN)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, bench.Summarize("answer on A → waiter on B wake-up", wake))
	return nil
}
