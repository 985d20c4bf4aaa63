package relaytype

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestValidIDsMatchPatterns: ValidJobID and ValidCommit accept exactly
// what their patterns match.
func TestValidIDsMatchPatterns(t *testing.T) {
	t.Parallel()
	jobRE := regexp.MustCompile(jobIDPattern)
	commitRE := regexp.MustCompile(CommitPattern)
	hex40 := strings.Repeat("a1B2", 10)
	cases := []string{
		"", "job_", "job_a", "job_A-z_9", "job_" + strings.Repeat("x", 64), "job_" + strings.Repeat("x", 65),
		"Job_a", "job_a\n", "job_a b", "job_é", "xjob_a", "job_a/../b", "job_\x00",
		hex40, hex40 + "\n", hex40[:39], hex40 + "0", strings.Repeat("g", 40), strings.ToUpper(hex40), " " + hex40[1:],
		strings.Repeat("0", 40), strings.Repeat("F", 40), strings.Repeat("é", 20),
	}
	for c := range 256 {
		cases = append(cases, "job_"+string(rune(c)), strings.Repeat("0", 39)+string(rune(c)), "job_"+string([]byte{byte(c)}))
	}
	for _, c := range cases {
		require.Equal(t, jobRE.MatchString(c), ValidJobID(c), "job id %q", c)
		require.Equal(t, commitRE.MatchString(c), ValidCommit(c), "commit %q", c)
	}
}
