package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// Sizes of the AES-256-GCM framing shared by deterministic and random sealing.
const (
	NonceSize = 12
	TagSize   = 16
	// Overhead is how much longer sealed data is than its plaintext.
	Overhead = NonceSize + TagSize
)

// ErrAuth reports sealed data that does not authenticate under the key:
// corruption, tampering, or the wrong key.
var ErrAuth = errors.New("ciphertext authentication failed")

// newGCM returns AES-256-GCM under k. aes.NewCipher fails only on a bad key
// length, which the Key type rules out.
func newGCM(k *Key) cipher.AEAD {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic("crypto: aes: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("crypto: gcm: " + err.Error())
	}
	return aead
}

// SealRandom appends nonce || AES-256-GCM(key, nonce, plaintext, ad) to dst,
// with a random 96-bit nonce. Use it where the same key seals many unrelated
// messages (pack headers, wrapped key files); random nonces bound a key to
// about 2^32 messages. dst must not overlap plaintext.
func SealRandom(key Key, dst, plaintext, ad []byte) ([]byte, error) {
	return sealRandom(rand.Reader, &key, dst, plaintext, ad)
}

func sealRandom(random io.Reader, key *Key, dst, plaintext, ad []byte) ([]byte, error) {
	ret, out := sliceForAppend(dst, NonceSize+len(plaintext)+TagSize)
	if _, err := io.ReadFull(random, out[:NonceSize]); err != nil {
		return nil, fmt.Errorf("read random nonce: %w", err)
	}
	newGCM(key).Seal(out[NonceSize:NonceSize], out[:NonceSize], plaintext, ad)
	return ret, nil
}

// OpenRandom authenticates and decrypts the output of SealRandom, appending
// the plaintext to dst. It fails with ErrAuth unless key and ad are the ones
// sealed with. dst must not overlap sealed.
func OpenRandom(key Key, dst, sealed, ad []byte) ([]byte, error) {
	return openRandom(&key, dst, sealed, ad)
}

func openRandom(key *Key, dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open sealed data of %d bytes (shorter than %d): %w", len(sealed), Overhead, ErrAuth)
	}
	ret, err := newGCM(key).Open(dst, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed data: %w", ErrAuth)
	}
	return ret, nil
}
