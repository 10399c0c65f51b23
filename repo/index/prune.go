package index

import (
	"bytes"
	"context"
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

const markSet = "prune's set of blobs in use"

// Mark adds blobs to the in-use set. Marks are scratch data of one prune:
// they need no durability, and ClearMarks drops them.
func (x *Index) Mark(ctx context.Context, blobs []id.ID) error {
	return x.addScratch(ctx, prefixMark, markSet, blobs)
}

// Marked reports whether a blob is in the in-use set.
func (x *Index) Marked(ctx context.Context, blob id.ID) (bool, error) {
	return x.inScratch(ctx, prefixMark, markSet, blob)
}

// ClearMarks empties the in-use set.
func (x *Index) ClearMarks(ctx context.Context) error {
	return x.clearScratch(ctx, prefixMark, markSet)
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

// ForEachBlobMarked calls fn for every located blob, in blob ID order, with
// whether it is marked; and calls unlocated for every marked blob that has
// no location. It walks the locations and the marks side by side (both are
// sorted by blob ID): two sequential scans instead of a lookup per blob.
func (x *Index) ForEachBlobMarked(ctx context.Context, fn func(blob id.ID, loc Location, marked bool) error, unlocated func(blob id.ID) error) error {
	done := ctx.Done()
	return x.db.View(func(txn *badger.Txn) error {
		locs := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixBlob}, PrefetchValues: true, PrefetchSize: 256})
		defer locs.Close()
		marks := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixMark}})
		defer marks.Close()
		locs.Rewind()
		marks.Rewind()
		for locs.Valid() || marks.Valid() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			var cmp int
			switch {
			case !locs.Valid():
				cmp = 1
			case !marks.Valid():
				cmp = -1
			default:
				cmp = bytes.Compare(locs.Item().Key()[1:], marks.Item().Key()[1:])
			}
			if cmp > 0 {
				blob, err := keyID(marks.Item().Key(), 0)
				if err != nil {
					return damagedError(x.dir, err.Error())
				}
				if err := unlocated(blob); err != nil {
					return err
				}
				marks.Next()
				continue
			}
			item := locs.Item()
			blob, err := keyID(item.Key(), 0)
			if err != nil {
				return damagedError(x.dir, err.Error())
			}
			var loc Location
			if err := item.Value(func(v []byte) error {
				var derr error
				loc, derr = decodeLocation(v)
				return derr
			}); err != nil {
				return damagedError(x.dir, fmt.Sprintf("blob %s: %v", blob.Short(), err))
			}
			if err := fn(blob, loc, cmp == 0); err != nil {
				return err
			}
			locs.Next()
			if cmp == 0 {
				marks.Next()
			}
		}
		return nil
	})
}

// PackLength sums the stored lengths of every blob a pack holds (copies
// located elsewhere included): one prefix scan of the pack's blob list.
func (x *Index) PackLength(ctx context.Context, packID id.ID) (blobs uint64, length int64, err error) {
	err = x.scanPackBlobs(ctx, packID, true, func(e pack.Entry) error {
		blobs++
		length += int64(e.Length)
		return nil
	})
	return blobs, length, err
}
