//go:build linux

package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// chunkCache holds decrypted chunks keyed by chunk ID, shared by every open
// file of the mount.
type chunkCache = lru[tree.Chunk, []byte]

// newChunkCache returns a cache of at most limit plaintext bytes that loads
// through read, with at most prefetchers background read-aheads at once.
func newChunkCache(base context.Context, limit int64, prefetchers int,
	read func(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error)) *chunkCache {
	load := func(ctx context.Context, c tree.Chunk) ([]byte, error) {
		// No buffer of our own: the repository then hands back an
		// incompressible chunk in the buffer it read and decrypted it in.
		data, err := read(ctx, c, nil)
		if err != nil {
			return nil, fmt.Errorf("read chunk %s: %w", c.ID.Short(), err)
		}
		if len(data) != int(c.Length) {
			return nil, fmt.Errorf("read chunk %s: %d bytes, want %d: %w",
				c.ID.Short(), len(data), c.Length, errBadChunk)
		}
		return data, nil
	}
	return newLRU(base, limit, prefetchers, load, func(b []byte) int64 { return int64(cap(b)) })
}

var (
	errBadChunk   = errors.New("chunk length does not match the tree")
	errBadContent = errors.New("file size does not match its chunks")
)

// fileReader is random access to one file's content: the chunk list with
// cumulative end offsets, searched in O(log n) per read, fetched through the
// shared chunk cache. It is immutable after construction and so safe for
// any number of parallel readers, as io.ReaderAt requires.
type fileReader struct {
	chunks []tree.Chunk
	ends   []int64 // ends[i] is the offset just past chunks[i]
	size   int64
	cache  *chunkCache
}

var _ io.ReaderAt = (*fileReader)(nil)

// newFileReader indexes the chunks of a regular file node.
func newFileReader(n *tree.Node, cache *chunkCache) (*fileReader, error) {
	ends := make([]int64, len(n.Content))
	var off int64
	for i, c := range n.Content {
		if c.Length == 0 {
			return nil, fmt.Errorf("file %q: chunk %d is empty: %w", n.Name, i, errBadContent)
		}
		off += int64(c.Length)
		ends[i] = off
	}
	if n.Size > 1<<62 || off != int64(n.Size) {
		return nil, fmt.Errorf("file %q: size %d, chunks hold %d: %w", n.Name, n.Size, off, errBadContent)
	}
	return &fileReader{chunks: n.Content, ends: ends, size: off, cache: cache}, nil
}

// Size is the file's length in bytes.
func (r *fileReader) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *fileReader) ReadAt(p []byte, off int64) (int, error) {
	return r.readAt(context.Background(), p, off)
}

// readAt is ReadAt that gives up when ctx is done.
func (r *fileReader) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at offset %d: %w", off, errNegativeOffset)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := p
	if rest := r.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	n := 0
	for i := r.chunkAt(off); n < len(want); i++ {
		data, err := r.cache.get(ctx, r.chunks[i].ID, r.chunks[i])
		if err != nil {
			return n, err
		}
		start := off + int64(n) - (r.ends[i] - int64(r.chunks[i].Length))
		n += copy(want[n:], data[start:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

var errNegativeOffset = errors.New("negative offset")

// chunkAt is the index of the chunk holding byte off (off < size).
func (r *fileReader) chunkAt(off int64) int {
	return sort.Search(len(r.ends), func(i int) bool { return r.ends[i] > off })
}

// readAheadChunks is how many chunks past the current one a sequential
// reader has fetched in the background.
const readAheadChunks = 2

// seqSlack is how far a read may start from where the previous one ended and
// still count as sequential: the kernel's own read-ahead issues requests
// concurrently, so they arrive slightly out of order.
const seqSlack = 1 << 20

// fileHandle is one open of a file: the shared reader plus the access
// pattern seen through this handle, which decides read-ahead.
type fileHandle struct {
	r    *fileReader
	fsys *filesystem
	mu   sync.Mutex
	next int64 // where a sequential reader continues
}

// readAt reads like fileReader.readAt and, when the reads through this
// handle look sequential, starts loading the chunks that follow.
func (h *fileHandle) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := h.r.readAt(ctx, p, off)
	if n == 0 {
		return n, err
	}
	end := off + int64(n)
	h.mu.Lock()
	sequential := off >= h.next-seqSlack && off <= h.next+seqSlack
	h.next = max(h.next, end)
	h.mu.Unlock()
	if sequential {
		h.r.readAhead(end)
	}
	return n, err
}

// readAhead prefetches the chunks after the one holding byte end-1.
func (r *fileReader) readAhead(end int64) {
	if end >= r.size {
		return
	}
	first := r.chunkAt(end - 1)
	for i := first + 1; i <= first+readAheadChunks && i < len(r.chunks); i++ {
		r.cache.prefetch(r.chunks[i].ID, r.chunks[i])
	}
}

// Read-ahead across files: a reader that takes a directory's files in name
// order (cat *, cp -r, tar, a file manager making thumbnails) waits, for
// each small file, on a kernel round trip and, when cold, on a pack read and
// an index lookup in turn. When such a file is read from its start, the
// first chunks of the files after it in the directory start loading in the
// background, so the next file's read finds its chunk cached or on its way.
// A large file does not do it: it has read-ahead of its own, which must
// not find the prefetch slots taken by its neighbours.
const (
	// readAheadFileCount is how many following files are looked at.
	readAheadFileCount = 8
	// readAheadFileBytes bounds the chunk bytes one read starts loading;
	// a large file after the one being read ends the look-ahead, it has
	// read-ahead of its own once read sequentially.
	readAheadFileBytes = 1 << 20
)

// place is where a file sits in its snapshot directory.
type place struct {
	tree id.ID // the directory's tree
	pos  int   // the file's index in its Nodes
}

// readAheadFiles prefetches the first chunks of the regular files that
// follow p in its directory. It only uses the directory's tree when it is
// still cached (it was, for the lookup that made the node), and it never
// waits: prefetch drops what finds every slot busy, and the next file's
// first read asks again.
func (f *filesystem) readAheadFiles(p *place) {
	t, ok := f.trees.peek(p.tree)
	if !ok || t == nil {
		return
	}
	budget := int64(readAheadFileBytes)
	for i := p.pos + 1; i < len(t.Nodes) && i <= p.pos+readAheadFileCount; i++ {
		n := &t.Nodes[i]
		if n.Type != tree.File || len(n.Content) == 0 {
			continue
		}
		c := n.Content[0]
		if budget -= int64(c.Length); budget < 0 {
			return
		}
		f.chunks.prefetch(c.ID, c)
	}
}
