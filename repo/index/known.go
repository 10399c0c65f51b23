package index

import (
	"context"

	"github.com/costor/costor/repo/id"
)

// prefixStored keys the blobs a site server is known to hold: a scratch set
// of one client session (a backup to a server). The server is the truth,
// so the set is dropped at every open and never needs durability.
const prefixStored byte = 'k'

const storedSet = "set of blobs known stored on the server"

// MarkStored records that the server holds blobs.
func (x *Index) MarkStored(ctx context.Context, blobs []id.ID) error {
	return x.addScratch(ctx, prefixStored, storedSet, blobs)
}

// KnownStored reports whether MarkStored recorded a blob.
func (x *Index) KnownStored(ctx context.Context, blob id.ID) (bool, error) {
	return x.inScratch(ctx, prefixStored, storedSet, blob)
}

// ClearStored forgets every blob MarkStored recorded.
func (x *Index) ClearStored(ctx context.Context) error {
	return x.clearScratch(ctx, prefixStored, storedSet)
}
