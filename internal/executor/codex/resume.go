package codex

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// codexSessionID reports whether id has the form of the thread ids codex
// prints (UUIDs): 1 to 128 ASCII letters, digits and dashes, not starting
// with a dash. An id is checked before it is put into a file pattern. (A
// function rather than a regexp: the bounded repetition compiled to a
// large program at every start of the binary.)
func codexSessionID(id string) bool {
	if len(id) == 0 || len(id) > 128 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// PrepareResume records, for Parse, the token usage of the thread a
// follow-up resumes as it stands before the run: codex keeps sessions by
// id, not by directory, so nothing needs copying for `codex exec resume`
// to find the session from the new workspace, but codex reports the
// thread's running total as a turn's usage. The total is read from the
// session's rollout file, CODEX_HOME/sessions/YYYY/MM/DD/rollout-*-ID.jsonl
// (its last token_count event), and written to
// MetaDir/CodexUsageBaselineFile. A session that is not found is not an
// error here (codex itself reports a session it cannot resume); the
// run's usage is then what codex reports.
func (Adapter) PrepareResume(_ context.Context, _ *executor.AgentConfig, req *executor.Request, env []string) error {
	if req.MetaDir == "" || req.ResumeSessionID == "" {
		return nil
	}
	home := codexHome(env)
	if home == "" {
		return nil
	}
	file, err := codexSessionFile(home, req.ResumeSessionID)
	if err != nil || file == "" {
		return err
	}
	base, ok, err := codexThreadUsage(file)
	if err != nil || !ok {
		return err
	}
	b, err := json.Marshal(base)
	if err != nil {
		return fmt.Errorf("codex: usage baseline: %w", err)
	}
	if err := os.WriteFile(filepath.Join(req.MetaDir, CodexUsageBaselineFile), b, 0o600); err != nil {
		return fmt.Errorf("codex: write usage baseline: %w", err)
	}
	return nil
}

// readUsageBaseline reads what PrepareResume recorded in metaDir.
func readUsageBaseline(metaDir string) (codexUsage, bool) {
	var u codexUsage
	if metaDir == "" {
		return u, false
	}
	b, err := os.ReadFile(filepath.Join(metaDir, CodexUsageBaselineFile))
	if err != nil || json.Unmarshal(b, &u) != nil {
		return codexUsage{}, false
	}
	return u, true
}

// codexHome returns the CODEX_HOME a run with env uses: $CODEX_HOME, else
// $HOME/.codex; "" when neither is set. Later entries of env win, as in
// the process's environment.
func codexHome(env []string) string {
	get := codexGetenv(env)
	if h := get("CODEX_HOME"); h != "" {
		return h
	}
	if h := get("HOME"); h != "" {
		return filepath.Join(h, ".codex")
	}
	return ""
}

// codexGetenv looks variables up in env ("NAME=VALUE"), the last entry of
// a name winning.
func codexGetenv(env []string) func(string) string {
	return func(name string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], name+"="); ok {
				return v
			}
		}
		return ""
	}
}

// codexSessionFile finds the rollout file of session id under home, or
// returns "" when there is none.
func codexSessionFile(home, id string) (string, error) {
	if !codexSessionID(id) {
		return "", nil
	}
	suffix := "-" + id + ".jsonl"
	matches, err := filepath.Glob(filepath.Join(home, "sessions", "*", "*", "*", "rollout-*"+suffix))
	if err != nil {
		return "", fmt.Errorf("codex: find session %s: %w", id, err)
	}
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	// Codex has laid its sessions out differently before; look anywhere
	// below sessions/.
	found := ""
	err = filepath.WalkDir(filepath.Join(home, "sessions"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "rollout-") && strings.HasSuffix(d.Name(), suffix) {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("codex: find session %s: %w", id, err)
	}
	return found, nil
}

// codexThreadUsage returns the thread's total token usage as the last
// token_count event of a rollout file states it.
func codexThreadUsage(file string) (codexUsage, bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return codexUsage{}, false, fmt.Errorf("codex: read session: %w", err)
	}
	defer f.Close()
	var (
		last  codexUsage
		found bool
	)
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if bytes.Contains(line, []byte(`"token_count"`)) {
			var rec struct {
				Type    string `json:"type"`
				Payload struct {
					Type string `json:"type"`
					Info *struct {
						Total *codexUsage `json:"total_token_usage"`
					} `json:"info"`
				} `json:"payload"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Type == "event_msg" && rec.Payload.Type == "token_count" &&
				rec.Payload.Info != nil && rec.Payload.Info.Total != nil {
				last, found = *rec.Payload.Info.Total, true
			}
		}
		if errors.Is(err, io.EOF) {
			return last, found, nil
		}
		if err != nil {
			return codexUsage{}, false, fmt.Errorf("codex: read session: %w", err)
		}
	}
}
