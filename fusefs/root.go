//go:build linux

package fusefs

import (
	"context"
	"syscall"
	"time"

	"github.com/costor/costor/repo/tree"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// common is embedded by every node: the shared state and Statfs.
type common struct {
	fsys *filesystem
}

// Statfs describes a read-only filesystem with nothing free: df then shows
// the mount without inventing a capacity.
func (c *common) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	*out = fuse.StatfsOut{}
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}

// Inode numbers of the fixed directories.
var (
	inoHosts   = ino(tagged("hosts"))
	inoIDs     = ino(tagged("ids"))
	inoHistory = ino(tagged("history"))
)

// rootDir is the mount point: hosts/, ids/ and history/.
type rootDir struct {
	fs.Inode
	common
}

var (
	_ fs.NodeOnAdder    = (*rootDir)(nil)
	_ fs.NodeGetattrer  = (*rootDir)(nil)
	_ fs.NodeStatfser   = (*rootDir)(nil)
	_ fs.NodeLookuper   = (*hostsDir)(nil)
	_ fs.NodeReaddirer  = (*hostsDir)(nil)
	_ fs.NodeReadlinker = (*latestLink)(nil)
)

// OnAdd builds the three fixed children once; they never change.
func (r *rootDir) OnAdd(ctx context.Context) {
	add := func(name string, ops fs.InodeEmbedder, ino uint64) {
		r.AddChild(name, r.NewPersistentInode(ctx, ops, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), false)
	}
	add("hosts", &hostsDir{common: r.common}, inoHosts)
	add("ids", &idsDir{common: r.common}, inoIDs)
	add("history", &historyRoot{common: r.common}, inoHistory)
}

func (r *rootDir) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.dirAttr(&out.Attr, 1, r.fsys.started)
	return 0
}

// listingAttr fills the attributes of a top-level listing, which change as
// snapshots arrive: its mtime is the newest snapshot's time.
func (c *common) listingAttr(ctx context.Context, out *fuse.AttrOut, ino uint64) syscall.Errno {
	v, err := c.fsys.catalog.current(ctx)
	if err != nil {
		return c.fsys.errno("list snapshots", err)
	}
	c.fsys.dirAttr(&out.Attr, ino, v.newest)
	out.SetTimeout(listingTimeout)
	return 0
}

// shortEntry marks a looked-up entry of a listing that changes.
func shortEntry(out *fuse.EntryOut) {
	out.SetEntryTimeout(listingTimeout)
	out.SetAttrTimeout(listingTimeout)
}

// hostsDir is hosts/: one directory per host.
type hostsDir struct {
	fs.Inode
	common
}

func (d *hostsDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return d.listingAttr(ctx, out, inoHosts)
}

func (d *hostsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	return newListStream(v.hosts, func(h **hostView) (fuse.DirEntry, bool) {
		return fuse.DirEntry{Name: (*h).name, Mode: syscall.S_IFDIR, Ino: hostIno((*h).host)}, true
	}), 0
}

func (d *hostsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	h := v.host(name)
	if h == nil {
		return nil, syscall.ENOENT
	}
	ino := hostIno(h.host)
	d.fsys.dirAttr(&out.Attr, ino, h.latest().snap.Time)
	shortEntry(out)
	return d.NewInode(ctx, &hostDir{common: d.common, name: name}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
}

func hostIno(host string) uint64 { return ino(hashString(tagged("host"), host)) }

// hostDir is hosts/<host>/: a directory per snapshot and latest.
type hostDir struct {
	fs.Inode
	common
	name string // the host's directory name
}

const latestName = "latest"

func (d *hostDir) host(ctx context.Context) (*hostView, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	h := v.host(d.name)
	if h == nil {
		// Every snapshot of the host was forgotten.
		return &hostView{name: d.name}, 0
	}
	return h, 0
}

func (d *hostDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	h, errno := d.host(ctx)
	if errno != 0 {
		return errno
	}
	d.fsys.dirAttr(&out.Attr, d.StableAttr().Ino, newestTime(h))
	out.SetTimeout(listingTimeout)
	return 0
}

func (d *hostDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	h, errno := d.host(ctx)
	if errno != 0 {
		return nil, errno
	}
	// One more slot than there are snapshots, for latest.
	n := len(h.snaps)
	if n > 0 {
		n++
	}
	idx := make([]int, n) // positions only: the names stay in the view
	for i := range idx {
		idx[i] = i
	}
	return newListStream(idx, func(i *int) (fuse.DirEntry, bool) {
		if *i == len(h.snaps) {
			return fuse.DirEntry{Name: latestName, Mode: syscall.S_IFLNK, Ino: latestIno(h.host)}, true
		}
		s := h.snaps[*i]
		return fuse.DirEntry{Name: s.name, Mode: syscall.S_IFDIR, Ino: snapRootIno("hosts", s.snap)}, true
	}), 0
}

func (d *hostDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	h, errno := d.host(ctx)
	if errno != 0 {
		return nil, errno
	}
	if name == latestName {
		if len(h.snaps) == 0 {
			return nil, syscall.ENOENT
		}
		l := &latestLink{common: d.common, hostName: d.name, ino: latestIno(h.host)}
		l.attr(&out.Attr, h)
		shortEntry(out)
		return d.NewInode(ctx, l, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: l.ino}), 0
	}
	s := h.snapshot(name)
	if s == nil {
		return nil, syscall.ENOENT
	}
	shortEntry(out)
	return d.fsys.snapshotRoot(ctx, &d.Inode, "hosts", s, out), 0
}

func newestTime(h *hostView) (t time.Time) {
	if len(h.snaps) > 0 {
		t = h.latest().snap.Time
	}
	return t
}

func latestIno(host string) uint64 { return ino(hashString(tagged("latest"), host)) }

// latestLink is hosts/<host>/latest, a relative symlink to the newest
// snapshot's directory. It is read afresh: it moves when a snapshot arrives.
type latestLink struct {
	fs.Inode
	common
	hostName string
	ino      uint64
}

func (l *latestLink) target(ctx context.Context) (*hostView, string, syscall.Errno) {
	v, err := l.fsys.catalog.current(ctx)
	if err != nil {
		return nil, "", l.fsys.errno("list snapshots", err)
	}
	h := v.host(l.hostName)
	if h == nil || len(h.snaps) == 0 {
		return nil, "", syscall.ENOENT
	}
	return h, h.latest().name, 0
}

func (l *latestLink) attr(a *fuse.Attr, h *hostView) {
	t := h.latest()
	n := tree.Node{Type: tree.Symlink, Mode: 0o777, UID: l.fsys.uid, GID: l.fsys.gid, Links: 1,
		LinkTarget: t.name, MTime: t.snap.Time.UnixNano()}
	n.ATime, n.CTime = n.MTime, n.MTime
	fillAttr(a, &n, l.ino)
}

func (l *latestLink) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	h, _, errno := l.target(ctx)
	if errno != 0 {
		return errno
	}
	l.attr(&out.Attr, h)
	out.SetTimeout(listingTimeout)
	return 0
}

func (l *latestLink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	_, target, errno := l.target(ctx)
	if errno != 0 {
		return nil, errno
	}
	return []byte(target), 0
}

// idsDir is ids/: every snapshot under its short ID.
type idsDir struct {
	fs.Inode
	common
}

func (d *idsDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return d.listingAttr(ctx, out, inoIDs)
}

func (d *idsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	return newListStream(v.byID, func(s *namedSnap) (fuse.DirEntry, bool) {
		return fuse.DirEntry{Name: s.name, Mode: syscall.S_IFDIR, Ino: snapRootIno("ids", s.snap)}, true
	}), 0
}

func (d *idsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	s := v.snapshotByName(name)
	if s == nil {
		return nil, syscall.ENOENT
	}
	shortEntry(out)
	return d.fsys.snapshotRoot(ctx, &d.Inode, "ids", s, out), 0
}
