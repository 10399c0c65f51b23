package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
)

// The per-path version history of each host, for the mount's history/ view
// and `costor versions`. Paths and host names never contain NUL (tree and
// snapshot validation refuse it), so NUL separates the key's parts:
//
//	'V' host 0 dir 0 name 0 kind  → (empty)   a name ever seen in dir
//	'v' host 0 path 0 time snap   → version   the content path had in snap
//	'w' host 0 snap               → (empty)   snap's versions are recorded
//
// time is 8 bytes big-endian of the snapshot time in ns, sign bit flipped,
// so a prefix scan of one path returns its versions oldest first.
const (
	prefixHistoryName byte = 'V'
	prefixVersionDone byte = 'w'
)

// Kinds of history names.
const (
	HistoryDir  byte = 'd'
	HistoryFile byte = 'f'
)

// Version is one recorded content of a path.
type Version struct {
	Snapshot id.ID
	Time     int64 // snapshot time, ns since the epoch
	Size     uint64
	MTime    int64
	Content  id.ID // digest of the chunk list: equal content, equal digest
}

const versionLen = 8 + 8 + id.Size

// HistoryName is one name below a directory in a host's history.
type HistoryName struct {
	Dir, Name string
	Kind      byte
}

// VersionRecord is one path's version in a snapshot.
type VersionRecord struct {
	Path string
	Version
}

func hostKey(prefix byte, host string) []byte {
	k := make([]byte, 0, len(host)+2)
	return append(append(append(k, prefix), host...), 0)
}

func versionKey(host, path string, t int64, snap id.ID) []byte {
	k := hostKey(prefixVersion, host)
	k = append(append(k, path...), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(t)^(1<<63))
	return append(k, snap[:]...)
}

// PutVersions records history names and versions of a snapshot; with
// markDone it also marks the snapshot done, in the same batch. A large
// snapshot is recorded in several calls, the last one marking it done, so
// a crash leaves it not done, and "not done" is simply redone.
func (x *Index) PutVersions(ctx context.Context, host string, snap id.ID, names []HistoryName, versions []VersionRecord, markDone bool) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if strings.IndexByte(host, 0) >= 0 {
		return fmt.Errorf("record versions: host name %q contains NUL", host)
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	w := x.newWriter()
	defer w.discard()
	done := ctx.Done()
	for _, n := range names {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		k := hostKey(prefixHistoryName, host)
		k = append(append(k, n.Dir...), 0)
		k = append(append(k, n.Name...), 0, n.Kind)
		if err := w.set(k, nil); err != nil {
			return fmt.Errorf("record history of snapshot %s: %w", snap.Short(), err)
		}
	}
	for _, v := range versions {
		if err := checkDone(ctx, done); err != nil {
			return err
		}
		val := make([]byte, 0, versionLen)
		val = binary.BigEndian.AppendUint64(val, v.Size)
		val = binary.BigEndian.AppendUint64(val, uint64(v.MTime))
		val = append(val, v.Content[:]...)
		if err := w.set(versionKey(host, v.Path, v.Time, v.Snapshot), val); err != nil {
			return fmt.Errorf("record versions of snapshot %s: %w", snap.Short(), err)
		}
	}
	if markDone {
		if err := w.set(append(hostKey(prefixVersionDone, host), snap[:]...), nil); err != nil {
			return fmt.Errorf("record versions of snapshot %s: %w", snap.Short(), err)
		}
	}
	if err := w.commit(); err != nil {
		return fmt.Errorf("record versions of snapshot %s: %w", snap.Short(), err)
	}
	return nil
}

// VersionsDone reports whether a snapshot's versions are recorded.
func (x *Index) VersionsDone(ctx context.Context, host string, snap id.ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := append(hostKey(prefixVersionDone, host), snap[:]...)
	err := x.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(k)
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up versions of snapshot %s: %w", snap.Short(), err)
}

// DropVersions forgets a host's whole history, to be rebuilt (after a
// forget, the snapshot a version was named after may be gone).
func (x *Index) DropVersions(host string) error {
	if x.readOnly {
		return ErrReadOnly
	}
	for _, p := range []byte{prefixHistoryName, prefixVersion, prefixVersionDone} {
		if err := x.dropPrefix(hostKey(p, host)); err != nil {
			return fmt.Errorf("drop version history of %s: %w", host, err)
		}
	}
	return nil
}

// Versions calls fn for every recorded version of path on host, oldest
// first: one prefix scan, however many snapshots there are.
func (x *Index) Versions(ctx context.Context, host, path string, fn func(Version) error) error {
	prefix := append(append(hostKey(prefixVersion, host), path...), 0)
	done := ctx.Done()
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			item := it.Item()
			rest := item.Key()[len(prefix):]
			if len(rest) != 8+id.Size {
				return damagedError(x.dir, fmt.Sprintf("version key of %q: %d trailing bytes", path, len(rest)))
			}
			var v Version
			v.Time = int64(binary.BigEndian.Uint64(rest) ^ (1 << 63))
			copy(v.Snapshot[:], rest[8:])
			err := item.Value(func(val []byte) error {
				if len(val) != versionLen {
					return fmt.Errorf("version value of %d bytes", len(val))
				}
				v.Size = binary.BigEndian.Uint64(val)
				v.MTime = int64(binary.BigEndian.Uint64(val[8:]))
				copy(v.Content[:], val[16:])
				return nil
			})
			if err != nil {
				return damagedError(x.dir, err.Error())
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// HistoryChildren calls fn for every name ever seen directly in dir on
// host, in name order; a name seen both as a file and a directory comes
// once per kind.
func (x *Index) HistoryChildren(ctx context.Context, host, dir string, fn func(name string, kind byte) error) error {
	prefix := append(append(hostKey(prefixHistoryName, host), dir...), 0)
	done := ctx.Done()
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := checkDone(ctx, done); err != nil {
				return err
			}
			rest := it.Item().Key()[len(prefix):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 || i != len(rest)-2 {
				return damagedError(x.dir, fmt.Sprintf("history key in %q is malformed", dir))
			}
			if err := fn(string(rest[:i]), rest[i+1]); err != nil {
				return err
			}
		}
		return nil
	})
}
