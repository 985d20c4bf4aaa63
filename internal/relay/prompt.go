package relay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Bounds on the context.codeSnippets quoted in a prompt, whose paths and
// line numbers come from whoever submitted the job and whose files come
// from the repository.
const (
	// maxSnippetLines caps the lines quoted from one snippet.
	maxSnippetLines = 400
	// maxSnippetLineBytes caps one quoted line; the rest is cut.
	maxSnippetLineBytes = 1000
	// maxSnippetReadBytes caps the bytes read from one snippet's file.
	maxSnippetReadBytes = 1 << 20
	// maxSnippetsReadBytes caps the bytes read for all snippets of one
	// prompt.
	maxSnippetsReadBytes = 8 << 20
)

// RenderPrompt writes the task prompt handed to an executor: the task,
// acceptance criteria, scope (scope.readPaths as where to look, the
// fileGlobs the patch must stay in), context (with the snippet lines read
// from the workspace at dir; snippets outside scope.readPaths are named,
// not quoted — see InReadPaths), the baseline, the output convention, the
// parts the outputContract requires and, when relayBinary is set, how to
// ask through the relay (or, for askPolicy never, that the job cannot).
func RenderPrompt(job *relaytype.Job, dir, relayBinary string) string {
	s := &job.Spec
	var b strings.Builder
	fmt.Fprintf(&b, "# Task: %s\n\n%s\n", s.Task.Title, strings.TrimSpace(s.Task.Description))
	if len(s.Task.Acceptance) > 0 {
		b.WriteString("\n## Acceptance criteria\n\n")
		for _, a := range s.Task.Acceptance {
			fmt.Fprintf(&b, "- %s\n", a)
		}
	}
	if len(s.Scope.ReadPaths)+len(s.Scope.FileGlobs) > 0 || s.Scope.DisallowReformatting {
		b.WriteString("\n## Scope\n\n")
		if len(s.Scope.ReadPaths) > 0 {
			fmt.Fprintf(&b, "- Relevant paths: %s (paths from the repository root: look there for what you need)\n",
				strings.Join(s.Scope.ReadPaths, ", "))
		}
		if len(s.Scope.FileGlobs) > 0 {
			fmt.Fprintf(&b, "- Change only files matching: %s\n", strings.Join(s.Scope.FileGlobs, ", "))
			b.WriteString("  The job FAILS (POLICY) if the patch adds, changes, deletes or renames any\n" +
				"  other path. In these globs `*` matches within one path segment, `**` any\n" +
				"  number of segments, `?` one character; they match from the repository root.\n")
		}
		if s.Scope.DisallowReformatting {
			b.WriteString("- Do not reformat code you are not otherwise changing.\n")
		}
	}
	if c := s.Context; c != nil && (c.DirTreeDigest != "" || len(c.KeySignatures) > 0 || len(c.CodeSnippets) > 0) {
		b.WriteString("\n## Context\n")
		if c.DirTreeDigest != "" {
			fmt.Fprintf(&b, "\nDirectory tree:\n\n%s\n", strings.TrimRight(c.DirTreeDigest, "\n"))
		}
		if len(c.KeySignatures) > 0 {
			b.WriteString("\nKey signatures:\n\n")
			for _, k := range c.KeySignatures {
				fmt.Fprintf(&b, "- `%s`\n", k)
			}
		}
		budget := int64(maxSnippetsReadBytes)
		var skipped []string
		for _, sn := range c.CodeSnippets {
			// A path that leads out of the repository is refused by
			// snippet, whatever readPaths says; one inside it but
			// outside readPaths is only named.
			if filepath.IsLocal(filepath.FromSlash(sn.Path)) && !InReadPaths(s.Scope.ReadPaths, sn.Path) {
				skipped = append(skipped, fmt.Sprintf("%s lines %d-%d", sn.Path, sn.From, sn.To))
				continue
			}
			fmt.Fprintf(&b, "\n%s lines %d-%d:\n\n```\n%s```\n", sn.Path, sn.From, sn.To, snippet(dir, sn, &budget))
		}
		if len(skipped) > 0 {
			fmt.Fprintf(&b, "\nNot quoted, outside the relevant paths (scope.readPaths): %s.\n", strings.Join(skipped, "; "))
		}
	}
	b.WriteString("\n## Repository\n\n")
	repo := s.Repo.URL
	if s.Repo.Type == "local" {
		repo = s.Repo.Path
	}
	fmt.Fprintf(&b, "- Source: %s\n", repo)
	if s.Repo.BaseBranch != "" {
		fmt.Fprintf(&b, "- Branch: %s\n", s.Repo.BaseBranch)
	}
	fmt.Fprintf(&b, "- Baseline commit: %s (checked out in the current directory)\n", job.BaselineCommit)
	b.WriteString(`
## How to deliver

Make the changes directly in the files of the current directory. The relay
computes the patch from the working tree against the baseline commit, so do
not push and do not worry about committing. When you are done, end your
output with these two sections (the headings unindented):

    ### TEST_PLAN
    How the change was or should be tested.

    ### NOTES
    Anything the reviewer should know.
`)
	b.WriteString(contractSection(s.OutputContract))
	switch {
	case s.Execution.AskPolicy == relaytype.AskPolicyNever:
		b.WriteString(noAskSection)
	case relayBinary != "":
		b.WriteString(askSection(job, relayBinary))
	}
	return b.String()
}

// contractSection tells the executor which parts of its output the job's
// outputContract requires, and how the relay recognizes them; "" when
// the contract is empty.
func contractSection(contract []string) string {
	var parts []string
	seen := map[string]bool{}
	for _, p := range contract {
		if !seen[p] {
			seen[p] = true
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Required output\n\nThis job's output contract is %s. The job FAILS (OUTPUT_CONTRACT)\nunless each of these is delivered:\n\n", strings.Join(parts, ", "))
	sections := false
	for _, p := range parts {
		switch p {
		case ContractDiff:
			b.WriteString("- DIFF: change at least one file in the current directory; a job that\n  changes nothing fails.\n")
		case ContractTestPlan:
			sections = true
			b.WriteString("- TEST_PLAN: a `### TEST_PLAN` section with at least one non-empty line\n  (how the change was or should be tested).\n")
		case ContractNotes:
			sections = true
			b.WriteString("- NOTES: a `### NOTES` section with at least one non-empty line (what the\n  reviewer should know; write \"none\" if there is nothing).\n")
		}
	}
	if sections {
		b.WriteString(`
Write the sections in your final output (your last message; a program
writes them to its standard output), each heading on a line of its own,
as plain Markdown, not inside a code block or indented. "## Test plan",
"# Notes" or a line "Notes:" are recognized too. A section runs until
the next heading of the same or a higher level.
`)
	}
	return b.String()
}

// noAskSection tells the executor of a job whose askPolicy is never that
// it cannot ask.
const noAskSection = `
## Asking

This job's execution.askPolicy is never: the relay refuses every ask of
it at once (the relay_ask and relay_approve tools and the ask command
fail). Do not ask: decide yourself, and state your assumptions in your
final output.
`

// askSection tells the agent how to ask the person behind the task
// instead of guessing: the relay_ask and relay_approve tools where its MCP
// configuration has them, else the relay's ask command by absolute path
// (which a login shell that resets PATH still finds).
func askSection(job *relaytype.Job, relayBinary string) string {
	var b strings.Builder
	b.WriteString(`
## Asking

If you need a decision, a missing fact or an approval that the task does
not give you, ask instead of guessing. Use the relay_ask tool of the
relay's MCP server (task-relay, or task-relay-job; search for it if your
tools are deferred) if you have it (type CLARIFICATION, CHOICE,
RESOURCE_FETCH, POLICY_DECISION or APPROVAL, and your question), or run:

`)
	fmt.Fprintf(&b, "    %s ask --type CLARIFICATION \"your question\"\n\n", shellQuote(relayBinary))
	b.WriteString("The answer is printed (JSON with --json); the command waits until it\ncomes. An answer may take minutes: wait for it.\n")
	if job.Spec.Execution.Sandbox == "read-only" {
		b.WriteString("\nThis job is read-only: do not change any file. Report what you found\nor would change in your final message instead.\n")
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// snippet reads lines From..To of a file in the workspace dir. It quotes
// only a regular file inside dir: a path or symbolic link leading out of
// dir (to a file elsewhere, /dev/urandom, /proc/self/fd/0) is refused,
// and so is anything that is not a regular file (a FIFO would block the
// open, a device would never end). The file is opened through an os.Root,
// so no link swapped in after the check can lead out either. It reads at
// most maxSnippetReadBytes, and no more than *budget, which it decreases
// by what it read; lines are cut at maxSnippetLineBytes.
func snippet(dir string, sn relaytype.CodeSnippet, budget *int64) string {
	name := filepath.FromSlash(sn.Path)
	if !filepath.IsLocal(name) || !insideDir(dir, filepath.Join(dir, name)) {
		return "(path outside the repository)\n"
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "(not readable at the baseline)\n"
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO that slipped past the check returns at
	// once instead of waiting for a writer; it is refused below.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "(not readable at the baseline)\n"
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "(not a regular file)\n"
	}
	limit := min(int64(maxSnippetReadBytes), *budget)
	lr := &io.LimitedReader{R: f, N: limit}
	defer func() { *budget -= limit - lr.N }()
	br := bufio.NewReaderSize(lr, 64*1024)
	var out bytes.Buffer
	for n := 1; n <= sn.To; n++ {
		line, cut, err := readLine(br)
		if err == nil || len(line) > 0 || cut {
			if n >= sn.From {
				if n-sn.From >= maxSnippetLines {
					out.WriteString("…\n")
					break
				}
				out.Write(line)
				if cut {
					out.WriteString("…")
				}
				out.WriteByte('\n')
			}
		}
		if err != nil {
			if lr.N == 0 {
				out.WriteString("… (read limit reached)\n")
			}
			break
		}
	}
	return out.String()
}

// insideDir reports whether path, with symbolic links resolved, lies in
// dir (with its links resolved). A path that does not resolve is left to
// the open to refuse.
func insideDir(dir, path string) bool {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return true
	}
	rel, err := filepath.Rel(realDir, real)
	return err == nil && filepath.IsLocal(rel)
}

// readLine returns the next line of br without its line ending, cut at
// maxSnippetLineBytes (on a character boundary), and whether it was cut.
// The error is that of the read that ended the line (io.EOF for a last
// line without a newline).
func readLine(br *bufio.Reader) (line []byte, cut bool, err error) {
	for {
		chunk, rerr := br.ReadSlice('\n')
		chunk = bytes.TrimSuffix(chunk, []byte("\n"))
		if room := maxSnippetLineBytes - len(line); len(chunk) > room {
			line = append(line, chunk[:room]...)
			cut = true
		} else {
			line = append(line, chunk...)
		}
		if rerr == bufio.ErrBufferFull {
			continue
		}
		if cut {
			line = trimPartialRune(line)
		}
		return bytes.TrimSuffix(line, []byte("\r")), cut, rerr
	}
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// maxOutTail bounds out.md when the executor printed no sections.
const maxOutTail = 64 * 1024

// RenderMessage builds out.md from a coding agent's final message: the
// whole message (its TEST_PLAN and NOTES sections included), bounded.
func RenderMessage(msg string) []byte {
	out := []byte(strings.TrimSpace(msg) + "\n")
	if len(out) > maxOutTail {
		out = append([]byte("…\n"), out[len(out)-maxOutTail:]...)
	}
	return out
}

// RenderOut builds out.md from an executor's stdout: its TEST_PLAN and
// NOTES sections (found as FindSections finds them), each written as
// "### NAME", when it has any; otherwise the tail of its output.
func RenderOut(stdout []byte) []byte {
	sections := FindSections(string(stdout))
	if len(sections) == 0 {
		out := stdout
		if len(out) > maxOutTail {
			out = append([]byte("…\n"), out[len(out)-maxOutTail:]...)
		}
		if len(bytes.TrimSpace(out)) == 0 {
			return []byte("(the executor printed nothing)\n")
		}
		return out
	}
	return renderSections(sections)
}
