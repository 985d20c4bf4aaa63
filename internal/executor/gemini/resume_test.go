package gemini

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

const resumeSession = "cf0917c6-83c7-46d8-b169-4a00fecd2bb5"

// sessionStore is a user's ~/.gemini with the session of a parent job.
type sessionStore struct {
	home, dir   string // HOME, HOME/.gemini
	parent, new string // the parent's workdir (gone) and the follow-up's
}

func newSessionStore(t *testing.T) *sessionStore {
	t.Helper()
	root := t.TempDir()
	s := &sessionStore{home: filepath.Join(root, "home"), parent: filepath.Join(root, "ws", "job_1", "checkout"),
		new: filepath.Join(root, "ws", "job_2", "checkout")}
	s.dir = filepath.Join(s.home, ".gemini")
	require.NoError(t, os.MkdirAll(s.new, 0o755))
	var err error
	// Gemini records resolved paths (t.TempDir may be under a symlink).
	s.new, err = filepath.EvalSymlinks(s.new)
	require.NoError(t, err)
	s.parent = filepath.Join(filepath.Dir(filepath.Dir(s.new)), "job_1", "checkout")
	return s
}

// session writes a chat of the session under tmp/slug, marked as the
// parent's (or not, with marker ""), and returns the chat's path.
func (s *sessionStore) session(t *testing.T, slug, marker, ext string) string {
	t.Helper()
	dir := filepath.Join(s.dir, "tmp", slug)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "chats"), 0o700))
	if marker != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, projectRootFile), []byte(marker), 0o600))
	}
	chat := filepath.Join(dir, "chats", "session-2026-11-27T14-57-"+resumeSession[:8]+ext)
	body := fmt.Sprintf(`{"sessionId":%q,"projectHash":"x","kind":"main"}`+"\n"+`{"id":"1","type":"user","content":[{"text":"hi"}]}`+"\n", resumeSession)
	if ext == ".json" {
		body = fmt.Sprintf(`{"sessionId":%q,"messages":[]}`, resumeSession)
	}
	require.NoError(t, os.WriteFile(chat, []byte(body), 0o600))
	// Another session with the same short id must not be taken.
	other := filepath.Join(dir, "chats", "session-2026-11-27T15-00-"+resumeSession[:8]+".jsonl")
	require.NoError(t, os.WriteFile(other, []byte(`{"sessionId":"`+resumeSession[:8]+`-other"}`+"\n"), 0o600))
	return chat
}

func (s *sessionStore) resume(t *testing.T) error {
	t.Helper()
	return Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{},
		&executor.Request{Workdir: s.new, ParentWorkdir: s.parent, ResumeSessionID: resumeSession},
		[]string{"HOME=/elsewhere", "HOME=" + s.home})
}

// copied returns the chats of the follow-up's project after PrepareResume,
// and its slug directory.
func (s *sessionStore) copied(t *testing.T) (string, []string) {
	t.Helper()
	to, err := projectDir(s.dir, s.new)
	require.NoError(t, err)
	require.NotEmpty(t, to, "the follow-up's workdir has a project")
	entries, err := os.ReadDir(filepath.Join(to, "chats"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return to, names
}

func TestGeminiPrepareResume(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, s *sessionStore) string // returns the chat
	}{
		{"registered in projects.json", func(t *testing.T, s *sessionStore) string {
			require.NoError(t, os.MkdirAll(s.dir, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(s.dir, projectsFile),
				[]byte(fmt.Sprintf(`{"projects": {%q: "checkout-7"}}`, s.parent)), 0o600))
			return s.session(t, "checkout-7", s.parent, ".jsonl")
		}},
		{"found by its marker", func(t *testing.T, s *sessionStore) string {
			s.session(t, "checkout", filepath.Join(filepath.Dir(s.parent), "other"), ".jsonl")
			return s.session(t, "checkout-1", s.parent, ".jsonl")
		}},
		{"legacy hash directory, json chat", func(t *testing.T, s *sessionStore) string {
			sum := sha256.Sum256([]byte(s.parent))
			return s.session(t, hex.EncodeToString(sum[:]), "", ".json")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSessionStore(t)
			chat := tc.setup(t, s)
			files := filepath.Join(filepath.Dir(filepath.Dir(chat)), resumeSession, "plans")
			require.NoError(t, os.MkdirAll(files, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(files, "plan.md"), []byte("plan"), 0o600))

			require.NoError(t, s.resume(t))
			to, names := s.copied(t)
			require.Equal(t, []string{filepath.Base(chat)}, names)
			want, err := os.ReadFile(chat)
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(to, "chats", filepath.Base(chat)))
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			require.FileExists(t, filepath.Join(to, resumeSession, "plans", "plan.md"))
			marker, err := os.ReadFile(filepath.Join(to, projectRootFile))
			require.NoError(t, err)
			require.Equal(t, s.new, string(marker), "gemini adopts the directory through its marker")

			// Resuming again (a retried attempt) finds the same project.
			require.NoError(t, s.resume(t))
			again, _ := s.copied(t)
			require.Equal(t, to, again)
		})
	}
}

// A follow-up's slug follows gemini's rules: numbered past the slugs in
// use, on disk or in projects.json.
func TestGeminiPrepareResumeSlug(t *testing.T) {
	t.Parallel()
	s := newSessionStore(t)
	s.session(t, "checkout", s.parent, ".jsonl")
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, projectsFile), []byte(`{"projects": {"/x/checkout": "checkout-1"}}`), 0o600))
	require.NoError(t, s.resume(t))
	to, _ := s.copied(t)
	require.Equal(t, filepath.Join(s.dir, "tmp", "checkout-2"), to)
}

func TestGeminiPrepareResumeErrors(t *testing.T) {
	t.Parallel()
	s := newSessionStore(t)
	err := s.resume(t)
	require.ErrorContains(t, err, "gemini has no sessions for the parent's workdir "+s.parent)

	s.session(t, "checkout", s.parent, ".jsonl")
	err = Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{},
		&executor.Request{Workdir: s.new, ParentWorkdir: s.parent, ResumeSessionID: "0b5e0000-0000-4000-8000-000000000000"},
		[]string{"HOME=" + s.home})
	require.ErrorContains(t, err, "gemini session 0b5e0000-0000-4000-8000-000000000000 is not in "+filepath.Join(s.dir, "tmp", "checkout", "chats"))

	// No parent workdir: nothing to copy.
	require.NoError(t, Adapter{}.PrepareResume(context.Background(), &executor.AgentConfig{},
		&executor.Request{Workdir: s.new, ResumeSessionID: resumeSession}, []string{"HOME=" + s.home}))
}

func TestGeminiSlugify(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"checkout": "checkout", "My Repo_2": "my-repo-2", "--x--": "x", "": "project", "Ünï": "n"} {
		require.Equal(t, want, slugify(in), in)
	}
}
