package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// Options configure Open. The zero value opens a read-write index on disk
// that logs nothing.
type Options struct {
	// Logger receives Badger's warnings and errors; nil discards them.
	Logger *slog.Logger
	// ReadOnly opens the index with a shared lock; every write fails with
	// ErrReadOnly. The directory must already hold an index.
	ReadOnly bool
	// InMemory keeps everything in RAM and ignores dir; for tests.
	InMemory bool
}

// Location says where a blob is stored.
type Location struct {
	Pack      id.ID
	Type      pack.BlobType
	Offset    uint32
	Length    uint32
	RawLength uint32
}

// Index is an open index. Its methods are safe for concurrent use; writes
// are serialised.
type Index struct {
	// db is written only through newWriter, newBatch, update and
	// dropPrefix (and DropAll), which retire the pooled read views.
	db       *badger.DB
	views    *views
	dir      string
	readOnly bool
	writeMu  sync.Mutex // one writer at a time: keeps "first pack wins" exact without conflict detection
}

// Badger tuning. Memory use is bounded by these, not by the number of keys:
// NumMemtables×MemTableSize for writes (and as much again for the table
// builder that flushes one); table files, their blocks, indexes and Bloom
// filters included, are mmapped and paged by the kernel. A transaction
// holds at most 15% of a memtable (about 13,000 blobs), which is why
// AddPack can split.
const (
	memTableSize = 16 << 20
	numMemtables = 2
	// No block cache: tables are uncompressed and mmapped, so it would only
	// save parsing a block's offsets, and its admission policy cost more
	// than that (a lookup took 5 µs without it and 6.5–8 µs with 16 MiB; a
	// no-change backup of 100,000 files, warm cache, used 12% less CPU).
	blockCacheSize = 0
	// No index cache either: Badger reads an unencrypted table's index and
	// Bloom filter in place from the mmap and would never fill one.
	indexCacheSize   = 0
	valueLogFileSize = 64 << 20
	// Every level uses tables of one size: Badger's default doubles it per
	// level, and a compaction runs up to ~10 table builders that each
	// buffer twice a table, which made deep levels the peak of memory use.
	baseTableSize = 4 << 20
)

func badgerOptions(dir string, opts Options) badger.Options {
	bo := badger.DefaultOptions(dir)
	if opts.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	}
	var logger badger.Logger // nil: Badger logs nothing
	if opts.Logger != nil {
		logger = slogAdapter{opts.Logger}
	}
	bo.TableSizeMultiplier = 1
	return bo.
		WithLogger(logger).
		WithReadOnly(opts.ReadOnly).
		WithSyncWrites(false). // the packs are the truth; a lost tail is re-indexed
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithBaseTableSize(baseTableSize).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		// Keys and locations are random hashes: compression costs CPU and saves nothing.
		WithCompression(options.None).
		WithMetricsEnabled(false).
		// Writers are serialised by writeMu, so Badger need not track read sets.
		WithDetectConflicts(false)
}

// Open opens the index in dir, creating dir and an empty index if needed
// (unless opts.ReadOnly). It returns an error wrapping ErrLocked if another
// process has the index open, and ErrDamaged if the files cannot be read.
func Open(dir string, opts Options) (*Index, error) {
	hadTables := false
	if !opts.InMemory {
		var emptyLogs []string
		var err error
		if hadTables, emptyLogs, err = prepareDir(dir, opts.ReadOnly); err != nil {
			return nil, err
		}
		if len(emptyLogs) > 0 && !opts.ReadOnly {
			dropUnwrittenMemtables(dir, emptyLogs)
		}
	}
	db, err := openBadger(badgerOptions(dir, opts))
	if err != nil {
		return nil, classifyOpenError(dir, err)
	}
	x := &Index{db: db, dir: dir, readOnly: opts.ReadOnly, views: newViews()}
	if opts.InMemory {
		x.dir = "(in memory)"
	}
	if err := x.checkFormat(hadTables); err != nil {
		_ = db.Close()
		return nil, err
	}
	return x, nil
}

// prepareDir creates dir if allowed and refuses a directory whose MANIFEST
// is gone: Badger would silently start afresh and delete every table. It
// reports whether dir holds table files, which Badger also deletes when a
// damaged MANIFEST no longer lists them, and the memtable logs of no bytes
// (see dropUnwrittenMemtables).
func prepareDir(dir string, readOnly bool) (hasTables bool, emptyLogs []string, err error) {
	if !readOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, nil, fmt.Errorf("create index directory: %w", err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	var hasManifest, hasData bool
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "MANIFEST":
			hasManifest = true
		case strings.HasSuffix(name, ".sst"):
			hasTables, hasData = true, true
		case strings.HasSuffix(name, ".mem"):
			hasData = true
			if isEmptyFile(filepath.Join(dir, name)) {
				emptyLogs = append(emptyLogs, filepath.Join(dir, name))
			}
		case strings.HasSuffix(name, ".vlog"):
			hasData = true
		}
	}
	if hasData && !hasManifest {
		return false, nil, damagedError(dir, "MANIFEST is missing")
	}
	if readOnly && !hasManifest {
		return false, nil, fmt.Errorf("open index %s read-only: %w", dir, fs.ErrNotExist)
	}
	return hasTables, emptyLogs, nil
}

func isEmptyFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}

// dropUnwrittenMemtables removes the memtable logs (*.mem) that are empty:
// Badger creates one, then sizes it and writes its header, and a process
// killed in between leaves a file of no bytes that holds no entry. Badger
// cannot open a directory holding one (it reports "Create a new file",
// dgraph-io/badger#2207), which would make a crash look like a damaged
// index. It runs under the directory's lock, so a file another process is
// creating right now is never touched (each candidate prepareDir found is
// checked again under the lock); when the lock is held elsewhere it does
// nothing, and Badger's open reports the index as in use. A file it cannot
// remove is left to Badger's open to report.
func dropUnwrittenMemtables(dir string, candidates []string) {
	unlock, err := lockDir(dir)
	if err != nil {
		return // in use, or not ours to change: Badger's open says which
	}
	defer unlock()
	for _, p := range candidates {
		if isEmptyFile(p) {
			_ = os.Remove(p)
		}
	}
}

// openBadger turns a panic inside Badger (it asserts on some corrupt input)
// into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked: %v", r)
		}
	}()
	return badger.Open(bo)
}

// checkFormat writes the format version into a new index and refuses an
// index of another version. The version is written when the index is
// created, so an index without it that had table files has lost data.
func (x *Index) checkFormat(hadTables bool) error {
	var version uint32
	found := false
	empty := true
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaFormatKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error {
			if len(v) != 4 {
				return fmt.Errorf("format version of %d bytes", len(v))
			}
			version = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
			return nil
		})
	})
	switch {
	case err != nil:
		return damagedError(x.dir, "read format version: "+err.Error())
	case found && version != formatVersion:
		return damagedError(x.dir, fmt.Sprintf("format version %d, this costor reads version %d", version, formatVersion))
	case found:
		return nil
	case !empty || hadTables:
		return damagedError(x.dir, "format version is missing")
	case x.readOnly:
		return nil // an empty index reads as empty
	}
	return x.writeFormat()
}

func (x *Index) writeFormat() error {
	v := []byte{byte(formatVersion >> 24), byte(formatVersion >> 16), byte(formatVersion >> 8), byte(formatVersion)}
	if err := x.update(func(txn *badger.Txn) error { return txn.Set(metaFormatKey, v) }); err != nil {
		return fmt.Errorf("write format version to index %s: %w", x.dir, err)
	}
	return nil
}

// Close flushes and closes the index.
func (x *Index) Close() error {
	x.closeViews()
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("close index %s: %w", x.dir, err)
	}
	return nil
}

// Dir returns the directory the index lives in.
func (x *Index) Dir() string { return x.dir }

// Reset deletes every file of the index in dir so that the next Open
// starts empty; use it after ErrDamaged, before rebuilding from the packs.
// It refuses with ErrLocked while another process has the index open.
func Reset(dir string) error {
	unlock, err := lockDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reset index %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("reset index %s: %w", dir, err)
		}
	}
	return nil
}

// slogAdapter passes Badger's warnings and errors to slog; its info and
// debug chatter is dropped.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(f string, args ...any) {
	a.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (a slogAdapter) Warningf(f string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, args...))
	// Badger's cache-tuning advice (with a histogram, once a minute during
	// a long fill) says nothing a user can act on: the caches are sized on
	// purpose to keep memory flat.
	if strings.Contains(msg, "cache might be too small") {
		a.l.Debug("badger: " + msg)
		return
	}
	a.l.Warn("badger: " + msg)
}

func (slogAdapter) Infof(string, ...any)  {}
func (slogAdapter) Debugf(string, ...any) {}

// checkDone is the cheap per-item cancellation test used in scans.
func checkDone(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return ctx.Err()
	default:
		return nil
	}
}
