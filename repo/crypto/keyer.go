package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// ChunkKeyer derives convergent chunk keys from the organisation secret:
// identical plaintext under the same secret gives the identical key, hence the
// identical sealed blob, so chunks deduplicate across every machine of the
// organisation. Without the secret nobody, a server included, can compute the
// key of a guessed chunk and so cannot confirm that the store holds a file.
// A ChunkKeyer is safe for concurrent use.
type ChunkKeyer struct {
	// HMAC state is not safe for concurrent use, so each call borrows a keyed
	// instance: Reset restores the keyed state without re-hashing the key.
	macs sync.Pool
}

// NewChunkKeyer derives the chunk-key subkey of the organisation secret.
func NewChunkKeyer(orgSecret Key) *ChunkKeyer {
	subkey := deriveKey(orgSecret[:], labelChunkKey)
	k := &ChunkKeyer{}
	k.macs.New = func() any { return hmac.New(sha256.New, subkey[:]) }
	return k
}

// ChunkKey returns the key that seals plaintext:
// HMAC-SHA256(HKDF(orgSecret, "costor chunk key v1"), plaintext).
func (k *ChunkKeyer) ChunkKey(plaintext []byte) Key {
	mac := k.macs.Get().(hash.Hash)
	mac.Write(plaintext)
	var key Key
	mac.Sum(key[:0])
	mac.Reset()
	k.macs.Put(mac)
	return key
}
