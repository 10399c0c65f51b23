package index

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// writer is a read-write transaction that splits itself when Badger says it
// is too big. Callers write the record that marks their work complete last,
// so a crash after a split leaves that record out rather than claiming too
// much. Badger keeps the key and value slices until commit: never reuse them.
type writer struct {
	x   *Index
	txn *badger.Txn
}

// splitCount counts transaction splits, for tests.
var splitCount atomic.Int64

func (x *Index) newWriter() *writer {
	return &writer{x: x, txn: x.db.NewTransaction(true)}
}

func (w *writer) set(k, v []byte) error {
	err := w.txn.Set(k, v)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.split(); err == nil {
			err = w.txn.Set(k, v)
		}
	}
	return err
}

func (w *writer) delete(k []byte) error {
	err := w.txn.Delete(k)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.split(); err == nil {
			err = w.txn.Delete(k)
		}
	}
	return err
}

func (w *writer) split() error {
	err := w.txn.Commit()
	w.x.wrote()
	if err != nil {
		w.txn = nil
		return err
	}
	w.txn = w.x.db.NewTransaction(true)
	splitCount.Add(1)
	return nil
}

func (w *writer) commit() error {
	err := w.txn.Commit()
	w.x.wrote()
	w.txn = nil
	return err
}

func (w *writer) discard() {
	if w.txn != nil {
		w.txn.Discard()
	}
}

// blobPack returns the pack the blob's location points into.
func (w *writer) blobPack(blob id.ID) (packID id.ID, found bool, err error) {
	k := idKey(prefixBlob, blob)
	item, err := w.txn.Get(k[:])
	if errors.Is(err, badger.ErrKeyNotFound) {
		return packID, false, nil
	}
	if err != nil {
		return packID, false, err
	}
	err = item.Value(func(v []byte) error {
		if len(v) != locationLen {
			return nil // unreadable: treated as absent so that it is overwritten
		}
		found = true
		copy(packID[:], v)
		return nil
	})
	return packID, found, err
}

// keepExisting reports whether blob already has a location that a new copy
// in packID must not replace: one in another pack that is still indexed.
func (w *writer) keepExisting(blob, packID id.ID) (bool, error) {
	existing, found, err := w.blobPack(blob)
	if err != nil || !found || existing == packID {
		return false, err
	}
	k := idKey(prefixPack, existing)
	_, err = w.txn.Get(k[:])
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// deleteBlobIfIn deletes blob's location if it points into packID.
func (w *writer) deleteBlobIfIn(blob, packID id.ID) error {
	existing, found, err := w.blobPack(blob)
	if err != nil || !found || existing != packID {
		return err
	}
	k := idKey(prefixBlob, blob)
	return w.delete(k[:])
}

// scan calls fn for every key with prefix, in key order, in one read
// transaction. val is nil unless values is set and is valid only during fn.
// Errors from fn and ctx are returned as they are.
func (x *Index) scan(ctx context.Context, prefix byte, values bool, fn func(key, val []byte) error) error {
	done := ctx.Done()
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}, PrefetchValues: values, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			item := it.Item()
			if !values {
				if err := fn(item.Key(), nil); err != nil {
					return err
				}
				continue
			}
			var fnErr error
			if err := item.Value(func(v []byte) error {
				fnErr = fn(item.Key(), v)
				return nil
			}); err != nil {
				return fmt.Errorf("read index %s: %w", x.dir, err)
			}
			if fnErr != nil {
				return fnErr
			}
		}
		return nil
	})
}
