package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/costor/costor/repo/storage"
)

// Storage keeps objects in memory. The zero value is not usable; call New.
type Storage struct {
	mu      sync.RWMutex
	objects map[storage.Handle][]byte // never mutated after insertion
}

var _ storage.Storage = (*Storage)(nil)

// New returns an empty storage.
func New() *Storage {
	return &Storage{objects: make(map[storage.Handle][]byte)}
}

// Save copies size bytes of data and stores them under h.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data io.ReaderAt, size int64) error {
	if err := h.Validate(); err != nil {
		return fmt.Errorf("mem storage: save %s: %w", h, err)
	}
	if size < 0 {
		return fmt.Errorf("mem storage: save %s: negative size %d", h, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem storage: save %s: %w", h, err)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(data, 0, size), buf); err != nil {
		return fmt.Errorf("mem storage: save %s: read data: %w", h, err)
	}
	// A caller that cancelled while we were reading must not see the object
	// appear afterwards.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem storage: save %s: %w", h, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.objects[h]; ok {
		if bytes.Equal(old, buf) {
			return nil
		}
		return fmt.Errorf("mem storage: save %s: %w with different content", h, storage.ErrExist)
	}
	s.objects[h] = buf
	return nil
}

// Load calls fn with a reader over the requested range.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64, fn func(io.Reader) error) error {
	data, err := s.get(ctx, "load", h)
	if err != nil {
		return err
	}
	size := int64(len(data))
	if offset < 0 || length < 0 || offset > size || length > size-offset {
		return fmt.Errorf("mem storage: load %s: range [%d, +%d) outside object of %d bytes", h, offset, length, size)
	}
	if length == 0 {
		length = size - offset
	}
	// The stored slice is never mutated and bytes.Reader never exposes it, so
	// no copy is needed to keep fn from changing the stored object.
	return fn(bytes.NewReader(data[offset : offset+length]))
}

// Stat returns the size of h.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.Info, error) {
	data, err := s.get(ctx, "stat", h)
	if err != nil {
		return storage.Info{}, err
	}
	return storage.Info{Handle: h, Size: int64(len(data))}, nil
}

func (s *Storage) get(ctx context.Context, op string, h storage.Handle) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("mem storage: %s %s: %w", op, h, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem storage: %s %s: %w", op, h, err)
	}
	s.mu.RLock()
	data, ok := s.objects[h]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("mem storage: %s %s: %w", op, h, storage.ErrNotExist)
	}
	return data, nil
}

// Remove deletes h.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	if err := h.Validate(); err != nil {
		return fmt.Errorf("mem storage: remove %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem storage: remove %s: %w", h, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[h]; !ok {
		return fmt.Errorf("mem storage: remove %s: %w", h, storage.ErrNotExist)
	}
	delete(s.objects, h)
	return nil
}

// List calls fn for every object of kind k. It works on a copy of the
// listing so fn may call back into s.
func (s *Storage) List(ctx context.Context, k storage.Kind, fn func(storage.Info) error) error {
	if !k.Valid() {
		return fmt.Errorf("mem storage: list %q: %w: unknown kind", k, storage.ErrInvalidHandle)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem storage: list %s: %w", k, err)
	}
	s.mu.RLock()
	var infos []storage.Info
	for h, data := range s.objects {
		if h.Kind == k {
			infos = append(infos, storage.Info{Handle: h, Size: int64(len(data))})
		}
	}
	s.mu.RUnlock()
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mem storage: list %s: %w", k, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Location returns "mem:".
func (s *Storage) Location() string { return "mem:" }

// Close does nothing; the objects stay readable.
func (s *Storage) Close() error { return nil }
