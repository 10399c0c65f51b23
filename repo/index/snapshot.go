package index

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// PutSnapshot caches the encoded snapshot record of snapID, replacing any
// earlier one. The index never interprets record.
func (x *Index) PutSnapshot(ctx context.Context, snapID id.ID, record []byte) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := idKey(prefixSnapshot, snapID)
	val := append([]byte(nil), record...) // Badger holds it until commit; the caller may reuse record
	err := x.update(func(txn *badger.Txn) error { return txn.Set(k[:], val) })
	if err != nil {
		return fmt.Errorf("put snapshot %s into index: %w", snapID.Short(), err)
	}
	return nil
}

// Snapshot returns the record cached for snapID.
func (x *Index) Snapshot(ctx context.Context, snapID id.ID) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	k := idKey(prefixSnapshot, snapID)
	var record []byte
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k[:])
		if err != nil {
			return err
		}
		record, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case err == nil:
		return record, true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("read snapshot %s from index: %w", snapID.Short(), err)
}

// DeleteSnapshot forgets snapID; forgetting an unknown snapshot is not an
// error.
func (x *Index) DeleteSnapshot(ctx context.Context, snapID id.ID) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := idKey(prefixSnapshot, snapID)
	if err := x.update(func(txn *badger.Txn) error { return txn.Delete(k[:]) }); err != nil {
		return fmt.Errorf("delete snapshot %s from index: %w", snapID.Short(), err)
	}
	return nil
}

// ForEachSnapshot calls fn for every cached snapshot, in ID order, until
// fn or ctx fails. fn owns record.
func (x *Index) ForEachSnapshot(ctx context.Context, fn func(snapID id.ID, record []byte) error) error {
	return x.scan(ctx, prefixSnapshot, true, func(key, val []byte) error {
		snapID, err := keyID(key, 0)
		if err != nil {
			return damagedError(x.dir, err.Error())
		}
		return fn(snapID, append([]byte(nil), val...))
	})
}
