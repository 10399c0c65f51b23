package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
)

// Kind is a namespace of objects. Backends may map kinds to directories,
// key prefixes or tables; callers only ever see Kind and Name.
type Kind string

// The kinds a repository stores.
const (
	KindConfig    Kind = "config"    // the single plaintext repository config, Name "config"
	KindKeys      Kind = "keys"      // password-wrapped key files
	KindHostKeys  Kind = "hostkeys"  // per-host key envelopes
	KindPacks     Kind = "packs"     // pack files, Name = hex pack ID
	KindSnapshots Kind = "snapshots" // snapshot records, Name = hex snapshot ID
	KindLocks     Kind = "locks"     // lock records
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{KindConfig, KindKeys, KindHostKeys, KindPacks, KindSnapshots, KindLocks}

// Handle names one object.
type Handle struct {
	Kind Kind
	Name string
}

func (h Handle) String() string { return string(h.Kind) + "/" + h.Name }

// Info describes a stored object.
type Info struct {
	Handle Handle
	Size   int64
}

// ErrNotExist is returned (wrapped) when an object does not exist.
// errors.Is(err, fs.ErrNotExist) also holds for it.
var ErrNotExist = fs.ErrNotExist

// ErrExist is returned (wrapped) by Save when an object of that name already
// exists with different bytes and the backend refuses to overwrite it.
// Objects are immutable, so a caller never saves the same handle twice with
// different bytes; backends that cannot detect it cheaply may instead replace
// the object atomically.
var ErrExist = errors.New("object already exists")

// Storage is the contract every backend keeps.
//
//   - Save is atomic and durable: when it returns nil, the whole object is
//     stored and will survive a crash or power loss; before that, no reader
//     (Load, Stat, List) ever sees a partial object. Saving a handle that
//     already exists with the same bytes succeeds (idempotent).
//   - A Save that fails (reader error, cancelled ctx, full disk) leaves no
//     visible object and does not disturb an existing object of that name.
//   - Load calls fn with a reader over [offset, offset+length) of the object
//     (length 0 means to the end); the reader is only valid during fn, and
//     an error from fn is returned unchanged. Negative values and a range
//     reaching past the end are errors, never a short read presented as
//     whole; offset == size with length 0 is an empty read.
//   - Names are opaque strings of [0-9a-zA-Z._-], at most 128 bytes, that do
//     not begin with '.' (so "." and ".." and backend temporary files can
//     never be objects). Invalid handles and unknown kinds give an error for
//     which errors.Is(err, ErrInvalidHandle), before any I/O.
//   - List calls fn for every complete object of a kind, in no fixed order.
//     An error from fn stops the listing and is returned unchanged. fn may
//     call other methods of the Storage.
//   - Every method honours ctx: a cancelled ctx gives an error for which
//     errors.Is(err, ctx.Err()); List checks it between objects.
//   - Methods are safe for concurrent use.
//   - A missing object gives an error for which errors.Is(err, ErrNotExist).
type Storage interface {
	Save(ctx context.Context, h Handle, data io.ReaderAt, size int64) error
	Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error
	Stat(ctx context.Context, h Handle) (Info, error)
	Remove(ctx context.Context, h Handle) error
	List(ctx context.Context, k Kind, fn func(Info) error) error
	// Location describes where the storage is, for messages ("/srv/repo").
	Location() string
	Close() error
}

// Streamer is implemented by backends that take an object while it is
// being written, before its name is known. The repository uses it for
// packs, which are named by the hash of their bytes: without it a pack is
// whole in memory until Save, and a backup holds several at once.
type Streamer interface {
	// Create starts an object of kind k. Nothing is visible to Load, Stat
	// or List until Publish.
	Create(ctx context.Context, k Kind) (Pending, error)
}

// Pending is an object being written. It is not safe for concurrent use.
//
//   - Publish makes the bytes written so far durable under name, with
//     Save's guarantees: atomic, durable, idempotent for the same bytes,
//     never a partial object. It may be called once.
//   - Abort discards the object; after Publish, or a second time, it does
//     nothing. Call it on every path that does not publish.
type Pending interface {
	io.Writer
	Publish(ctx context.Context, name string) error
	Abort()
}
