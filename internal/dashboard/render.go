package dashboard

import (
	"html"
	"regexp"
	"strings"
)

// Diff is a unified diff, parsed for display.
type Diff struct {
	Files []DiffFile `json:"files"`
	// Truncated is set when the patch was longer than the page shows.
	Truncated bool `json:"truncated,omitempty"`
}

// DiffFile is one file of a diff.
type DiffFile struct {
	Path    string     `json:"path"`
	OldPath string     `json:"oldPath,omitempty"`
	Added   int        `json:"added"`
	Removed int        `json:"removed"`
	Binary  bool       `json:"binary,omitempty"`
	Lines   []DiffLine `json:"lines"`
}

// DiffLine is one line of a file's diff. Kind is "hunk" (an @@ header),
// "add", "del" or "ctx".
type DiffLine struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
	// Old and New are the line numbers on each side (0 where the line is
	// not on that side).
	Old int `json:"old,omitempty"`
	New int `json:"new,omitempty"`
}

var hunkRE = regexp.MustCompile(`^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@`)

// ParseDiff parses the first max bytes of a git patch.
func ParseDiff(patch []byte, max int) *Diff {
	d := &Diff{Files: []DiffFile{}}
	s := string(patch)
	if len(s) > max {
		s, d.Truncated = s[:max], true
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			s = s[:i]
		}
	}
	var f *DiffFile
	oldN, newN := 0, 0
	inHunk := false
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "diff --git "):
			d.Files = append(d.Files, DiffFile{Lines: []DiffLine{}})
			f = &d.Files[len(d.Files)-1]
			inHunk = false
			rest := strings.TrimPrefix(line, "diff --git ")
			if i := strings.Index(rest, " b/"); i >= 0 {
				f.OldPath, f.Path = strings.TrimPrefix(rest[:i], "a/"), rest[i+3:]
			} else {
				f.Path = rest
			}
			if f.OldPath == f.Path {
				f.OldPath = ""
			}
		case f == nil:
			continue
		case !inHunk && strings.HasPrefix(line, "+++ "):
			if p := strings.TrimPrefix(line, "+++ "); p != "/dev/null" {
				f.Path = strings.TrimPrefix(p, "b/")
			}
		case !inHunk && strings.HasPrefix(line, "--- "):
		case strings.HasPrefix(line, "Binary files "), strings.HasPrefix(line, "GIT binary patch"):
			f.Binary = true
		case strings.HasPrefix(line, "@@"):
			inHunk = true
			if m := hunkRE.FindStringSubmatch(line); m != nil {
				oldN, newN = atoi(m[1]), atoi(m[2])
			}
			f.Lines = append(f.Lines, DiffLine{Kind: "hunk", Text: line})
		case !inHunk:
		case strings.HasPrefix(line, "+"):
			f.Added++
			f.Lines = append(f.Lines, DiffLine{Kind: "add", Text: line[1:], New: newN})
			newN++
		case strings.HasPrefix(line, "-"):
			f.Removed++
			f.Lines = append(f.Lines, DiffLine{Kind: "del", Text: line[1:], Old: oldN})
			oldN++
		case strings.HasPrefix(line, `\`):
			f.Lines = append(f.Lines, DiffLine{Kind: "ctx", Text: line})
		default:
			f.Lines = append(f.Lines, DiffLine{Kind: "ctx", Text: strings.TrimPrefix(line, " "), Old: oldN, New: newN})
			oldN++
			newN++
		}
	}
	return d
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

var (
	codeSpanRE = regexp.MustCompile("`([^`]+)`")
	boldRE     = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	headingRE  = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)
	bulletRE   = regexp.MustCompile(`^\s*[-*+]\s+(.*)$`)
	numberedRE = regexp.MustCompile(`^\s*\d+[.)]\s+(.*)$`)
)

// RenderMarkdown renders a small subset of Markdown as HTML: headings,
// paragraphs, bullet and numbered lists, fenced code blocks, inline code
// and bold. Every character of the input is escaped first, so the output
// holds no markup but its own: no HTML, links or images of the input
// survive as such.
func RenderMarkdown(src string) string {
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var para []string
	list := ""
	flushPara := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	openList := func(tag string) {
		if list != tag {
			closeList()
			b.WriteString("<" + tag + ">\n")
			list = tag
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			flushPara()
			closeList()
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, lines[i])
			}
			b.WriteString("<pre><code>" + html.EscapeString(strings.Join(code, "\n")) + "</code></pre>\n")
		case trimmed == "":
			flushPara()
			closeList()
		case headingRE.MatchString(trimmed):
			flushPara()
			closeList()
			m := headingRE.FindStringSubmatch(trimmed)
			// The page's own headings come first: out.md's start at h3.
			lvl := min(len(m[1])+2, 6)
			tag := "h" + string(rune('0'+lvl))
			b.WriteString("<" + tag + ">" + inline(m[2]) + "</" + tag + ">\n")
		case bulletRE.MatchString(line):
			flushPara()
			openList("ul")
			b.WriteString("<li>" + inline(bulletRE.FindStringSubmatch(line)[1]) + "</li>\n")
		case numberedRE.MatchString(line):
			flushPara()
			openList("ol")
			b.WriteString("<li>" + inline(numberedRE.FindStringSubmatch(line)[1]) + "</li>\n")
		default:
			closeList()
			para = append(para, trimmed)
		}
	}
	flushPara()
	closeList()
	return b.String()
}

// inline escapes s and marks up its code spans and bold text.
func inline(s string) string {
	s = html.EscapeString(s)
	s = codeSpanRE.ReplaceAllString(s, "<code>$1</code>")
	return boldRE.ReplaceAllString(s, "<strong>$1</strong>")
}
