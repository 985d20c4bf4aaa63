package relay

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// The parts a JobSpec's outputContract can require.
const (
	// ContractDiff requires a non-empty patch.diff.
	ContractDiff = relaytype.OutputDiff
	// ContractTestPlan requires a "Test plan" section in out.md.
	ContractTestPlan = relaytype.OutputTestPlan
	// ContractNotes requires a "Notes" section in out.md.
	ContractNotes = relaytype.OutputNotes
)

// sectionNames are the out.md sections, in the order out.md lists them.
var sectionNames = []string{ContractTestPlan, ContractNotes}

// ErrOutputContract is what errors.Is finds in a *ContractError.
var ErrOutputContract = errors.New("output contract not met")

// ContractError says which parts of a job's outputContract are missing.
type ContractError struct {
	// Missing describes each missing part, for example "NOTES section
	// missing from out.md".
	Missing []string
}

func (e *ContractError) Error() string {
	return "outputContract: " + strings.Join(e.Missing, "; ")
}

// Is makes errors.Is(err, ErrOutputContract) true.
func (e *ContractError) Is(target error) bool { return target == ErrOutputContract }

// CheckOutputContract checks a job's results against its outputContract
// and returns a *ContractError naming every missing part, or nil:
//
//   - DIFF: patch (patch.diff) must not be empty (whitespace only counts
//     as empty);
//   - TEST_PLAN, NOTES: out.md must have that section (see FindSections)
//     with at least one non-blank line in it.
//
// An empty contract requires nothing.
func CheckOutputContract(contract []string, patch, out []byte) error {
	var missing []string
	var sections map[string]Section
	done := map[string]bool{}
	for _, part := range contract {
		if done[part] {
			continue
		}
		done[part] = true
		switch part {
		case ContractDiff:
			if len(bytes.TrimSpace(patch)) == 0 {
				missing = append(missing, "DIFF missing: patch.diff is empty (the executor changed no file)")
			}
		case ContractTestPlan, ContractNotes:
			if sections == nil {
				sections = FindSections(string(out))
			}
			switch sec, ok := sections[part]; {
			case !ok:
				missing = append(missing, part+" section missing from out.md")
			case strings.TrimSpace(sec.Body) == "":
				missing = append(missing, part+" section empty in out.md")
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &ContractError{Missing: missing}
}

// Section is one TEST_PLAN or NOTES section of a Markdown text.
type Section struct {
	// Name is ContractTestPlan or ContractNotes.
	Name string
	// Body is the section's lines after its heading, as written.
	Body string
}

// FindSections returns the TEST_PLAN and NOTES sections of a Markdown
// text, keyed by name. The rule:
//
//   - A section starts at a line that is a Markdown ATX heading (one to
//     six "#", a space, the title; up to three spaces of indentation;
//     closing "#"s allowed) or, alone on its line, the title followed by
//     ":" or in bold ("Test plan:", "**Notes**", "**Notes:**").
//   - The title is "Test plan" or "Notes", in any case, with spaces, "_"
//     or "-" between words and an optional trailing ":": "### TEST_PLAN",
//     "## Test Plan", "# Notes", "Test-plan:" all count.
//   - Lines inside fenced code blocks (``` or ~~~) and lines indented by
//     four spaces or a tab never start or end a section.
//   - A section ends where another TEST_PLAN or NOTES section starts, or
//     at a heading of the same or a higher level (fewer "#"); a section
//     started by a title line ends at any heading.
//   - When a section appears more than once, the last occurrence with a
//     non-blank line counts (else the last one).
func FindSections(md string) map[string]Section {
	found := map[string]Section{}
	var cur *Section
	curLevel := 0
	var fence string // the open fence's marker run, "" outside a fence
	closeCur := func() {
		if cur == nil {
			return
		}
		if prev, ok := found[cur.Name]; !ok || strings.TrimSpace(cur.Body) != "" || strings.TrimSpace(prev.Body) == "" {
			found[cur.Name] = *cur
		}
		cur = nil
	}
	for _, line := range strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n") {
		if fence != "" {
			if isFenceClose(line, fence) {
				fence = ""
			}
			if cur != nil {
				cur.Body += line + "\n"
			}
			continue
		}
		if f := fenceOpen(line); f != "" {
			fence = f
			if cur != nil {
				cur.Body += line + "\n"
			}
			continue
		}
		level, title, heading := atxHeading(line)
		name := ""
		if heading {
			name = sectionName(title)
		} else if t, ok := titleLine(line); ok {
			if name = sectionName(t); name != "" {
				level = 7
			}
		}
		switch {
		case name != "":
			closeCur()
			cur, curLevel = &Section{Name: name}, level
			continue
		case heading && cur != nil && level <= curLevel:
			closeCur()
		}
		if cur != nil {
			cur.Body += line + "\n"
		}
	}
	closeCur()
	return found
}

// sectionName returns ContractTestPlan or ContractNotes for a heading or
// title line's text, or "".
func sectionName(title string) string {
	t := strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(title), ":")))
	if t == "" || t[0] < 'a' || t[0] > 'z' {
		// A list item ("- Notes:") or other punctuation first is text.
		return ""
	}
	t = strings.Join(strings.FieldsFunc(t, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '_' || r == '-'
	}), " ")
	switch t {
	case "test plan":
		return ContractTestPlan
	case "notes":
		return ContractNotes
	}
	return ""
}

// indented reports whether line is indented as a Markdown code block
// (four spaces, or a tab, before any text).
func indented(line string) bool {
	n := 0
	for _, c := range line {
		switch c {
		case ' ':
			n++
		case '\t':
			return true
		default:
			return n >= 4
		}
		if n >= 4 {
			return true
		}
	}
	return false
}

// atxHeading parses a Markdown ATX heading: its level (1-6) and title.
func atxHeading(line string) (int, string, bool) {
	if indented(line) {
		return 0, "", false
	}
	t := strings.TrimLeft(line, " ")
	level := 0
	for level < len(t) && t[level] == '#' {
		level++
	}
	if level == 0 || level > 6 {
		return 0, "", false
	}
	rest := t[level:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return 0, "", false
	}
	rest = strings.TrimSpace(rest)
	// A closing sequence of "#"s, after a space, is not part of the title.
	if trimmed := strings.TrimRight(rest, "#"); trimmed != rest && (trimmed == "" || strings.HasSuffix(trimmed, " ") || strings.HasSuffix(trimmed, "\t")) {
		rest = strings.TrimSpace(trimmed)
	}
	return level, rest, true
}

// titleLine parses a line that is only a title followed by ":" or in bold
// ("Notes:", "**Notes**", "**Notes:**", "__Notes__:").
func titleLine(line string) (string, bool) {
	if indented(line) {
		return "", false
	}
	t := strings.TrimSpace(line)
	colon := strings.HasSuffix(t, ":")
	t = strings.TrimSuffix(t, ":")
	bold := false
	for _, m := range []string{"**", "__"} {
		if len(t) > 2*len(m) && strings.HasPrefix(t, m) && strings.HasSuffix(t, m) {
			t, bold = t[len(m):len(t)-len(m)], true
			break
		}
	}
	if !colon && !bold {
		return "", false
	}
	return t, true
}

// fenceOpen returns the marker run ("```", "~~~~") of a line that opens a
// fenced code block, or "".
func fenceOpen(line string) string {
	if indented(line) {
		return ""
	}
	t := strings.TrimLeft(line, " ")
	for _, c := range []byte{'`', '~'} {
		n := 0
		for n < len(t) && t[n] == c {
			n++
		}
		if n >= 3 {
			return t[:n]
		}
	}
	return ""
}

// isFenceClose reports whether line closes a fenced block opened by
// fence: the same character, at least as many, and nothing else.
func isFenceClose(line, fence string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= len(fence) && strings.Trim(t, fence[:1]) == ""
}

// renderSections writes the sections found as out.md: "### NAME", a blank
// line, the trimmed body; in the order of sectionNames.
func renderSections(found map[string]Section) []byte {
	var parts []string
	for _, name := range sectionNames {
		if sec, ok := found[name]; ok {
			parts = append(parts, fmt.Sprintf("### %s\n\n%s\n", name, strings.TrimSpace(sec.Body)))
		}
	}
	return []byte(strings.Join(parts, "\n"))
}
