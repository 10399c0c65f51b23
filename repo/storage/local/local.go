package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/costor/costor/repo/storage"
)

// ErrNotRepository is returned (wrapped) by Open for a directory that lacks
// the repository layout.
var ErrNotRepository = errors.New("not a costor repository")

// tempPrefix starts every temporary file's name. Valid object names cannot
// begin with '.', so a temporary file is never mistaken for an object.
const tempPrefix = ".tmp-"

// fanOutLen is the number of name characters that pick a pack's subdirectory.
const fanOutLen = 2

// copyBufSize bounds the memory one Save uses, whatever the object's size.
const copyBufSize = 1 << 20

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// Storage is a repository in a local directory. It is safe for concurrent use.
type Storage struct {
	dir   string
	packs openPacks
}

var _ storage.Storage = (*Storage)(nil)

// Open opens the repository layout in dir.
func Open(dir string) (*Storage, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open local storage: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open local storage %s: %w: not a directory", dir, ErrNotRepository)
	}
	for _, k := range storage.Kinds {
		p := filepath.Join(dir, string(k))
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("open local storage %s: %w: directory %s is missing", dir, ErrNotRepository, p)
		}
		if err != nil {
			return nil, fmt.Errorf("open local storage: %w", err)
		}
	}
	return &Storage{dir: dir}, nil
}

// Create makes an empty repository layout in dir, which must not exist or be
// empty: initialising inside a populated directory is almost always a typo.
func Create(dir string) (*Storage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create local storage: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create local storage: %w", err)
	}
	if len(entries) > 0 {
		if _, err := Open(dir); err == nil {
			return nil, fmt.Errorf("create local storage %s: %w: already a repository", dir, storage.ErrExist)
		}
		return nil, fmt.Errorf("create local storage %s: directory is not empty", dir)
	}
	for _, k := range storage.Kinds {
		p := filepath.Join(dir, string(k))
		if err := os.Mkdir(p, 0o700); err != nil {
			return nil, fmt.Errorf("create local storage: %w", err)
		}
		if k != storage.KindPacks {
			continue
		}
		for i := range 256 {
			if err := os.Mkdir(filepath.Join(p, fmt.Sprintf("%02x", i)), 0o700); err != nil {
				return nil, fmt.Errorf("create local storage: %w", err)
			}
		}
		if err := syncDir(p); err != nil {
			return nil, fmt.Errorf("create local storage: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("create local storage: %w", err)
	}
	return &Storage{dir: dir}, nil
}

// Location returns the repository directory.
func (s *Storage) Location() string { return s.dir }

// Close closes the pack files kept open for loads.
func (s *Storage) Close() error {
	s.packs.closeAll()
	return nil
}

// dirOf returns the directory an object of h lives in. h must be valid.
func (s *Storage) dirOf(h storage.Handle) (string, error) {
	if h.Kind != storage.KindPacks {
		return filepath.Join(s.dir, string(h.Kind)), nil
	}
	if len(h.Name) < fanOutLen {
		return "", fmt.Errorf("%w: pack name %q is shorter than %d characters", storage.ErrInvalidHandle, h.Name, fanOutLen)
	}
	return filepath.Join(s.dir, string(h.Kind), h.Name[:fanOutLen]), nil
}

// path validates h and returns its file's path.
func (s *Storage) path(h storage.Handle) (string, error) {
	if err := h.Validate(); err != nil {
		return "", err
	}
	dir, err := s.dirOf(h)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, h.Name), nil
}

// Save writes data to a temporary file beside its final place and renames it
// there once it is durable.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data io.ReaderAt, size int64) error {
	p, err := s.path(h)
	if err != nil {
		return fmt.Errorf("local storage: save %s: %w", h, err)
	}
	if size < 0 {
		return fmt.Errorf("local storage: save %s: negative size %d", h, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local storage: save %s: %w", h, err)
	}
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, tempPrefix+h.Name+"-*")
	if errors.Is(err, fs.ErrNotExist) && h.Kind == storage.KindPacks {
		// A fan-out directory lost in a copy of the repository; recreate it.
		if err = mkdirDurable(dir); err == nil {
			f, err = os.CreateTemp(dir, tempPrefix+h.Name+"-*")
		}
	}
	if err != nil {
		return fmt.Errorf("local storage: save %s: %w", h, err)
	}
	tmp := f.Name()
	if err := writeAll(ctx, f, data, size); err != nil {
		f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("local storage: save %s to %s: %w", h, tmp, err)
	}
	if err := s.install(f, p); err != nil {
		return fmt.Errorf("local storage: save %s: %w", h, err)
	}
	return nil
}

// writeAll copies size bytes of data into f, checking ctx between pieces.
func writeAll(ctx context.Context, f *os.File, data io.ReaderAt, size int64) error {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), size-off)]
		n, err := data.ReadAt(chunk, off)
		if n < len(chunk) {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("data ends after %d of %d bytes: %w", off+int64(n), size, io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("read data: %w", err)
		}
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		off += int64(n)
	}
	return ctx.Err()
}

// install makes the temporary file f durable under final, the one way Save
// and Publish both end: fsync and close f, rename it (recreating a fan-out
// directory lost in a copy of the repository), then fsync the directories
// the rename changed. It always closes f, and removes it on failure.
func (s *Storage) install(f *os.File, final string) error {
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%s: %w", tmp, err)
	}
	dir := filepath.Dir(final)
	s.packs.forget(final) // the name now stands for the new file
	err = os.Rename(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		if err = mkdirDurable(dir); err == nil {
			err = os.Rename(tmp, final)
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if from := filepath.Dir(tmp); from != dir {
		return syncDir(from)
	}
	return nil
}

// Load opens the object and hands fn a positional reader over the range, so
// only the bytes fn reads are read from disk.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64, fn func(io.Reader) error) error {
	p, err := s.path(h)
	if err != nil {
		return fmt.Errorf("local storage: load %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local storage: load %s: %w", h, err)
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("local storage: load %s: negative range [%d, +%d)", h, offset, length)
	}
	if h.Kind == storage.KindPacks {
		op, err := s.packs.acquire(p)
		if err != nil {
			return fmt.Errorf("local storage: load %s: %w", h, err)
		}
		defer s.packs.release(op)
		return loadRange(ctx, h, p, op.f, op.size, offset, length, fn)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("local storage: load %s: %w", h, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("local storage: load %s: %w", h, err)
	}
	return loadRange(ctx, h, p, f, fi.Size(), offset, length, fn)
}

// loadRange hands fn the range [offset, +length) of f (length 0: to the
// end), after checking it lies within size.
func loadRange(ctx context.Context, h storage.Handle, p string, f *os.File, size, offset, length int64, fn func(io.Reader) error) error {
	if offset > size || length > size-offset {
		return fmt.Errorf("local storage: load %s: range [%d, +%d) outside %s of %d bytes", h, offset, length, p, size)
	}
	if length == 0 {
		length = size - offset
	}
	return fn(&ctxReader{ctx: ctx, r: io.NewSectionReader(f, offset, length)})
}

// ctxReader stops a long read when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Stat returns the object's size.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.Info, error) {
	p, err := s.path(h)
	if err != nil {
		return storage.Info{}, fmt.Errorf("local storage: stat %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, fmt.Errorf("local storage: stat %s: %w", h, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Info{}, fmt.Errorf("local storage: stat %s: %w", h, err)
	}
	return storage.Info{Handle: h, Size: fi.Size()}, nil
}

// Remove deletes the object. The directory is not fsynced: a removal lost in
// a crash only brings back an unreferenced object, which prune removes again.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	p, err := s.path(h)
	if err != nil {
		return fmt.Errorf("local storage: remove %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local storage: remove %s: %w", h, err)
	}
	s.packs.forget(p)
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("local storage: remove %s: %w", h, err)
	}
	return nil
}

// List calls fn for every complete object of kind k.
func (s *Storage) List(ctx context.Context, k storage.Kind, fn func(storage.Info) error) error {
	if !k.Valid() {
		return fmt.Errorf("local storage: list %q: %w: unknown kind", k, storage.ErrInvalidHandle)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local storage: list %s: %w", k, err)
	}
	dir := filepath.Join(s.dir, string(k))
	if k != storage.KindPacks {
		return s.listDir(ctx, k, dir, fn)
	}
	subdirs, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("local storage: list %s: %w", k, err)
	}
	for _, sub := range subdirs {
		if !sub.IsDir() || len(sub.Name()) != fanOutLen {
			continue
		}
		if err := s.listDir(ctx, k, filepath.Join(dir, sub.Name()), fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Storage) listDir(ctx context.Context, k storage.Kind, dir string, fn func(storage.Info) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("local storage: list %s: %w", k, err)
	}
	for _, e := range entries {
		// Temporary files, strays and anything not a plain file are not objects.
		if !e.Type().IsRegular() || storage.ValidateName(e.Name()) != nil {
			continue
		}
		if k == storage.KindPacks && !strings.HasPrefix(e.Name(), filepath.Base(dir)) {
			continue // in the wrong fan-out directory: Load could not find it
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("local storage: list %s: %w", k, err)
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err != nil {
			return fmt.Errorf("local storage: list %s: %w", k, err)
		}
		if err := fn(storage.Info{Handle: storage.Handle{Kind: k, Name: e.Name()}, Size: fi.Size()}); err != nil {
			return err
		}
	}
	return nil
}

// CleanTemp removes temporary files last modified more than olderThan ago,
// left behind by processes killed in the middle of a Save. Pass a margin
// longer than any Save could take, so files still being written survive.
func (s *Storage) CleanTemp(ctx context.Context, olderThan time.Duration) error {
	cutoff := time.Now().Add(-olderThan)
	for _, k := range storage.Kinds {
		dir := filepath.Join(s.dir, string(k))
		if err := cleanTempDir(ctx, dir, cutoff); err != nil {
			return err
		}
		if k != storage.KindPacks {
			continue
		}
		subdirs, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("local storage: clean temporary files: %w", err)
		}
		for _, sub := range subdirs {
			if sub.IsDir() {
				if err := cleanTempDir(ctx, filepath.Join(dir, sub.Name()), cutoff); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func cleanTempDir(ctx context.Context, dir string, cutoff time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("local storage: clean temporary files: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("local storage: clean temporary files in %s: %w", dir, err)
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("local storage: clean temporary files: %w", err)
		}
		if !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("local storage: clean temporary files: %w", err)
		}
	}
	return nil
}

func mkdirDurable(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}
