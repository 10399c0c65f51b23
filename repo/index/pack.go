package index

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// AddPack records that packID (packSize bytes) holds entries. Call it after
// the pack is safely stored. A blob already indexed in another pack keeps
// its location unless that pack's record is gone; the blob is still listed
// under packID by PackBlobs. Adding the same pack again with the same
// entries changes nothing.
//
// Everything is written in one transaction; a pack too large for one is
// split, and its pack record is written last, so HasPack never reports a
// pack whose entries are not all there.
func (x *Index) AddPack(ctx context.Context, packID id.ID, packSize int64, entries []pack.Entry) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if packSize < 0 {
		return fmt.Errorf("add pack %s to index: negative size %d", packID.Short(), packSize)
	}
	for i := range entries {
		if !validType(entries[i].Type) {
			return fmt.Errorf("add pack %s to index: blob %s has invalid type %d",
				packID.Short(), entries[i].ID.Short(), entries[i].Type)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()

	w := x.newWriter()
	defer w.discard()
	// Badger holds keys and values until commit, so each needs its own
	// bytes; one allocation for all of them.
	buf := make([]byte, 0, len(entries)*(idKeyLen+locationLen+packBlobKeyLen+packEntryLen))
	done := ctx.Done()
	for i := range entries {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		e := &entries[i]
		keep, err := w.keepExisting(e.ID, packID)
		if err != nil {
			return fmt.Errorf("add pack %s to index: %w", packID.Short(), err)
		}
		if !keep {
			var key, val []byte
			buf, key = appendKey(buf, prefixBlob, e.ID)
			buf, val = appendValue(buf, func(b []byte) []byte {
				return appendLocation(b, Location{Pack: packID, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLength: e.RawLength})
			})
			if err := w.set(key, val); err != nil {
				return fmt.Errorf("add pack %s to index: %w", packID.Short(), err)
			}
		}
		var key, val []byte
		buf, key = appendKey(buf, prefixPackBlob, packID, e.ID)
		buf, val = appendValue(buf, func(b []byte) []byte { return appendPackEntry(b, *e) })
		if err := w.set(key, val); err != nil {
			return fmt.Errorf("add pack %s to index: %w", packID.Short(), err)
		}
	}
	k := idKey(prefixPack, packID)
	if err := w.set(k[:], appendPackRecord(nil, packSize, len(entries))); err != nil {
		return fmt.Errorf("add pack %s to index: %w", packID.Short(), err)
	}
	if err := w.commit(); err != nil {
		return fmt.Errorf("add pack %s to index: %w", packID.Short(), err)
	}
	return nil
}

// HasPack reports whether packID is fully indexed.
func (x *Index) HasPack(ctx context.Context, packID id.ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := idKey(prefixPack, packID)
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
	return false, fmt.Errorf("look up pack %s in index: %w", packID.Short(), err)
}

// PackBlobs lists every blob stored in packID, in blob ID order, including
// blobs whose index location is a copy in another pack. It returns nil for
// a pack that is not indexed.
func (x *Index) PackBlobs(ctx context.Context, packID id.ID) ([]pack.Entry, error) {
	var list []pack.Entry
	err := x.scanPackBlobs(ctx, packID, true, func(e pack.Entry) error {
		list = append(list, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs of pack %s: %w", packID.Short(), err)
	}
	return list, nil
}

func (x *Index) scanPackBlobs(ctx context.Context, packID id.ID, values bool, fn func(pack.Entry) error) error {
	prefix := idKey(prefixPackBlob, packID)
	done := ctx.Done()
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix[:], PrefetchValues: values, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			item := it.Item()
			var e pack.Entry
			blob, err := keyID(item.Key(), id.Size)
			if err != nil {
				return damagedError(x.dir, err.Error())
			}
			e.ID = blob
			if values {
				if err := item.Value(func(v []byte) error { return decodePackEntry(v, &e) }); err != nil {
					return damagedError(x.dir, fmt.Sprintf("pack %s blob %s: %v", packID.Short(), blob.Short(), err))
				}
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// RemovePack forgets packID: its record, its blob list, and the location of
// every blob whose location points into it. Locations in other packs stay.
// Call it before deleting the pack file, so that a crash in between leaves
// only locations that are still valid.
func (x *Index) RemovePack(ctx context.Context, packID id.ID) error {
	if x.readOnly {
		return ErrReadOnly
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()

	// Collect first: a read-write transaction allows no writes while its
	// iterator is open. A pack's blob list is a few thousand IDs.
	var blobs []id.ID
	if err := x.scanPackBlobs(ctx, packID, false, func(e pack.Entry) error {
		blobs = append(blobs, e.ID)
		return nil
	}); err != nil {
		return fmt.Errorf("remove pack %s from index: %w", packID.Short(), err)
	}
	w := x.newWriter()
	defer w.discard()
	done := ctx.Done()
	for _, blob := range blobs {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		if err := w.deleteBlobIfIn(blob, packID); err != nil {
			return fmt.Errorf("remove pack %s from index: %w", packID.Short(), err)
		}
		k := packBlobKey(packID, blob)
		if err := w.delete(k[:]); err != nil {
			return fmt.Errorf("remove pack %s from index: %w", packID.Short(), err)
		}
	}
	k := idKey(prefixPack, packID)
	if err := w.delete(k[:]); err != nil {
		return fmt.Errorf("remove pack %s from index: %w", packID.Short(), err)
	}
	if err := w.commit(); err != nil {
		return fmt.Errorf("remove pack %s from index: %w", packID.Short(), err)
	}
	return nil
}

// ForEachPack calls fn for every indexed pack, in pack ID order, until fn
// or ctx fails.
func (x *Index) ForEachPack(ctx context.Context, fn func(packID id.ID, size int64, blobs int) error) error {
	return x.scan(ctx, prefixPack, true, func(key, val []byte) error {
		packID, err := keyID(key, 0)
		if err != nil {
			return damagedError(x.dir, err.Error())
		}
		size, blobs, err := decodePackRecord(val)
		if err != nil {
			return damagedError(x.dir, fmt.Sprintf("pack %s: %v", packID.Short(), err))
		}
		return fn(packID, size, blobs)
	})
}
