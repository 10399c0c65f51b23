package crypto

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"sync"
)

// SIVKey seals deterministically: the nonce is HMAC-SHA256(macKey,
// plaintext)[:12] and the ciphertext AES-256-GCM(encKey, nonce, plaintext).
// The same key and plaintext always give the same bytes (so identical chunks
// deduplicate), and a key that meets two different plaintexts, as a
// content-derived key does when one chunk is compressed by two zstd versions,
// gives them two different nonces: nonce reuse is designed out.
//
// encKey and macKey are derived once, in NewSIVKey. A SIVKey is safe for
// concurrent use.
type SIVKey struct {
	aead   cipher.AEAD
	macKey Key
	// mac is a keyed HMAC state kept for reuse: a host's trees are all sealed
	// under one SIVKey, and keying HMAC anew costs more than sealing a small
	// tree. Whoever finds mu taken keys a fresh one rather than wait. (Not a
	// sync.Pool: every chunk has its own SIVKey, and a pool per key costs a
	// global registration and more garbage than it saves.)
	mu  sync.Mutex
	mac hash.Hash
}

// NewSIVKey derives the encryption and MAC subkeys of key.
func NewSIVKey(key Key) *SIVKey {
	var encKey, macKey Key
	deriveKeys(key[:], nil, labelSIV, &encKey, &macKey)
	return &SIVKey{aead: newGCM(&encKey), macKey: macKey}
}

// Seal appends nonce || AES-256-GCM(plaintext) to dst and returns the result.
// dst must not overlap plaintext.
func (k *SIVKey) Seal(dst, plaintext []byte) []byte {
	ret, out := sliceForAppend(dst, NonceSize+len(plaintext)+TagSize)
	k.syntheticNonce(out[:NonceSize], plaintext)
	k.aead.Seal(out[NonceSize:NonceSize], out[:NonceSize], plaintext, nil)
	return ret
}

// Open authenticates and decrypts sealed, appends the plaintext to dst, and
// checks that the nonce is the one the plaintext implies. Any mismatch is
// ErrAuth. dst must not overlap sealed.
func (k *SIVKey) Open(dst, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open sealed data of %d bytes (shorter than %d): %w", len(sealed), Overhead, ErrAuth)
	}
	nonce := sealed[:NonceSize]
	ret, err := k.aead.Open(dst, nonce, sealed[NonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("open sealed data: %w", ErrAuth)
	}
	// GCM already authenticated the bytes; this check rejects a ciphertext
	// that was sealed under a nonce not derived from its plaintext, i.e. not
	// by this construction, so Open accepts exactly what Seal produces.
	var want [NonceSize]byte
	k.syntheticNonce(want[:], ret[len(dst):])
	if subtle.ConstantTimeCompare(want[:], nonce) != 1 {
		clear(ret[len(dst):])
		return nil, fmt.Errorf("open sealed data: synthetic nonce mismatch: %w", ErrAuth)
	}
	return ret, nil
}

// OpenAuthenticated is Open without the synthetic-nonce re-check: the GCM
// tag alone authenticates every byte under the key, which is all a reader
// needs to trust the plaintext. The re-check only proves the writer
// followed the SIV rule, and costs an HMAC-SHA256 pass over the plaintext,
// so the read paths (restore, dump, mount) use this and `check
// --read-data` uses Open.
func (k *SIVKey) OpenAuthenticated(dst, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open sealed data of %d bytes (shorter than %d): %w", len(sealed), Overhead, ErrAuth)
	}
	ret, err := k.aead.Open(dst, sealed[:NonceSize], sealed[NonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("open sealed data: %w", ErrAuth)
	}
	return ret, nil
}

func (k *SIVKey) syntheticNonce(nonce, plaintext []byte) {
	if !k.mu.TryLock() {
		sumNonce(nonce, hmac.New(sha256.New, k.macKey[:]), plaintext)
		return
	}
	if k.mac == nil {
		k.mac = hmac.New(sha256.New, k.macKey[:])
	} else {
		k.mac.Reset()
	}
	sumNonce(nonce, k.mac, plaintext)
	k.mu.Unlock()
}

func sumNonce(nonce []byte, mac hash.Hash, plaintext []byte) {
	mac.Write(plaintext)
	var sum [sha256.Size]byte
	copy(nonce, mac.Sum(sum[:0]))
}

// SealDeterministic is NewSIVKey(key).Seal(dst, plaintext). Use a SIVKey to
// seal many plaintexts under one key.
func SealDeterministic(key Key, dst, plaintext []byte) []byte {
	return NewSIVKey(key).Seal(dst, plaintext)
}

// OpenDeterministic is NewSIVKey(key).Open(dst, sealed).
func OpenDeterministic(key Key, dst, sealed []byte) ([]byte, error) {
	return NewSIVKey(key).Open(dst, sealed)
}
