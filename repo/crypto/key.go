package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// KeySize is the length of every symmetric key, in bytes.
const KeySize = 32

// Key is a 256-bit symmetric key.
type Key [KeySize]byte

// HKDF info labels. Each names one derived key; changing one changes the
// format, so they carry a version.
const (
	labelSIV        = "costor siv v1"
	labelChunkKey   = "costor chunk key v1"
	labelPolynomial = "costor chunker polynomial v1"
	labelEnvelope   = "costor envelope v1"
	labelHostData   = "costor host data key v1"
)

// NewRandomKey returns a key read from crypto/rand.
func NewRandomKey() (Key, error) { return randomKey(rand.Reader) }

// randomKey is the seam through which tests make randomness reproducible.
func randomKey(r io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return Key{}, fmt.Errorf("read random key: %w", err)
	}
	return k, nil
}

// deriveKeys fills out with HKDF-SHA256(secret, salt, label). One call yields
// several keys from one extract step.
func deriveKeys(secret, salt []byte, label string, out ...*Key) {
	r := hkdf.New(sha256.New, secret, salt, []byte(label))
	for _, k := range out {
		// Cannot fail: HKDF-SHA256 yields up to 8160 bytes and we ask for far fewer.
		if _, err := io.ReadFull(r, k[:]); err != nil {
			panic("crypto: hkdf: " + err.Error())
		}
	}
}

// deriveKey is deriveKeys for a single key without salt.
func deriveKey(secret []byte, label string) Key {
	var k Key
	deriveKeys(secret, nil, label, &k)
	return k
}

// sliceForAppend extends in by n bytes, reallocating only when needed, and
// returns the whole slice and the n new bytes (the idiom of crypto/cipher).
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}
