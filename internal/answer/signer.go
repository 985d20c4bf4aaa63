package answer

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SigningKeyFile is the file in the data directory that holds the relay's
// Ed25519 attestation key (base64 of the 32-byte seed, mode 0600).
const SigningKeyFile = "attestation.key"

// LoadSigningKey returns the relay's attestation key from dataDir,
// generating and storing one on first use.
func LoadSigningKey(dataDir string) (ed25519.PrivateKey, error) {
	p := filepath.Join(dataDir, SigningKeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s: not a base64 Ed25519 seed; delete it to generate a new key", p)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read attestation key: %w", err)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.CreateTemp(dataDir, ".attestation-key-*")
	if err != nil {
		return nil, fmt.Errorf("write attestation key: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(seed) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write attestation key: %w", werr)
	}
	// Link, so that of two relays starting at once the first key wins.
	if err := os.Link(f.Name(), p); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadSigningKey(dataDir)
		}
		return nil, fmt.Errorf("write attestation key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
