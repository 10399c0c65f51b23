package index

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// prefixMark keys the scratch set of blobs a prune found in use: kept in
// Badger, not in a Go map, so a prune of ten million blobs stays within the
// index's bounded memory.
const prefixMark byte = 'g'

// Relocate points the given blobs at packID, which AddPack must already
// have recorded (prune copies still-used blobs into a new pack, relocates
// them, then removes the old pack).
func (x *Index) Relocate(ctx context.Context, packID id.ID, entries []pack.Entry) error {
	if x.readOnly {
		return ErrReadOnly
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	w := x.newWriter()
	defer w.discard()
	done := ctx.Done()
	for _, e := range entries {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		k := idKey(prefixBlob, e.ID)
		v := appendLocation(nil, Location{Pack: packID, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLength: e.RawLength})
		if err := w.set(k[:], v); err != nil {
			return fmt.Errorf("relocate blobs to pack %s: %w", packID.Short(), err)
		}
	}
	if err := w.commit(); err != nil {
		return fmt.Errorf("relocate blobs to pack %s: %w", packID.Short(), err)
	}
	return nil
}

// Mark adds blobs to the in-use set. Marks are scratch data of one prune:
// they need no durability, and ClearMarks drops them.
func (x *Index) Mark(ctx context.Context, blobs []id.ID) error {
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
		k := idKey(prefixMark, b)
		if err := wb.Set(k[:], nil); err != nil {
			return fmt.Errorf("mark blob %s: %w", b.Short(), err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("mark blobs: %w", err)
	}
	return nil
}

// Marked reports whether a blob is in the in-use set.
func (x *Index) Marked(ctx context.Context, blob id.ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := idKey(prefixMark, blob)
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
	return false, fmt.Errorf("look up mark of blob %s: %w", blob.Short(), err)
}

// ClearMarks empties the in-use set.
func (x *Index) ClearMarks(ctx context.Context) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := x.db.DropPrefix([]byte{prefixMark}); err != nil {
		return fmt.Errorf("clear marks: %w", err)
	}
	return nil
}

// Sync makes every write so far durable. Prune calls it before deleting a
// pack file, so that no crash, not even a power loss, can leave the index
// pointing at a deleted pack for a blob that was copied elsewhere.
func (x *Index) Sync() error {
	if x.readOnly {
		return nil
	}
	if err := x.db.Sync(); err != nil {
		return fmt.Errorf("sync index: %w", err)
	}
	return nil
}
