package index

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// prefixStored marks blobs a site server is known to hold. It is scratch
// data of one client session (a backup to a server): the server is the
// truth, so the set is dropped at every open and never needs durability.
const prefixStored byte = 'k'

// MarkStored records that the server holds blobs.
func (x *Index) MarkStored(ctx context.Context, blobs []id.ID) error {
	if x.readOnly {
		return ErrReadOnly
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	done := ctx.Done()
	for _, b := range blobs {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		k := idKey(prefixStored, b)
		if err := wb.Set(k[:], nil); err != nil {
			return fmt.Errorf("record stored blob %s: %w", b.Short(), err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("record stored blobs: %w", err)
	}
	return nil
}

// KnownStored reports whether MarkStored recorded a blob.
func (x *Index) KnownStored(ctx context.Context, blob id.ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := idKey(prefixStored, blob)
	err := x.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(k[:])
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up stored blob %s: %w", blob.Short(), err)
}

// ClearStored forgets every blob MarkStored recorded.
func (x *Index) ClearStored(ctx context.Context) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := x.db.DropPrefix([]byte{prefixStored}); err != nil {
		return fmt.Errorf("clear stored-blob set: %w", err)
	}
	return nil
}
