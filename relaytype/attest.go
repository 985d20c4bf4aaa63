package relaytype

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrBadSignature means an answer's attestation signature does not verify.
var ErrBadSignature = errors.New("attestation signature does not verify")

// KeyID returns the id of a relay public key: the first 16 hex digits of
// its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SignAttestation fills the attestation of rec with the answer digest, ask
// id and key id, and signs it with priv.
func SignAttestation(priv ed25519.PrivateKey, askID string, status AnswerStatus, text string, answerJSON []byte, att *Attestation) error {
	digest, err := AnswerDigest(status, text, answerJSON)
	if err != nil {
		return fmt.Errorf("sign attestation: %w", err)
	}
	att.AskID, att.AnswerDigest = askID, digest
	att.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	msg, err := att.SigningBytes()
	if err != nil {
		return fmt.Errorf("sign attestation: %w", err)
	}
	att.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))
	return nil
}

// VerifyAttestation checks that rec's attestation is signed by pub and
// covers this very answer to this very ask.
func VerifyAttestation(pub ed25519.PublicKey, rec *AnswerRecord) error {
	att := rec.Attestation
	if att == nil || att.Signature == "" {
		return fmt.Errorf("%w: the answer carries no signature", ErrBadSignature)
	}
	if att.KeyID != KeyID(pub) {
		return fmt.Errorf("%w: signed by key %s, not %s", ErrBadSignature, att.KeyID, KeyID(pub))
	}
	if att.AskID != rec.AskID {
		return fmt.Errorf("%w: signed for ask %s, not %s", ErrBadSignature, att.AskID, rec.AskID)
	}
	digest, err := AnswerDigest(rec.Status, rec.AnswerText, rec.AnswerJSON)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if digest != att.AnswerDigest {
		return fmt.Errorf("%w: the answer was changed after signing", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(att.Signature)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	msg, err := att.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}
