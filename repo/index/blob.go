package index

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// Lookup returns where blob is stored.
func (x *Index) Lookup(ctx context.Context, blob id.ID) (Location, bool, error) {
	var loc Location
	if err := ctx.Err(); err != nil {
		return loc, false, err
	}
	k := idKey(prefixBlob, blob)
	err := x.view(func(txn *badger.Txn) error {
		item, err := txn.Get(k[:])
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			var err error
			loc, err = decodeLocation(v)
			if err != nil {
				return damagedError(x.dir, fmt.Sprintf("blob %s: %v", blob.Short(), err))
			}
			return nil
		})
	})
	switch {
	case err == nil:
		return loc, true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return Location{}, false, nil
	case errors.Is(err, ErrDamaged):
		return Location{}, false, err
	}
	return Location{}, false, fmt.Errorf("look up blob %s in index: %w", blob.Short(), err)
}

// Has reports whether blob is indexed.
func (x *Index) Has(ctx context.Context, blob id.ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := idKey(prefixBlob, blob)
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
	return false, fmt.Errorf("look up blob %s in index: %w", blob.Short(), err)
}

// Missing returns, in the order given, the blobs that are not indexed. It
// reads one consistent view of the index.
func (x *Index) Missing(ctx context.Context, blobs []id.ID) ([]id.ID, error) {
	var missing []id.ID
	done := ctx.Done()
	err := x.db.View(func(txn *badger.Txn) error {
		var k [idKeyLen]byte
		k[0] = prefixBlob
		for i := range blobs {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			copy(k[1:], blobs[i][:])
			_, err := txn.Get(k[:])
			if errors.Is(err, badger.ErrKeyNotFound) {
				missing = append(missing, blobs[i])
				continue
			}
			if err != nil {
				return fmt.Errorf("look up blob %s in index: %w", blobs[i].Short(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return missing, nil
}

// ForEachBlob calls fn for every indexed blob, in blob ID order, until fn
// or ctx fails.
func (x *Index) ForEachBlob(ctx context.Context, fn func(blob id.ID, loc Location) error) error {
	return x.scan(ctx, prefixBlob, true, func(key, val []byte) error {
		blob, err := keyID(key, 0)
		if err != nil {
			return damagedError(x.dir, err.Error())
		}
		loc, err := decodeLocation(val)
		if err != nil {
			return damagedError(x.dir, fmt.Sprintf("blob %s: %v", blob.Short(), err))
		}
		return fn(blob, loc)
	})
}
