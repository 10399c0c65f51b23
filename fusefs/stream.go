//go:build linux

package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// listStream streams a directory from a slice the caller already holds (a
// decoded tree, a view's list), converting one entry at a time: a listing
// never copies its directory into a second slice. It supports seeking, so
// rewinddir and a restarted getdents work.
type listStream[T any] struct {
	items []T
	i     int
	entry func(*T) (fuse.DirEntry, bool) // false: leave the item out
	cur   fuse.DirEntry                  // items[i]'s entry, when have
	have  bool
}

func newListStream[T any](items []T, entry func(*T) (fuse.DirEntry, bool)) *listStream[T] {
	return &listStream[T]{items: items, entry: entry}
}

var (
	_ fs.DirStream     = (*listStream[int])(nil)
	_ fs.FileSeekdirer = (*listStream[int])(nil)
)

func (s *listStream[T]) HasNext() bool {
	if s.have {
		return true
	}
	for ; s.i < len(s.items); s.i++ {
		if e, ok := s.entry(&s.items[s.i]); ok {
			s.cur, s.have = e, true
			return true
		}
	}
	return false
}

func (s *listStream[T]) Next() (fuse.DirEntry, syscall.Errno) {
	if !s.HasNext() {
		return fuse.DirEntry{}, syscall.EINVAL
	}
	e := s.cur
	s.have = false
	s.i++
	// Off is where the entry after this one starts: Seekdir(Off) resumes.
	e.Off = uint64(s.i)
	return e, 0
}

func (s *listStream[T]) Seekdir(_ context.Context, off uint64) syscall.Errno {
	if off > uint64(len(s.items)) {
		return syscall.EINVAL
	}
	s.i, s.have = int(off), false
	return 0
}

func (s *listStream[T]) Close() {}
