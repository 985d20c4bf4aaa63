package relay_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestFindSections(t *testing.T) {
	t.Parallel()
	type want map[string]string // name → trimmed body
	for _, tc := range []struct {
		name string
		md   string
		want want
	}{
		{"level three", "### TEST_PLAN\nrun it\n### NOTES\nnone\n", want{"TEST_PLAN": "run it", "NOTES": "none"}},
		{"title case and levels", "## Test Plan\nx\n# Notes\ny\n", want{"TEST_PLAN": "x", "NOTES": "y"}},
		{"lower case, dash, trailing colon", "#### test-plan:\nx\n###### notes ##\ny", want{"TEST_PLAN": "x", "NOTES": "y"}},
		{"title lines", "Summary\nTest plan:\n- go test\nNotes:\n- none\n", want{"TEST_PLAN": "- go test", "NOTES": "- none"}},
		{"bold title lines", "**Test plan**\nx\n**Notes:**\ny\n__Notes__:\nz\n", want{"TEST_PLAN": "x", "NOTES": "z"}},
		{"indented heading up to three spaces", "   ## Notes\nx\n", want{"NOTES": "x"}},
		{"sub-heading stays inside", "## Notes\n### Details\nx\n## Other\ndropped\n", want{"NOTES": "### Details\nx"}},
		{"same level ends", "### NOTES\nkeep\n### Summary\ndrop\n", want{"NOTES": "keep"}},
		{"higher level ends", "### NOTES\nkeep\n# Summary\ndrop\n", want{"NOTES": "keep"}},
		{"title line ends at any heading", "Notes:\nkeep\n#### x\ndrop\n", want{"NOTES": "keep"}},
		{"fenced heading is text", "```\n## Notes\nx\n```\n", want{}},
		{"fence inside a section", "## Notes\n```md\n# not a heading\n```\nafter\n", want{"NOTES": "```md\n# not a heading\n```\nafter"}},
		{"tilde fence", "~~~~\nNotes:\n~~~\nstill fenced\n~~~~\nNotes:\nx\n", want{"NOTES": "x"}},
		{"indented code is text", "    ## Notes\n\tNotes:\n", want{}},
		{"empty section", "## Notes\n\n## Test plan\nx\n", want{"NOTES": "", "TEST_PLAN": "x"}},
		{"last non-empty occurrence counts", "## Notes\nfirst\n## Notes\n\n", want{"NOTES": "first"}},
		{"later occurrence wins", "## Notes\nfirst\n## Notes\nsecond\n", want{"NOTES": "second"}},
		{"not a heading", "#Notes\n##\nnotes about this\n- Notes:\nNotes: inline\nMy notes:\n", want{}},
		{"other words", "## Test plans\n## Notes and more\n## Release notes\n", want{}},
		{"crlf", "## Notes\r\nx\r\n", want{"NOTES": "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for name, sec := range relay.FindSections(tc.md) {
				require.Equal(t, name, sec.Name)
				got[name] = strings.TrimSpace(sec.Body)
			}
			require.Equal(t, map[string]string(tc.want), got)
		})
	}
}

func TestCheckOutputContract(t *testing.T) {
	t.Parallel()
	patch := []byte("diff --git a/x b/x\n")
	full := []byte("### TEST_PLAN\n\ngo test\n\n### NOTES\n\nnone\n")
	all := []string{"DIFF", "TEST_PLAN", "NOTES"}

	require.NoError(t, relay.CheckOutputContract(nil, nil, nil), "an empty contract requires nothing")
	require.NoError(t, relay.CheckOutputContract(all, patch, full))
	require.NoError(t, relay.CheckOutputContract([]string{"NOTES"}, nil, []byte("Notes:\nnone\n")))

	err := relay.CheckOutputContract([]string{"NOTES"}, patch, []byte("### TEST_PLAN\nx\n"))
	require.ErrorIs(t, err, relay.ErrOutputContract)
	require.EqualError(t, err, "outputContract: NOTES section missing from out.md")

	err = relay.CheckOutputContract(all, []byte(" \n"), []byte("## Notes\n\n"))
	var ce *relay.ContractError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{
		"DIFF missing: patch.diff is empty (the executor changed no file)",
		"TEST_PLAN section missing from out.md",
		"NOTES section empty in out.md",
	}, ce.Missing)

	err = relay.CheckOutputContract([]string{"TEST_PLAN", "TEST_PLAN"}, nil, nil)
	require.EqualError(t, err, "outputContract: TEST_PLAN section missing from out.md", "a part is named once")
}

func TestRenderOutSections(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"title lines", "building\nTest plan:\n- go test\nNotes:\n- none\n", "### TEST_PLAN\n\n- go test\n\n### NOTES\n\n- none\n"},
		{"one section", "## notes\nonly notes\n", "### NOTES\n\nonly notes\n"},
		{"fenced sections are output", "```\n### NOTES\n```\n", "```\n### NOTES\n```\n"},
		{"empty section kept", "### NOTES\n", "### NOTES\n\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := relay.RenderOut([]byte(tc.in))
			require.Equal(t, tc.want, string(out))
		})
	}
	// What RenderOut keeps is what the contract check finds.
	out := relay.RenderOut([]byte("noise\n**Test plan**\nrun\n# Notes\nfine\n"))
	require.NoError(t, relay.CheckOutputContract([]string{"TEST_PLAN", "NOTES"}, nil, out))
}

// An executor that echoes its prompt does not meet the contract with the
// prompt's own example sections.
func TestPromptExampleSectionsAreNotSections(t *testing.T) {
	t.Parallel()
	job := &relaytype.Job{BaselineCommit: strings.Repeat("c", 40), Spec: relaytype.JobSpec{
		Repo: relaytype.Repo{Type: "local", Path: "/src"}, Task: relaytype.Task{Title: "T", Description: "D"},
		OutputContract: []string{"TEST_PLAN", "NOTES"}}}
	p := relay.RenderPrompt(job, t.TempDir(), "/bin/relay")
	require.Contains(t, p, "### TEST_PLAN")
	require.Empty(t, relay.FindSections(p))
	require.ErrorIs(t, relay.CheckOutputContract(job.Spec.OutputContract, nil, relay.RenderOut([]byte(p))), relay.ErrOutputContract)
}
