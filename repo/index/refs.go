package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// Reference keys, kept by a site server for every committed snapshot: the
// server holds no key that decrypts trees, so these lists are how it knows
// which blobs a snapshot needs (prune) and which host may read a blob.
//
//	R + blob + host + 0x00 + snap → nothing   "blob is referenced by host's snapshot snap"
//	S + snap + blob               → nothing   the snapshot's own list, for Refs and DropRefs
//	H + snap                      → host      written before any R/S key of snap, deleted after all
//	T + blob                      → time      when a client was last told blob is stored while no
//	                                          committed snapshot may keep it (MarkTold)
//
// The R key puts the host before the snapshot so that "does any snapshot of
// host H reference blob b" is one prefix seek. A host never holds a 0x00
// byte (ValidateRefHost), so the prefix R+blob+host+0x00 never matches a
// longer host name.
//
// Whether a snapshot is committed is not decided here: the server writes the
// refs, syncs, then saves the record file; the record file is the commit
// mark, and refs whose record is missing are left over from an interrupted
// commit or forget and are dropped (DropRefs) when the server reconciles.
const (
	prefixRef     byte = 'R'
	prefixSnapRef byte = 'S'
	prefixRefHost byte = 'H'
	prefixTold    byte = 'T'
)

// refsPage is how many keys one read transaction of ForEachRef or DropRefs
// visits: a long scan in one transaction would pin old versions in Badger
// for as long as the slowest client takes to read the list.
const refsPage = 8192

// ErrBadRefHost is wrapped by the errors about hosts that cannot be part of
// a reference key.
var ErrBadRefHost = errors.New("host cannot be stored in a reference key")

// ValidateRefHost reports whether host can be part of a reference key:
// non-empty, at most 255 bytes, and without a 0x00 byte (the separator).
func ValidateRefHost(host string) error {
	switch {
	case host == "":
		return fmt.Errorf("%w: empty host", ErrBadRefHost)
	case len(host) > 255:
		return fmt.Errorf("%w: host of %d bytes is longer than 255", ErrBadRefHost, len(host))
	case bytes.IndexByte([]byte(host), 0) >= 0:
		return fmt.Errorf("%w: host %q contains a NUL byte", ErrBadRefHost, host)
	}
	return nil
}

// appendRefKey appends R + blob + host + 0 + snap to buf (see appendKey).
func appendRefKey(buf []byte, blob id.ID, host string, snap id.ID) (newBuf, key []byte) {
	start := len(buf)
	buf = append(buf, prefixRef)
	buf = append(buf, blob[:]...)
	buf = append(buf, host...)
	buf = append(buf, 0)
	buf = append(buf, snap[:]...)
	return buf, buf[start:len(buf):len(buf)]
}

func refHostPrefix(blob id.ID, host string) []byte {
	k := make([]byte, 0, 1+id.Size+len(host)+1)
	k = append(k, prefixRef)
	k = append(k, blob[:]...)
	k = append(k, host...)
	return append(k, 0)
}

// AddRefs records that snapshot snap of host references blobs, skipping
// blobs it already records for snap (repeats in a list cost a lookup, not a
// key). Blobs that are not indexed are not recorded; they are returned in
// missing, in the order given. added counts the blobs newly recorded.
//
// Call it with the snapshot's list in slices of a few thousand IDs: each
// call is one transaction (split if Badger asks), so no call holds the
// whole list. The refs are not synced; call Sync before saving the record
// that commits them.
func (x *Index) AddRefs(ctx context.Context, snap id.ID, host string, blobs []id.ID) (added int, missing []id.ID, err error) {
	if x.readOnly {
		return 0, nil, ErrReadOnly
	}
	if err := ValidateRefHost(host); err != nil {
		return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	w := x.newWriter()
	defer w.discard()

	hk := idKey(prefixRefHost, snap)
	item, err := w.txn.Get(hk[:])
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		if err := w.set(hk[:], []byte(host)); err != nil {
			return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
		}
	case err != nil:
		return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
	default:
		var stored []byte
		if stored, err = item.ValueCopy(nil); err != nil {
			return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
		}
		if string(stored) != host {
			return 0, nil, fmt.Errorf("add refs of snapshot %s for host %q: the index records it for host %q", snap.Short(), host, stored)
		}
	}

	buf := make([]byte, 0, len(blobs)*(packBlobKeyLen+1+id.Size+len(host)+1+id.Size))
	done := ctx.Done()
	for _, blob := range blobs {
		if err := checkDone(ctx, done); err != nil {
			return 0, nil, err
		}
		bk := idKey(prefixBlob, blob)
		if _, err := w.txn.Get(bk[:]); errors.Is(err, badger.ErrKeyNotFound) {
			missing = append(missing, blob)
			continue
		} else if err != nil {
			return 0, nil, fmt.Errorf("add refs of snapshot %s: look up blob %s: %w", snap.Short(), blob.Short(), err)
		}
		var sk, rk []byte
		buf, sk = appendKey(buf, prefixSnapRef, snap, blob)
		// A pending write of this transaction counts too: Get sees it.
		if _, err := w.txn.Get(sk); err == nil {
			continue
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
		}
		buf, rk = appendRefKey(buf, blob, host, snap)
		if err := w.set(rk, nil); err != nil {
			return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
		}
		if err := w.set(sk, nil); err != nil {
			return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
		}
		added++
	}
	if err := w.commit(); err != nil {
		return 0, nil, fmt.Errorf("add refs of snapshot %s: %w", snap.Short(), err)
	}
	return added, missing, nil
}

// RefsHost returns the host snap's refs were recorded for; found is false
// when the index holds no refs of snap.
func (x *Index) RefsHost(ctx context.Context, snap id.ID) (host string, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	k := idKey(prefixRefHost, snap)
	err = x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k[:])
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		host = string(v)
		return err
	})
	switch {
	case err == nil:
		return host, true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return "", false, nil
	}
	return "", false, fmt.Errorf("look up refs of snapshot %s: %w", snap.Short(), err)
}

// ForEachRefSnapshot calls fn for every snapshot with refs in the index,
// committed or not, in ID order, until fn or ctx fails.
func (x *Index) ForEachRefSnapshot(ctx context.Context, fn func(snap id.ID, host string) error) error {
	return x.scan(ctx, prefixRefHost, true, func(key, val []byte) error {
		snap, err := keyID(key, 0)
		if err != nil {
			return damagedError(x.dir, err.Error())
		}
		return fn(snap, string(val))
	})
}

// ForEachRef calls fn for every blob snap references, in blob ID order,
// until fn or ctx fails. It reads the list a page at a time, so fn may be
// slow (writing to a network) without holding a transaction open.
func (x *Index) ForEachRef(ctx context.Context, snap id.ID, fn func(blob id.ID) error) error {
	page := make([]id.ID, 0, refsPage)
	var after []byte
	for {
		page = page[:0]
		next, err := x.refsPage(ctx, snap, after, &page)
		if err != nil {
			return fmt.Errorf("list refs of snapshot %s: %w", snap.Short(), err)
		}
		for _, blob := range page {
			if err := fn(blob); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		after = next
	}
}

// CountRefs counts the distinct blobs snap references.
func (x *Index) CountRefs(ctx context.Context, snap id.ID) (int, error) {
	n := 0
	prefix := idKey(prefixSnapRef, snap)
	done := ctx.Done()
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix[:]})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count refs of snapshot %s: %w", snap.Short(), err)
	}
	return n, nil
}

// refsPage appends to page up to refsPage blobs of snap whose S key sorts
// after the key after (nil: from the start). It returns the last key read
// when the page is full, nil when the list is done.
func (x *Index) refsPage(ctx context.Context, snap id.ID, after []byte, page *[]id.ID) (next []byte, err error) {
	prefix := idKey(prefixSnapRef, snap)
	done := ctx.Done()
	err = x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix[:]})
		defer it.Close()
		if after == nil {
			it.Rewind()
		} else {
			it.Seek(after)
			if it.Valid() && bytes.Equal(it.Item().Key(), after) {
				it.Next()
			}
		}
		for ; it.Valid(); it.Next() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			blob, err := keyID(it.Item().Key(), id.Size)
			if err != nil {
				return damagedError(x.dir, err.Error())
			}
			*page = append(*page, blob)
			if len(*page) == refsPage {
				next = it.Item().KeyCopy(nil)
				return nil
			}
		}
		return nil
	})
	return next, err
}

// DropRefs deletes every ref of snap, and last the record of its host, so
// that an interrupted DropRefs is found again (ForEachRefSnapshot) and
// finished. Dropping the refs of a snapshot without any is not an error.
func (x *Index) DropRefs(ctx context.Context, snap id.ID) error {
	if x.readOnly {
		return ErrReadOnly
	}
	host, found, err := x.RefsHost(ctx, snap)
	if err != nil || !found {
		return err
	}
	page := make([]id.ID, 0, refsPage)
	for {
		page = page[:0]
		// Always from the start: the previous page is deleted.
		if _, err := x.refsPage(ctx, snap, nil, &page); err != nil {
			return fmt.Errorf("drop refs of snapshot %s: %w", snap.Short(), err)
		}
		if err := x.deleteRefs(ctx, snap, host, page); err != nil {
			return fmt.Errorf("drop refs of snapshot %s: %w", snap.Short(), err)
		}
		if len(page) < refsPage {
			return nil
		}
	}
}

// deleteRefs deletes the R and S keys of blobs in snap; with an empty
// blobs it deletes the H key of snap, which is how DropRefs ends.
func (x *Index) deleteRefs(ctx context.Context, snap id.ID, host string, blobs []id.ID) error {
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	w := x.newWriter()
	defer w.discard()
	buf := make([]byte, 0, len(blobs)*(packBlobKeyLen+1+id.Size+len(host)+1+id.Size))
	done := ctx.Done()
	for _, blob := range blobs {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		var rk, sk []byte
		buf, rk = appendRefKey(buf, blob, host, snap)
		buf, sk = appendKey(buf, prefixSnapRef, snap, blob)
		if err := w.delete(rk); err != nil {
			return err
		}
		if err := w.delete(sk); err != nil {
			return err
		}
	}
	if len(blobs) < refsPage {
		hk := idKey(prefixRefHost, snap)
		if err := w.delete(hk[:]); err != nil {
			return err
		}
	}
	return w.commit()
}

// Referenced reports whether any snapshot, of any host, references blob.
func (x *Index) Referenced(ctx context.Context, blob id.ID) (bool, error) {
	k := idKey(prefixRef, blob)
	return x.anyWithPrefix(ctx, k[:], "look up refs of blob "+blob.Short())
}

// HostReferences reports whether some snapshot of host references blob:
// the test a server makes before serving a blob to a host-bound token.
func (x *Index) HostReferences(ctx context.Context, blob id.ID, host string) (bool, error) {
	if err := ValidateRefHost(host); err != nil {
		return false, err
	}
	return x.anyWithPrefix(ctx, refHostPrefix(blob, host), fmt.Sprintf("look up refs of blob %s by host %q", blob.Short(), host))
}

func (x *Index) anyWithPrefix(ctx context.Context, prefix []byte, what string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	found := false
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return found, nil
}

// MarkTold records that clients were told at time at that blobs are stored
// although no snapshot may keep them until their next commit: blobs no
// snapshot references, or blobs of a snapshot being forgotten (a backup may
// be reusing them from that snapshot as its parent). Prune keeps a blob so
// marked within its grace period (ToldSince), so that the backup's commit
// still finds it. The marks are not synced: one lost in a crash costs a
// refused commit and a rerun, never a committed snapshot's blob.
func (x *Index) MarkTold(ctx context.Context, blobs []id.ID, at time.Time) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if len(blobs) == 0 {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(at.UnixNano()))
	wb := x.newBatch()
	defer wb.Cancel()
	done := ctx.Done()
	for _, b := range blobs {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		k := idKey(prefixTold, b)
		if err := wb.Set(k[:], v[:]); err != nil {
			return fmt.Errorf("mark blob %s as told stored: %w", b.Short(), err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("mark blobs as told stored: %w", err)
	}
	return nil
}

// ToldSince reports whether MarkTold marked blob after cutoff.
func (x *Index) ToldSince(ctx context.Context, blob id.ID, cutoff time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := idKey(prefixTold, blob)
	var at int64
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k[:])
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return damagedError(x.dir, fmt.Sprintf("told mark of blob %s has %d bytes, want 8", blob.Short(), len(v)))
			}
			at = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	switch {
	case err == nil:
		return time.Unix(0, at).After(cutoff), nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up told mark of blob %s: %w", blob.Short(), err)
}

// DropToldBefore deletes the marks of MarkTold not after cutoff: they no
// longer protect anything. It holds at most a page of keys at a time.
func (x *Index) DropToldBefore(ctx context.Context, cutoff time.Time) (int, error) {
	if x.readOnly {
		return 0, ErrReadOnly
	}
	errPageFull := errors.New("page full")
	dropped := 0
	for {
		var old [][]byte
		err := x.scan(ctx, prefixTold, true, func(key, val []byte) error {
			if len(val) == 8 && time.Unix(0, int64(binary.BigEndian.Uint64(val))).After(cutoff) {
				return nil
			}
			old = append(old, bytes.Clone(key))
			if len(old) == refsPage {
				return errPageFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			return dropped, fmt.Errorf("list told marks: %w", err)
		}
		if len(old) == 0 {
			return dropped, nil
		}
		wb := x.newBatch()
		for _, k := range old {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return dropped, fmt.Errorf("drop told marks: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return dropped, fmt.Errorf("drop told marks: %w", err)
		}
		dropped += len(old)
		if len(old) < refsPage {
			return dropped, nil
		}
	}
}
