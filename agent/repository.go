package agent

import (
	"context"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/tree"
)

// Repository is what backup and restore need of a repository.
type Repository interface {
	// SaveBlob stores a sealed blob unless present; reports whether it was new.
	SaveBlob(ctx context.Context, t pack.BlobType, blob id.ID, sealed []byte, rawLength uint32) (bool, error)
	// HasBlob reports whether a blob is stored.
	HasBlob(ctx context.Context, blob id.ID) (bool, error)
	// ReadChunk appends a file chunk's plaintext to dst; damaged bytes are
	// an error wrapping repo.ErrBlobCorrupt.
	ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error)
	SaveTree(ctx context.Context, hk *repo.HostKey, t *tree.Tree) (id.ID, error)
	LoadTree(ctx context.Context, hk *repo.HostKey, treeID id.ID) (*tree.Tree, error)
	// LoadTreeDigest is LoadTree that also returns id.Hash of the tree's
	// plaintext encoding (tree.Tree.Encode), or the null ID when the stored
	// bytes are not those treeID names.
	LoadTreeDigest(ctx context.Context, hk *repo.HostKey, treeID id.ID) (*tree.Tree, id.ID, error)
	// Flush makes every saved blob durable.
	Flush(ctx context.Context) error
	// BlobStats says what this process added so far. After Flush it is
	// exact also where SaveBlob could only guess (a server that another
	// machine's identical data reached first).
	BlobStats() repo.BlobStats
	// SaveSnapshot makes all blobs durable, then writes the record.
	SaveSnapshot(ctx context.Context, hk *repo.HostKey, pub snapshot.Public, det *snapshot.Details) (id.ID, error)
}

var _ Repository = (*repo.Repository)(nil)
