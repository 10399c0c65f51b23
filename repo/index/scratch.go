package index

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// A scratch set is a set of blob IDs under one key prefix that needs no
// durability: prune's marks, a server client's stored-blob set. It lives in
// Badger rather than a Go map so that it stays within the index's bounded
// memory however many blobs it holds; dropping the prefix empties it.

// addScratch adds blobs to the scratch set under prefix; what names the set
// in errors.
func (x *Index) addScratch(ctx context.Context, prefix byte, what string, blobs []id.ID) error {
	if x.readOnly {
		return ErrReadOnly
	}
	wb := x.newBatch()
	defer wb.Cancel()
	done := ctx.Done()
	for _, b := range blobs {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		k := idKey(prefix, b)
		if err := wb.Set(k[:], nil); err != nil {
			return fmt.Errorf("add blob %s to the %s: %w", b.Short(), what, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("add blobs to the %s: %w", what, err)
	}
	return nil
}

// inScratch reports whether blob is in the scratch set under prefix.
func (x *Index) inScratch(ctx context.Context, prefix byte, what string, blob id.ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := idKey(prefix, blob)
	err := x.view(func(txn *badger.Txn) error {
		_, err := txn.Get(k[:])
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up blob %s in the %s: %w", blob.Short(), what, err)
}

// clearScratch empties the scratch set under prefix.
func (x *Index) clearScratch(ctx context.Context, prefix byte, what string) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := x.dropPrefix([]byte{prefix}); err != nil {
		return fmt.Errorf("clear the %s: %w", what, err)
	}
	return nil
}
