package gemini

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Gemini keeps a project's sessions in ~/.gemini/tmp/<slug>/chats/, where
// the slug of a project root is recorded in ~/.gemini/projects.json and in
// a .project_root file in the slug's directory (which gemini also scans
// for a root it does not find in projects.json); versions before 0.30
// used the SHA-256 of the root instead of a slug.
const (
	projectRootFile = ".project_root"
	projectsFile    = "projects.json"
	sessionPrefix   = "session-"
)

// PrepareResume makes the parent job's session found by `gemini --resume`
// in req.Workdir: gemini looks for sessions under the project of the
// working directory, and a follow-up runs in a new workspace. It copies
// the session (its chat file and its directory of plans and tool
// outputs) from the project of req.ParentWorkdir to the project of
// req.Workdir, registering that one the way gemini does if it is new.
// The resumed run then appends to the copy under the same session id.
func (Adapter) PrepareResume(_ context.Context, _ *executor.AgentConfig, req *executor.Request, env []string) error {
	if req.ParentWorkdir == "" {
		return nil // nowhere to copy from: gemini looks in req.Workdir
	}
	dir, err := userGeminiDir(listLookup(env))
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "tmp")
	from, err := projectDir(dir, req.ParentWorkdir)
	if err != nil {
		return err
	}
	if from == "" {
		return fmt.Errorf("gemini has no sessions for the parent's workdir %s under %s", req.ParentWorkdir, tmp)
	}
	chat, err := findSession(filepath.Join(from, "chats"), req.ResumeSessionID)
	if err != nil {
		return err
	}
	to, err := projectDir(dir, req.Workdir)
	if err != nil {
		return err
	}
	if to == "" {
		if to, err = claimProject(dir, req.Workdir); err != nil {
			return err
		}
	}
	if to == from {
		return nil
	}
	if err := copyFile(chat, filepath.Join(to, "chats", filepath.Base(chat))); err != nil {
		return fmt.Errorf("copy gemini session: %w", err)
	}
	if fi, err := os.Stat(filepath.Join(from, req.ResumeSessionID)); err == nil && fi.IsDir() {
		if err := os.CopyFS(filepath.Join(to, req.ResumeSessionID), os.DirFS(filepath.Join(from, req.ResumeSessionID))); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("copy gemini session files: %w", err)
		}
	}
	return nil
}

// projectRoots returns the forms a project root can take in gemini's
// records: as given and with symbolic links resolved (gemini records
// process.cwd(), which has them resolved), for a directory that may no
// longer exist.
func projectRoots(root string) []string {
	root = filepath.Clean(root)
	roots := []string{root}
	// Resolve the longest existing prefix.
	for dir, rest := root, ""; ; {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			if r := filepath.Join(real, rest); r != root {
				roots = append(roots, r)
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
	return roots
}

// projectDir returns the session directory (tmp/<slug>) gemini uses for
// the project root, or "" when it has none yet.
func projectDir(geminiDir, root string) (string, error) {
	tmp := filepath.Join(geminiDir, "tmp")
	roots := projectRoots(root)
	var registry struct {
		Projects map[string]string `json:"projects"`
	}
	if raw, err := os.ReadFile(filepath.Join(geminiDir, projectsFile)); err == nil {
		_ = json.Unmarshal(raw, &registry) // gemini resets a corrupt registry too
	}
	for _, r := range roots {
		if slug := registry.Projects[r]; slug != "" && validSlug(slug) && owns(filepath.Join(tmp, slug), r, true) {
			return filepath.Join(tmp, slug), nil
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("gemini sessions: %w", err)
	}
	for _, e := range entries {
		for _, r := range roots {
			if e.IsDir() && owns(filepath.Join(tmp, e.Name()), r, false) {
				return filepath.Join(tmp, e.Name()), nil
			}
		}
	}
	for _, r := range roots {
		sum := sha256.Sum256([]byte(r))
		legacy := filepath.Join(tmp, hex.EncodeToString(sum[:]))
		if fi, err := os.Stat(filepath.Join(legacy, "chats")); err == nil && fi.IsDir() {
			return legacy, nil
		}
	}
	return "", nil
}

// owns reports whether the slug directory dir belongs to root: its
// .project_root names root (or, with unmarked, is missing).
func owns(dir, root string, unmarked bool) bool {
	b, err := os.ReadFile(filepath.Join(dir, projectRootFile))
	if errors.Is(err, fs.ErrNotExist) {
		return unmarked
	}
	return err == nil && filepath.Clean(strings.TrimSpace(string(b))) == root
}

// slugRE is what gemini's slugs look like.
var slugRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func validSlug(s string) bool { return slugRE.MatchString(s) }

// claimProject gives the new project root a session directory the way
// gemini does: the slug of its base name, numbered past the slugs in use,
// owned through its .project_root marker (created exclusively, so
// concurrent runs never share one). Gemini adopts it when it finds the
// marker.
func claimProject(geminiDir, root string) (string, error) {
	tmp := filepath.Join(geminiDir, "tmp")
	roots := projectRoots(root)
	root = roots[len(roots)-1] // gemini records the resolved path
	var registry struct {
		Projects map[string]string `json:"projects"`
	}
	if raw, err := os.ReadFile(filepath.Join(geminiDir, projectsFile)); err == nil {
		_ = json.Unmarshal(raw, &registry)
	}
	taken := map[string]bool{}
	for _, s := range registry.Projects {
		taken[s] = true
	}
	slug := slugify(filepath.Base(root))
	for n := 0; n < 10000; n++ {
		candidate := slug
		if n > 0 {
			candidate = slug + "-" + strconv.Itoa(n)
		}
		if taken[candidate] {
			continue
		}
		dir := filepath.Join(tmp, candidate)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("gemini project: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(dir, projectRootFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			if owns(dir, root, false) {
				return dir, nil
			}
			continue
		}
		if err != nil {
			return "", fmt.Errorf("gemini project: %w", err)
		}
		_, err = f.WriteString(root)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("gemini project: %w", err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("gemini project: no free slug for %s", root)
}

// slugify is gemini's: lower case, runs of other characters as one dash.
func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if out == "" {
		return "project"
	}
	return out
}

// findSession returns the chat file of session id in chats: gemini names
// it session-<time>-<first 8 characters of the id>.json or .jsonl, and
// records the id in its first JSON object.
func findSession(chats, id string) (string, error) {
	if id == "" {
		return "", errors.New("no session id to resume")
	}
	entries, err := os.ReadDir(chats)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("gemini sessions: %w", err)
	}
	short := id[:min(8, len(id))]
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, sessionPrefix) ||
			!(strings.HasSuffix(name, "-"+short+".json") || strings.HasSuffix(name, "-"+short+".jsonl")) {
			continue
		}
		if sessionID(filepath.Join(chats, name)) == id {
			return filepath.Join(chats, name), nil
		}
	}
	return "", fmt.Errorf("gemini session %s is not in %s", id, chats)
}

// sessionID reads the sessionId of a chat file: the first line of a
// .jsonl file, the whole object of a .json one.
func sessionID(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var rec struct {
		SessionID string `json:"sessionId"`
	}
	if strings.HasSuffix(path, ".jsonl") {
		line, err := bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return ""
		}
		_ = json.Unmarshal(line, &rec)
		return rec.SessionID
	}
	_ = json.NewDecoder(f).Decode(&rec)
	return rec.SessionID
}

// copyFile copies src to dst (creating its directory), readable by its
// owner only.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return executor.WritePrivate(dst, data)
}
