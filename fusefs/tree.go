//go:build linux

package fusefs

import (
	"context"
	"io"
	"sync"
	"syscall"

	"github.com/costor/costor/repo/tree"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// snapRootIno numbers a snapshot's root directory, distinctly per view
// (hosts/ or ids/): a directory must have one parent, or the kernel sees an
// alias and moves it between the two.
func snapRootIno(view string, s *Snapshot) uint64 {
	return ino(hashID(tagged("snapshot/"+view), s.ID))
}

// snapshotRoot returns the node of a snapshot's root directory below parent
// and fills out with its attributes: a read-only directory carrying the
// snapshot's time, since no tree records the root itself.
func (f *filesystem) snapshotRoot(ctx context.Context, parent *fs.Inode, view string, s *Snapshot, out *fuse.EntryOut) *fs.Inode {
	ns := s.Time.UnixNano()
	d := &treeDir{
		meta: meta{common: common{fsys: f}, ino: snapRootIno(view, s), node: tree.Node{
			Type: tree.Dir, Mode: 0o555, UID: f.uid, GID: f.gid, Links: 1,
			MTime: ns, ATime: ns, CTime: ns, Subtree: s.Tree,
		}},
		snap: s,
	}
	fillAttr(&out.Attr, &d.node, d.ino)
	return parent.NewInode(ctx, d, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: d.ino})
}

// meta is the part of every snapshot node that tree.Node describes: its
// attributes and extended attributes.
type meta struct {
	common
	node tree.Node // a copy: holding a pointer would pin the parent's tree
	ino  uint64
}

func (m *meta) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, &m.node, m.ino)
	return 0
}

func (m *meta) Getxattr(_ context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(m.node.Xattrs, attr, dest)
}

func (m *meta) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(m.node.Xattrs, dest)
}

// treeDir is a directory of a snapshot. Its listing is its tree, loaded
// through the shared tree cache whenever it is needed rather than kept: the
// kernel may hold many directory inodes, and each must stay small.
type treeDir struct {
	fs.Inode
	meta
	snap *Snapshot
}

var (
	_ fs.NodeLookuper    = (*treeDir)(nil)
	_ fs.NodeReaddirer   = (*treeDir)(nil)
	_ fs.NodeGetattrer   = (*treeDir)(nil)
	_ fs.NodeGetxattrer  = (*treeDir)(nil)
	_ fs.NodeListxattrer = (*treeDir)(nil)
	_ fs.NodeStatfser    = (*treeDir)(nil)
)

func (d *treeDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	t, errno := d.fsys.loadTree(ctx, d.snap, d.node.Subtree)
	if errno != 0 {
		return nil, errno
	}
	return newListStream(t.Nodes, func(n *tree.Node) (fuse.DirEntry, bool) {
		if tree.ValidateName(n.Name) != nil {
			return fuse.DirEntry{}, false
		}
		return fuse.DirEntry{Name: n.Name, Mode: typeBits(n.Type), Ino: childIno(d.snap.ID, d.ino, n)}, true
	}), 0
}

func (d *treeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, errno := d.fsys.loadTree(ctx, d.snap, d.node.Subtree)
	if errno != 0 {
		return nil, errno
	}
	pos, ok := t.Index(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	n := &t.Nodes[pos]
	m := meta{common: d.common, node: *n, ino: childIno(d.snap.ID, d.ino, n)}
	fillAttr(&out.Attr, n, m.ino)
	stable := fs.StableAttr{Mode: typeBits(n.Type), Ino: m.ino}
	if n.Type == tree.Dir {
		return d.NewInode(ctx, &treeDir{meta: m, snap: d.snap}, stable), 0
	}
	e := &entryNode{meta: m, dir: &place{tree: d.node.Subtree, pos: pos}}
	return d.NewInode(ctx, e, stable), 0
}

// entryNode is anything but a directory: a regular file, a symlink, a device
// node, a FIFO or a socket, in a snapshot or as a version in history/.
type entryNode struct {
	fs.Inode
	meta

	// dir is where the node sits in its snapshot directory, for
	// read-ahead across files; nil for a version in history/.
	dir *place

	mu sync.Mutex
	// shared is built on first open and holds the reader all opens share;
	// it serves the reads that come without a handle of their own, once
	// the kernel opens files without asking (see Open).
	shared *fileHandle
}

var (
	_ fs.NodeOpener      = (*entryNode)(nil)
	_ fs.NodeFlusher     = (*entryNode)(nil)
	_ fs.NodeReader      = (*entryNode)(nil)
	_ fs.NodeReadlinker  = (*entryNode)(nil)
	_ fs.NodeGetattrer   = (*entryNode)(nil)
	_ fs.NodeGetxattrer  = (*entryNode)(nil)
	_ fs.NodeListxattrer = (*entryNode)(nil)
	_ fs.NodeStatfser    = (*entryNode)(nil)
	_ fs.FileReader      = (*fileHandle)(nil)
)

func (e *entryNode) Readlink(context.Context) ([]byte, syscall.Errno) {
	if e.node.Type != tree.Symlink {
		return nil, syscall.EINVAL
	}
	return []byte(e.node.LinkTarget), 0
}

// Open hands out a read handle. The content never changes, so the kernel may
// keep its page cache across opens.
//
// When the kernel supports it, a regular file's open is instead answered
// with ENOSYS, which tells the kernel once for the whole mount that opens
// need no round trip through the daemon: later opens, and their releases,
// never reach us, and reads come without a handle (Read then uses the
// node's shared one). The kernel keeps the page cache across such opens,
// as FOPEN_KEEP_CACHE does. The mount is read-only, so the kernel itself
// refuses opens for writing with EROFS.
func (e *entryNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if e.node.Type != tree.File {
		return nil, 0, syscall.EINVAL
	}
	h, errno := e.handle()
	if errno != 0 {
		return nil, 0, errno
	}
	if e.fsys.noOpen.Load() {
		return nil, 0, syscall.ENOSYS
	}
	return &fileHandle{r: h.r, fsys: e.fsys}, fuse.FOPEN_KEEP_CACHE, 0
}

// handle returns the node's shared handle, building the reader on first
// use.
func (e *entryNode) handle() (*fileHandle, syscall.Errno) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shared == nil {
		r, err := newFileReader(&e.node, e.fsys.chunks)
		if err != nil {
			return nil, e.fsys.errno("open", err)
		}
		e.shared = &fileHandle{r: r, fsys: e.fsys}
	}
	return e.shared, 0
}

// Read serves a read through the handle Open gave out, or, when opens
// no longer reach us, through the node's shared one.
func (e *entryNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := f.(*fileHandle)
	if !ok {
		if e.node.Type != tree.File {
			return nil, syscall.EINVAL
		}
		var errno syscall.Errno
		if h, errno = e.handle(); errno != 0 {
			return nil, errno
		}
	}
	if off == 0 && e.dir != nil && e.node.Size <= readAheadFileBytes {
		e.fsys.readAheadFiles(e.dir)
	}
	return h.Read(ctx, dest, off)
}

// Flush answers the FLUSH the kernel sends at every close(2) with ENOSYS,
// which tells it once for the whole mount that flushes are not needed: a
// read-only file has nothing to flush, and each one was a round trip
// through the daemon per file read.
func (e *entryNode) Flush(context.Context, fs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// Read serves one read request of an open file.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.readAt(ctx, dest, off)
	if err != nil && err != io.EOF {
		return nil, h.fsys.errno("read", err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}
