// Package packtest provides HeaderSealers for tests: a deterministic
// AES-256-GCM sealer for golden files and an identity sealer that lets
// fuzzers reach the header parser. Neither is fit for real data.
package packtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
)

// Sealer seals with AES-256-GCM under a fixed, public key, deriving the
// nonce from the plaintext so the same header always seals to the same bytes.
// The layout is the production one: nonce || ciphertext || tag.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns the deterministic test sealer.
func NewSealer() *Sealer {
	key := sha256.Sum256([]byte("costor packtest key, public, never for real data"))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Sealer{aead: aead}
}

// Seal seals plaintext.
func (s *Sealer) Seal(plaintext []byte) ([]byte, error) {
	sum := sha256.Sum256(plaintext)
	nonce := sum[:s.aead.NonceSize()]
	out := make([]byte, 0, len(nonce)+len(plaintext)+s.aead.Overhead())
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, nil), nil
}

// Open opens what Seal sealed.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("sealed header too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], nil)
}

// IdentitySealer stores headers in plaintext.
type IdentitySealer struct{}

// Seal returns a copy of plaintext.
func (IdentitySealer) Seal(plaintext []byte) ([]byte, error) {
	return append([]byte(nil), plaintext...), nil
}

// Open returns sealed unchanged.
func (IdentitySealer) Open(sealed []byte) ([]byte, error) { return sealed, nil }
