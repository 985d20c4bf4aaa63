package claude

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Claude Code keeps each session as CONFIG/projects/KEY/SESSION.jsonl
// (with a SESSION/ directory of side files, and the project's memory/),
// where CONFIG is $CLAUDE_CONFIG_DIR or ~/.claude and KEY is the session's
// working directory (resolved) with every character but [a-zA-Z0-9]
// replaced by "-", cut at 200 characters plus a hash when longer.
// `claude --resume ID` looks for the session under the current directory's
// KEY only (and the other worktrees of its repository), so a follow-up,
// which runs in a new workspace, would not find its parent's session.
const (
	// claudeConfigDirEnv names claude's configuration directory.
	claudeConfigDirEnv = "CLAUDE_CONFIG_DIR"
	// claudeProjectsDir is the session store inside it.
	claudeProjectsDir = "projects"
	// claudeMaxKeyLen is where a project key is cut.
	claudeMaxKeyLen = 200
)

// PrepareResume makes the session req.ResumeSessionID, kept under the
// parent job's workspace (req.ParentWorkdir) in claude's session store,
// found from req.Workdir: it copies the session's transcript (and its side
// files and the project's memory) to req.Workdir's project key, with every
// path under the parent's workspace in it rewritten to the same path under
// req.Workdir, so that the model's earlier file paths point into its new
// workspace. A session already there (an earlier attempt of the same job)
// is left as it is, and a session found nowhere is left to claude to
// report ("No conversation found with session ID"). env is the run's
// environment, for CLAUDE_CONFIG_DIR and HOME.
func (Adapter) PrepareResume(ctx context.Context, _ *executor.AgentConfig, req *executor.Request, env []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id := req.ResumeSessionID
	if id == "" || strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return fmt.Errorf("claude: bad session id %q", id)
	}
	store, err := claudeSessionStore(env)
	if err != nil {
		return err
	}
	workdir := req.Workdir
	if real, err := filepath.EvalSymlinks(workdir); err == nil {
		workdir = real
	}
	dstDir := filepath.Join(store, claudeProjectKey(workdir))
	dst := filepath.Join(dstDir, id+".jsonl")
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	src, err := claudeFindSession(store, id, req.ParentWorkdir)
	if err != nil || src == "" {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("claude: read session: %w", err)
	}
	if old := claudeSessionCwd(data); len(old) > 1 && old != workdir {
		data = claudeRewritePaths(data, old, workdir)
	}
	if err := os.MkdirAll(dstDir, 0o700); err != nil {
		return fmt.Errorf("claude: session store: %w", err)
	}
	srcDir := filepath.Dir(src)
	for _, side := range []string{id, "memory"} {
		from, to := filepath.Join(srcDir, side), filepath.Join(dstDir, side)
		if err := claudeCopyTree(from, to); err != nil {
			return fmt.Errorf("claude: copy session files: %w", err)
		}
	}
	if err := executor.WritePrivate(dst, data); err != nil {
		return fmt.Errorf("claude: write session: %w", err)
	}
	return nil
}

// claudeSessionStore returns claude's projects directory for env:
// $CLAUDE_CONFIG_DIR/projects, else $HOME/.claude/projects.
func claudeSessionStore(env []string) (string, error) {
	lookup := func(key string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
				return v
			}
		}
		return ""
	}
	if dir := lookup(claudeConfigDirEnv); dir != "" {
		return filepath.Join(dir, claudeProjectsDir), nil
	}
	home := lookup("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("claude: no home directory for the session store: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".claude", claudeProjectsDir), nil
}

// claudeFindSession returns the transcript of session id: under the
// parent's project key, else under any project (session ids are UUIDs);
// "" when there is none.
func claudeFindSession(store, id, parentWorkdir string) (string, error) {
	name := id + ".jsonl"
	if parentWorkdir != "" {
		candidates := []string{parentWorkdir}
		// The parent's workspace is gone; its directory, if it still
		// exists, resolves symbolic links as claude did.
		if dir, err := filepath.EvalSymlinks(filepath.Dir(parentWorkdir)); err == nil {
			candidates = append(candidates, filepath.Join(dir, filepath.Base(parentWorkdir)))
		}
		for _, c := range candidates {
			p := filepath.Join(store, claudeProjectKey(c), name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	matches, err := filepath.Glob(filepath.Join(store, "*", name))
	if err != nil {
		return "", fmt.Errorf("claude: find session: %w", err)
	}
	var best string
	var bestMod int64
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && (best == "" || fi.ModTime().UnixNano() > bestMod) {
			best, bestMod = m, fi.ModTime().UnixNano()
		}
	}
	return best, nil
}

// claudeProjectKey is claude's name for a working directory's folder in
// the session store.
func claudeProjectKey(dir string) string {
	var b strings.Builder
	for _, r := range dir {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r > 0xFFFF:
			// JavaScript replaces each UTF-16 code unit of a surrogate pair.
			b.WriteString("--")
		default:
			b.WriteByte('-')
		}
	}
	key := b.String()
	if len(key) <= claudeMaxKeyLen {
		return key
	}
	return key[:claudeMaxKeyLen] + "-" + claudeKeyHash(dir)
}

// claudeKeyHash is claude's hash of a long directory name: the Java
// string hash over UTF-16 code units, absolute, in base 36.
func claudeKeyHash(s string) string {
	var h int32
	for _, r := range s {
		if r > 0xFFFF {
			r -= 0x10000
			h = h*31 + int32(0xD800+(r>>10))
			h = h*31 + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = h*31 + int32(r)
	}
	v := int64(h)
	if v < 0 {
		v = -v
	}
	return strconv.FormatInt(v, 36)
}

// claudeSessionCwd returns the working directory the session recorded
// (the first "cwd" of its entries).
func claudeSessionCwd(data []byte) string {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"cwd"`)) {
			continue
		}
		var e struct {
			Cwd string `json:"cwd"`
		}
		if json.Unmarshal(line, &e) == nil && e.Cwd != "" {
			return e.Cwd
		}
	}
	return ""
}

// claudeJSONString returns s as the inside of a JSON string, as
// JavaScript's JSON.stringify writes it (no HTML escaping).
func claudeJSONString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	b := bytes.TrimSpace(buf.Bytes())
	return b[1 : len(b)-1]
}

// claudeRewritePaths replaces old, a directory, with new wherever it
// stands for itself in data (JSON text): followed by a path separator, a
// quote or anything else that cannot continue a file name, so that a
// sibling directory (old + "2") is left alone.
func claudeRewritePaths(data []byte, old, new string) []byte {
	from, to := claudeJSONString(old), claudeJSONString(new)
	if len(from) == 0 {
		return data
	}
	var out bytes.Buffer
	for {
		i := bytes.Index(data, from)
		if i < 0 {
			out.Write(data)
			return out.Bytes()
		}
		end := i + len(from)
		out.Write(data[:i])
		if end < len(data) && claudeNameByte(data[end]) {
			out.Write(from)
		} else {
			out.Write(to)
		}
		data = data[end:]
	}
}

// claudeNameByte reports whether c can continue a file name.
func claudeNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c >= 0x80
}

// claudeCopyTree copies the directory from to to, where to does not exist
// yet; a missing from copies nothing.
func claudeCopyTree(from, to string) error {
	fi, err := os.Stat(from)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o600)
		}
		return nil // symbolic links and the like are not copied
	})
}
