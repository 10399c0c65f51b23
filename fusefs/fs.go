//go:build linux

package fusefs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// Timeouts for the kernel's entry and attribute caches.
const (
	// immutableTimeout is for snapshot content, which never changes.
	immutableTimeout = time.Hour
	// listingTimeout is for the listings that grow as snapshots arrive.
	listingTimeout = time.Second
)

// treeCacheBytes bounds the decoded trees kept for lookups and listings.
const treeCacheBytes = 32 << 20

// prefetchers bounds the background chunk loads of read-ahead.
const prefetchers = 4

// filesystem is the state shared by every node of one mount.
type filesystem struct {
	src     Source
	log     *slog.Logger
	catalog *catalog
	chunks  *chunkCache
	trees   *lru[treeRef, *tree.Tree]
	// mounted is the owner of the mount point, shown on the synthetic
	// directories.
	uid, gid uint32
	started  time.Time
	// noOpen is set once the kernel is known to take ENOSYS for an open
	// as "no opens needed" (FUSE_NO_OPEN_SUPPORT).
	noOpen atomic.Bool

	errMu    sync.Mutex
	loggedEr map[string]bool
}

// treeRef is what LoadTree needs to open one tree.
type treeRef struct {
	snap *Snapshot
	id   id.ID
}

func newFilesystem(base context.Context, src Source, opts Options, now func() time.Time) *filesystem {
	f := &filesystem{
		src:      src,
		log:      opts.Logger,
		uid:      uint32(syscall.Getuid()),
		gid:      uint32(syscall.Getgid()),
		started:  now(),
		loggedEr: make(map[string]bool),
	}
	f.catalog = newCatalog(src, opts.Host, now)
	f.chunks = newChunkCache(base, opts.CacheBytes, prefetchers, src.ReadChunk)
	f.trees = newLRU(base, treeCacheBytes, 1, func(ctx context.Context, r treeRef) (*tree.Tree, error) {
		return src.LoadTree(ctx, r.snap, r.id)
	}, treeCost)
	return f
}

// loadTree returns the decoded tree id of snap, from the cache when it can.
func (f *filesystem) loadTree(ctx context.Context, snap *Snapshot, treeID id.ID) (*tree.Tree, syscall.Errno) {
	t, err := f.trees.get(ctx, treeID, treeRef{snap: snap, id: treeID})
	if err != nil {
		return nil, f.errno("load tree "+treeID.Short(), err)
	}
	if t == nil {
		return &tree.Tree{}, 0
	}
	return t, 0
}

// treeCost estimates the memory a decoded tree holds.
func treeCost(t *tree.Tree) int64 {
	if t == nil {
		return 0
	}
	const nodeSize, chunkSize = 240, 72
	cost := int64(64)
	for i := range t.Nodes {
		n := &t.Nodes[i]
		cost += nodeSize + int64(len(n.Name)+len(n.LinkTarget)+len(n.User)+len(n.Group)) +
			chunkSize*int64(len(n.Content))
		for _, x := range n.Xattrs {
			cost += int64(len(x.Name) + len(x.Value) + 40)
		}
	}
	return cost
}

// maxLoggedErrors caps the memory spent remembering what was logged.
const maxLoggedErrors = 1000

// errno maps an error of the Source to what the kernel should see: EINTR for
// a request that was interrupted, EIO for everything else, logged the first
// time it happens (a failing chunk is read again by every reader; one line
// says it all). Not even a missing object is ENOENT: a name that the tree
// lists but the repository cannot produce is damage, not absence.
func (f *filesystem) errno(what string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	}
	msg := what + ": " + err.Error()
	f.errMu.Lock()
	first := !f.loggedEr[msg]
	if first && len(f.loggedEr) < maxLoggedErrors {
		f.loggedEr[msg] = true
	}
	f.errMu.Unlock()
	if first {
		f.log.Error("mount: "+what, "err", err)
	}
	return syscall.EIO
}
