package ask

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenAttemptScope(t *testing.T) {
	tk, err := NewTokens("operator-token-0123456789")
	require.NoError(t, err)
	const job = "job_01JZ0000000000000000000000"

	jobID, attempt, op, err := tk.CheckAttempt(tk.MintAttempt(job, 3))
	require.NoError(t, err)
	require.Equal(t, job, jobID)
	require.Equal(t, 3, attempt)
	require.False(t, op)

	// A token of Mint names no attempt and stays valid.
	jobID, attempt, _, err = tk.CheckAttempt(tk.Mint(job))
	require.NoError(t, err)
	require.Equal(t, job, jobID)
	require.Zero(t, attempt)

	// The attempt is under the MAC: changing it breaks the token.
	tok := tk.MintAttempt(job, 3)
	forged := strings.Replace(tok, "."+"3"+".", ".4.", 1)
	require.NotEqual(t, tok, forged)
	_, _, _, err = tk.CheckAttempt(forged)
	require.ErrorIs(t, err, ErrBadToken)

	// Another operator's key does not verify it.
	other, err := NewTokens("another-operator-token-xyz")
	require.NoError(t, err)
	_, _, _, err = other.CheckAttempt(tok)
	require.ErrorIs(t, err, ErrBadToken)

	// Attempts are positive decimal numbers written one way only: a MAC
	// over "0", "-1" or "03" is refused even when it is valid.
	for _, n := range []string{"0", "-1", "03", "x"} {
		scope := job + "." + n
		_, _, _, err := tk.CheckAttempt("trj." + scope + "." + tk.mac(scope))
		require.ErrorIs(t, err, ErrBadToken, n)
	}

	_, _, op, err = tk.CheckAttempt("operator-token-0123456789")
	require.NoError(t, err)
	require.True(t, op)
	_, _, _, err = tk.CheckAttempt("")
	require.ErrorIs(t, err, ErrNoToken)
}
