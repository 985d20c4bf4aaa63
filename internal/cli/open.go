package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/dashboard"
)

func newOpen() *cobra.Command { return newOpenWith(jobsEnv{lookup: os.LookupEnv}) }

func newOpenWith(env jobsEnv) *cobra.Command {
	flags := &serviceFlags{}
	s := &session{env: env, flags: flags}
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "open [--no-browser]",
		Short: "Open the web dashboard with a one-time login link",
		Long: `open asks the running relay service for a one-time login link to its web
dashboard, prints it, and opens it in a browser where there is one (xdg-open on
Linux with a display, open on macOS) unless --no-browser is given.

The link works once, for two minutes: it logs the browser in with a session
cookie (HttpOnly, SameSite=Strict) for 12 hours. Like jobs, open finds the
service and its operator token in the data directory of the config, unless
--url and --token say otherwise.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := s.client()
			if err != nil {
				return err
			}
			var lc dashboard.LoginCode
			if _, err := c.call(cmd.Context(), http.MethodPost, "/ui/login-codes", nil, nil, &lc); err != nil {
				return jobsFail(fmt.Errorf("ask the relay for a login link: %w", err))
			}
			out := cmd.OutOrStdout()
			if _, err := fmt.Fprintln(out, lc.URL); err != nil {
				return err
			}
			if noBrowser {
				return nil
			}
			if err := openBrowser(lc.URL, env.lookup); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "open the link above in a browser (%v); it works once, until %s\n", err, lc.ExpiresAt.Local().Format("15:04:05"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the link")
	flags.register(cmd)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return jobsUsage(err) })
	return cmd
}

// openBrowser starts the desktop's URL opener on u, without waiting for
// it, or says why there is none.
func openBrowser(u string, lookup func(string) (string, bool)) error {
	var name string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "linux", "freebsd", "openbsd", "netbsd":
		d, _ := lookup("DISPLAY")
		wl, _ := lookup("WAYLAND_DISPLAY")
		if d == "" && wl == "" {
			return fmt.Errorf("no display")
		}
		name = "xdg-open"
	default:
		return fmt.Errorf("no opener known on %s", runtime.GOOS)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s not found", name)
	}
	cmd := exec.Command(path, u)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
