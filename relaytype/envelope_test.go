package relaytype_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// envelopeVector is one entry of testdata/envelope_vectors.json, written by
// testdata/gen_envelope_vectors.mjs with the seed TypeScript SDK's
// algorithm (recursive key sort, JSON.stringify, SHA-256).
type envelopeVector struct {
	Name      string `json:"name"`
	Envelope  string `json:"envelope"`
	Canonical string `json:"canonical"`
	SHA256    string `json:"sha256"`
	// JCS is set only in envelope_divergences.json: the RFC 8785 form
	// where the TypeScript algorithm differs from it.
	JCS string `json:"jcs"`
}

func loadVectors(t *testing.T, file string) map[string]envelopeVector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	require.NoError(t, err, "regenerate with: node relaytype/testdata/gen_envelope_vectors.mjs")
	var list []envelopeVector
	require.NoError(t, json.Unmarshal(raw, &list))
	require.NotEmpty(t, list)
	byName := make(map[string]envelopeVector, len(list))
	for _, v := range list {
		require.NotContains(t, byName, v.Name, "duplicate vector")
		byName[v.Name] = v
	}
	return byName
}

func TestContextHashVectors(t *testing.T) {
	t.Parallel()
	for name, v := range loadVectors(t, "envelope_vectors.json") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The vector file's own hash must be over its canonical string,
			// so a hand edit that breaks one or the other is caught here.
			sum := sha256.Sum256([]byte(v.Canonical))
			require.Equal(t, hex.EncodeToString(sum[:]), v.SHA256, "vector is inconsistent")

			canonical, err := relaytype.CanonicalJSON([]byte(v.Envelope))
			require.NoError(t, err)
			require.Equal(t, v.Canonical, string(canonical))

			hash, err := relaytype.ContextHash([]byte(v.Envelope))
			require.NoError(t, err)
			require.Equal(t, v.SHA256, hash)

			// Canonical JSON is a fixed point.
			again, err := relaytype.ContextHash(canonical)
			require.NoError(t, err)
			require.Equal(t, v.SHA256, again)
		})
	}
}

// TestContextHashTypeScriptDivergences pins down the inputs on which the
// seed's TypeScript hash is not RFC 8785, and that relaytype follows RFC
// 8785 there: JavaScript puts array-index keys ("9", "10") first in
// numeric order, and drops a "__proto__" key when rebuilding the object.
// Envelopes with such keys hash differently from the TypeScript SDK.
func TestContextHashTypeScriptDivergences(t *testing.T) {
	t.Parallel()
	for name, v := range loadVectors(t, "envelope_divergences.json") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			canonical, err := relaytype.CanonicalJSON([]byte(v.Envelope))
			require.NoError(t, err)
			require.Equal(t, v.JCS, string(canonical))
			require.NotEqual(t, v.Canonical, string(canonical))

			hash, err := relaytype.ContextHash([]byte(v.Envelope))
			require.NoError(t, err)
			require.NotEqual(t, v.SHA256, hash)

			// So the relay refuses such envelopes, naming the key.
			err = relaytype.CheckEnvelopeKeys([]byte(v.Envelope))
			require.Error(t, err)
			require.Contains(t, err.Error(), "facts.")
		})
	}
}

// Every envelope on which the two hashes agree passes CheckEnvelopeKeys.
func TestCheckEnvelopeKeysAcceptsCompatibleEnvelopes(t *testing.T) {
	t.Parallel()
	for name, v := range loadVectors(t, "envelope_vectors.json") {
		require.NoError(t, relaytype.CheckEnvelopeKeys([]byte(v.Envelope)), name)
	}
	for _, ok := range []string{`{"a":{"01":1,"4294967295":2,"-1":3,"1.5":4,"x1":5}}`} {
		require.NoError(t, relaytype.CheckEnvelopeKeys([]byte(ok)))
	}
	err := relaytype.CheckEnvelopeKeys([]byte(`{"tool_caps":{"db":[{"0":true}]}}`))
	require.ErrorContains(t, err, "tool_caps.db[0].0")
}

func TestContextHashInvalidJSON(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":          ``,
		"truncated":      `{"job_snapshot":{}`,
		"trailing_comma": `{"role":"default",}`,
		"duplicate_key":  `{"role":"a","role":"b"}`,
		"lone_surrogate": `{"role":"\uD83D"}`,
		"two_values":     `{} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := relaytype.ContextHash([]byte(in))
			require.Error(t, err)
		})
	}
}

func TestNewEnvelopeDefaults(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t, "envelope_vectors.json")

	tests := []struct {
		name                                string
		repo, commit, profile, policy, role string
		facts, toolCaps                     map[string]any
		want                                string
	}{
		{
			name: "all_defaults",
			repo: "unknown", commit: "unknown", profile: "dev", policy: "1.0",
			want: `{"job_snapshot":{},"role":"default"}`,
		},
		{
			name:  "all_empty",
			facts: map[string]any{}, toolCaps: map[string]any{},
			want: `{"job_snapshot":{},"role":"default"}`,
		},
		{
			name: "explicit_role",
			repo: "unknown", commit: "unknown", profile: "dev", policy: "1.0", role: "clarifier",
			want: `{"job_snapshot":{},"role":"clarifier"}`,
		},
		{
			name: "non_defaults_kept",
			repo: "github.com/u/r", commit: "abc", profile: "prod", policy: "2.0", role: "code_reviewer",
			facts:    map[string]any{"branch": "main"},
			toolCaps: map[string]any{"database": map[string]any{"timeout_ms": 5000, "read_only": true}},
			want: `{"job_snapshot":{"repo":"github.com/u/r","commit_sha":"abc","env_profile":"prod","policy_version":"2.0"},` +
				`"facts":{"branch":"main"},"tool_caps":{"database":{"timeout_ms":5000,"read_only":true}},"role":"code_reviewer"}`,
		},
		{
			name: "staging_profile_default_policy",
			repo: "unknown", commit: "def", profile: "staging", policy: "1.0",
			want: `{"job_snapshot":{"commit_sha":"def","env_profile":"staging"},"role":"default"}`,
		},
		{
			// Only the exact default strings are omitted.
			name: "case_sensitive_defaults",
			repo: "Unknown", profile: "DEV", policy: "1.00",
			want: `{"job_snapshot":{"repo":"Unknown","env_profile":"DEV","policy_version":"1.00"},"role":"default"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := relaytype.NewEnvelope(tt.repo, tt.commit, tt.profile, tt.policy, tt.role, tt.facts, tt.toolCaps)
			raw, err := json.Marshal(e)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(raw))

			got, err := e.Hash()
			require.NoError(t, err)
			want, err := relaytype.ContextHash([]byte(tt.want))
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}

	t.Run("minimal_vector", func(t *testing.T) {
		t.Parallel()
		e := relaytype.NewEnvelope("unknown", "unknown", "dev", "1.0", "", nil, nil)
		raw, err := json.Marshal(e)
		require.NoError(t, err)
		canonical, err := relaytype.CanonicalJSON(raw)
		require.NoError(t, err)
		require.Equal(t, vectors["minimal"].Canonical, string(canonical))
		got, err := e.Hash()
		require.NoError(t, err)
		require.Equal(t, vectors["minimal"].SHA256, got)
	})
}

func TestEnvelopeHashMatchesJSON(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t, "envelope_vectors.json")

	t.Run("spec_typical", func(t *testing.T) {
		t.Parallel()
		e := relaytype.Envelope{
			JobSnapshot: relaytype.JobSnapshot{
				Repo:          "github.com/u/r",
				CommitSHA:     "0123456789abcdef0123456789abcdef01234567",
				EnvProfile:    "prod",
				PolicyVersion: "2.0",
			},
			Facts:    map[string]any{"branch": "main"},
			ToolCaps: map[string]any{"database": map[string]any{"timeout_ms": 5000, "read_only": true}},
			Role:     "code_reviewer",
		}
		got, err := e.Hash()
		require.NoError(t, err)
		require.Equal(t, vectors["spec_typical"].SHA256, got)
	})

	t.Run("escaping_and_numbers", func(t *testing.T) {
		t.Parallel()
		// encoding/json escapes <, > and & as \u003c, \u003e, \u0026 and
		// writes U+2028 as \u2028; the canonical form must undo all of it.
		e := relaytype.Envelope{
			JobSnapshot: relaytype.JobSnapshot{Repo: "github.com/café/中文"},
			Facts: map[string]any{
				"html":  "<a href=\"x\">&</a>",
				"ls":    "a\u2028b",
				"emoji": "😀 𝄞",
				"ctl":   "\x01\x1f\x7f\n\t",
				"float": 0.1,
				"big":   1e21,
				"small": 1e-7,
				"int":   9007199254740991,
				"neg":   -2.5,
				"list":  []any{3, 1, 2, nil, true},
			},
			ToolCaps: map[string]any{"\uE000": map[string]any{}, "😀": map[string]any{"ö": 1, "z": 2}},
			Role:     "réviseur",
		}
		hand := `{
			"role": "réviseur",
			"tool_caps": {"😀": {"z": 2, "ö": 1}, "\uE000": {}},
			"job_snapshot": {"repo": "github.com/caf\u00e9/\u4e2d\u6587"},
			"facts": {
				"list": [3, 1, 2, null, true],
				"neg": -2.5, "int": 9007199254740991, "small": 0.0000001, "big": 1000000000000000000000,
				"float": 1e-1,
				"ctl": "\u0001\u001F\u007f\n\t",
				"emoji": "\ud83d\ude00 \uD834\uDD1E",
				"ls": "a\u2028b",
				"html": "<a href=\"x\">&</a>"
			}
		}`
		got, err := e.Hash()
		require.NoError(t, err)
		want, err := relaytype.ContextHash([]byte(hand))
		require.NoError(t, err)
		require.Equal(t, want, got)

		raw, err := json.Marshal(e)
		require.NoError(t, err)
		canonical, err := relaytype.CanonicalJSON(raw)
		require.NoError(t, err)
		require.Contains(t, string(canonical), `"html":"<a href=\"x\">&</a>"`)
		require.Contains(t, string(canonical), `"big":1e+21`)
		require.Contains(t, string(canonical), `"small":1e-7`)
		require.Contains(t, string(canonical), `"tool_caps":{"😀":{"z":2,"ö":1},"`+"\uE000"+`":{}}`)
	})
}
