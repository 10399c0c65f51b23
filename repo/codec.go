package repo

import (
	"context"
	"fmt"

	"github.com/costor/costor/repo/compress"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/tree"
)

// SealChunk compresses and convergently seals one chunk of file content.
// dst is reused for the sealed bytes when large enough. The returned Chunk
// (ID, key, length) is what a tree records.
func SealChunk(keyer *crypto.ChunkKeyer, plaintext, scratch, dst []byte) (tree.Chunk, []byte, []byte) {
	key := keyer.ChunkKey(plaintext)
	scratch = compress.Encode(scratch[:0], plaintext)
	sealed := crypto.NewSIVKey(key).Seal(dst[:0], scratch)
	return tree.Chunk{ID: id.Hash(sealed), Key: key, Length: uint32(len(plaintext))}, sealed, scratch
}

// OpenChunk decrypts and decompresses a chunk's sealed bytes, appending the
// plaintext to dst. The AEAD tag authenticates the bytes under the chunk
// key from the (trusted) tree, so damaged or substituted bytes fail here
// with ErrBlobCorrupt even when the caller skipped the ID check.
func OpenChunk(c tree.Chunk, sealed, dst []byte) ([]byte, error) {
	return openChunk(c, sealed, dst, false)
}

// openChunk is OpenChunk; owned says sealed is the caller's to destroy, so
// it is decrypted in place and an incompressible chunk's plaintext may be
// returned inside it (when dst has no room), saving two buffers and their
// copies per chunk.
func openChunk(c tree.Chunk, sealed, dst []byte, owned bool) ([]byte, error) {
	var framed []byte
	var err error
	decode := compress.Decode
	if owned && len(sealed) >= crypto.NonceSize {
		framed, err = crypto.NewSIVKey(c.Key).OpenAuthenticated(sealed[crypto.NonceSize:crypto.NonceSize], sealed)
		decode = compress.DecodeOwned
	} else {
		framed, err = crypto.NewSIVKey(c.Key).OpenAuthenticated(nil, sealed)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt chunk %s: %w: %w", c.ID.Short(), ErrBlobCorrupt, err)
	}
	out, err := decode(dst, framed, int(c.Length))
	if err != nil {
		return nil, fmt.Errorf("decompress chunk %s: %w", c.ID.Short(), err)
	}
	if len(out)-len(dst) != int(c.Length) {
		return nil, fmt.Errorf("chunk %s: %d bytes, the tree says %d", c.ID.Short(), len(out)-len(dst), c.Length)
	}
	return out, nil
}

// ReadChunk loads and opens one chunk. It skips hashing the sealed bytes
// against the ID: the AEAD tag in OpenChunk already authenticates them, and
// the hash was a second full pass over every byte read.
func (r *Repository) ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error) {
	sealed, where, _, err := r.sealedBytes(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	// sealed is a fresh buffer of ours (readAt, or the server's reply).
	out, err := openChunk(c, sealed, dst, true)
	if err != nil {
		return nil, fmt.Errorf("%w (%s; run `costor check --read-data`)", err, where)
	}
	return out, nil
}

// SealTree encodes, compresses and seals a tree under its host's key. An
// unchanged tree seals to the same bytes, so it keeps its ID.
func SealTree(hk *HostKey, t *tree.Tree) (id.ID, []byte, uint32, error) {
	plain, err := t.Encode(nil)
	if err != nil {
		return id.ID{}, nil, 0, err
	}
	treeID, sealed, rawLen := SealEncodedTree(hk, plain)
	return treeID, sealed, rawLen, nil
}

// SealEncodedTree is SealTree for a tree already encoded with
// tree.Tree.Encode.
func SealEncodedTree(hk *HostKey, plain []byte) (id.ID, []byte, uint32) {
	sealed := hk.SIV.Seal(nil, compress.EncodeTree(nil, plain))
	return id.Hash(sealed), sealed, uint32(len(plain))
}

// SaveTree seals and stores a tree, returning its ID.
func (r *Repository) SaveTree(ctx context.Context, hk *HostKey, t *tree.Tree) (id.ID, error) {
	treeID, sealed, rawLen, err := SealTree(hk, t)
	if err != nil {
		return id.ID{}, err
	}
	if _, err := r.SaveBlob(ctx, pack.TreeBlob, treeID, sealed, rawLen); err != nil {
		return id.ID{}, err
	}
	return treeID, nil
}

// maxTreeSize bounds a decoded tree (a directory of millions of entries
// still fits).
const maxTreeSize = 1 << 30

// LoadTree loads and opens a tree of the given host.
func (r *Repository) LoadTree(ctx context.Context, hk *HostKey, treeID id.ID) (*tree.Tree, error) {
	t, _, _, err := r.loadTree(ctx, hk, treeID)
	return t, err
}

// LoadTreeDigest is LoadTree that also returns id.Hash of the tree's
// plaintext encoding. A backup that encodes a directory to the same bytes
// can then name the stored tree instead of compressing and sealing it again.
//
// The digest is the null ID when the sealed bytes do not hash to treeID
// (a damaged index or a lying server handed back another tree of ours):
// the listing is still usable, but naming treeID for it would record a
// directory that the stored blob does not hold.
func (r *Repository) LoadTreeDigest(ctx context.Context, hk *HostKey, treeID id.ID) (*tree.Tree, id.ID, error) {
	t, sealed, plain, err := r.loadTree(ctx, hk, treeID)
	if err != nil {
		return nil, id.ID{}, err
	}
	var digest id.ID
	if id.Hash(sealed) == treeID {
		digest = id.Hash(plain)
	}
	return t, digest, nil
}

// loadTree loads, opens and decodes a tree, returning its sealed and
// plaintext bytes beside it.
func (r *Repository) loadTree(ctx context.Context, hk *HostKey, treeID id.ID) (t *tree.Tree, sealed, plain []byte, err error) {
	sealed, where, rawLength, err := r.sealedBytes(ctx, treeID)
	if err != nil {
		return nil, nil, nil, err
	}
	if plain, err = openTreeBlob(hk, treeID, sealed, where, rawLength); err != nil {
		return nil, nil, nil, err
	}
	if t, err = tree.Decode(plain); err != nil {
		return nil, nil, nil, fmt.Errorf("tree %s: %w", treeID.Short(), err)
	}
	return t, sealed, plain, nil
}

// openTreeBlob opens and decompresses a tree blob's sealed bytes; where
// names their place for errors, rawLength bounds the plaintext (0: unknown).
func openTreeBlob(hk *HostKey, treeID id.ID, sealed []byte, where string, rawLength uint32) ([]byte, error) {
	framed, err := hk.SIV.OpenAuthenticated(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("decrypt tree %s %s: %w: %w", treeID.Short(), where, ErrBlobCorrupt, err)
	}
	limit := int(rawLength)
	if limit <= 0 || limit > maxTreeSize {
		limit = maxTreeSize
	}
	plain, err := compress.Decode(nil, framed, limit)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", treeID.Short(), err)
	}
	return plain, nil
}
