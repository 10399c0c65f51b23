package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// contentKeyer computes HMAC-SHA256(subkey, plaintext), where subkey is
// derived from a secret under a label. HMAC state is not safe for concurrent
// use, so each call borrows a keyed instance from a pool: Reset restores the
// keyed state without re-hashing the key.
type contentKeyer struct {
	macs sync.Pool
}

func (c *contentKeyer) init(secret Key, label string) {
	subkey := deriveKey(secret[:], label)
	c.macs.New = func() any { return hmac.New(sha256.New, subkey[:]) }
}

func (c *contentKeyer) key(plaintext []byte) Key {
	mac := c.macs.Get().(hash.Hash)
	mac.Write(plaintext)
	var k Key
	mac.Sum(k[:0])
	mac.Reset()
	c.macs.Put(mac)
	return k
}

// ChunkKeyer derives convergent chunk keys from the organisation secret:
// identical plaintext under the same secret gives the identical key, hence the
// identical sealed blob, so chunks deduplicate across every machine of the
// organisation. Without the secret nobody, a server included, can compute the
// key of a guessed chunk and so cannot confirm that the store holds a file.
// A ChunkKeyer is safe for concurrent use.
type ChunkKeyer struct{ c contentKeyer }

// NewChunkKeyer derives the chunk-key subkey of the organisation secret.
func NewChunkKeyer(orgSecret Key) *ChunkKeyer {
	k := &ChunkKeyer{}
	k.c.init(orgSecret, labelChunkKey)
	return k
}

// ChunkKey returns the key that seals plaintext.
func (k *ChunkKeyer) ChunkKey(plaintext []byte) Key { return k.c.key(plaintext) }

// TreeKeyer derives the keys that seal a host's tree blobs from the host data
// key, so an unchanged directory seals to the same blob and keeps its ID while
// only holders of that host's data key can read it. A TreeKeyer is safe for
// concurrent use.
type TreeKeyer struct{ c contentKeyer }

// NewTreeKeyer derives the tree-key subkey of a host data key.
func NewTreeKeyer(hostDataKey Key) *TreeKeyer {
	k := &TreeKeyer{}
	k.c.init(hostDataKey, labelTreeKey)
	return k
}

// TreeKey returns the key that seals the encoded tree plaintext.
func (k *TreeKeyer) TreeKey(plaintext []byte) Key { return k.c.key(plaintext) }
