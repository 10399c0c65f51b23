//go:build linux

package fusefs

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"syscall"

	"github.com/costor/costor/repo/tree"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// historyRoot is history/: one directory per host.
type historyRoot struct {
	fs.Inode
	common
}

var (
	_ fs.NodeLookuper  = (*historyRoot)(nil)
	_ fs.NodeReaddirer = (*historyRoot)(nil)
	_ fs.NodeLookuper  = (*historyDir)(nil)
	_ fs.NodeReaddirer = (*historyDir)(nil)
	_ fs.NodeLookuper  = (*versionsDir)(nil)
	_ fs.NodeReaddirer = (*versionsDir)(nil)
)

func (d *historyRoot) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return d.listingAttr(ctx, out, inoHistory)
}

func (d *historyRoot) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	return newListStream(v.hosts, func(h **hostView) (fuse.DirEntry, bool) {
		return fuse.DirEntry{Name: (*h).name, Mode: syscall.S_IFDIR, Ino: historyIno((*h).host, "/", true)}, true
	}), 0
}

func (d *historyRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return nil, d.fsys.errno("list snapshots", err)
	}
	h := v.host(name)
	if h == nil {
		return nil, syscall.ENOENT
	}
	hd := &historyDir{common: d.common, hostName: name, host: h.host, path: "/", ino: historyIno(h.host, "/", true)}
	d.fsys.dirAttr(&out.Attr, hd.ino, newestTime(h))
	shortEntry(out)
	return d.NewInode(ctx, hd, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: hd.ino}), 0
}

// historyIno numbers history/<host><path>; isDir tells a directory of the
// union from the versions directory of a file of the same path, which a later
// snapshot can turn it into.
func historyIno(host, path string, isDir bool) uint64 {
	h := hashString(hashString(tagged("history"), host), path)
	if !isDir {
		h = hashString(h, "versions")
	}
	return ino(h)
}

func versionIno(host, path string, s *Snapshot) uint64 {
	return ino(hashID(hashString(hashString(tagged("version"), host), path), s.ID))
}

// childPath joins a history directory and a name.
func childPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// generational caches what the Source said about one history path for as
// long as the snapshot list stays the same: lookups of many names in one
// directory then cost one Source call, not one each.
type generational[T any] struct {
	mu   sync.Mutex
	gen  uint64
	list []T
}

func (g *generational[T]) get(ctx context.Context, f *filesystem, fetch func(*view) ([]T, error)) ([]T, *view, syscall.Errno) {
	v, err := f.catalog.current(ctx)
	if err != nil {
		return nil, nil, f.errno("list snapshots", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen == v.gen {
		return g.list, v, 0
	}
	list, err := fetch(v)
	if err != nil {
		return nil, nil, f.errno("history", err)
	}
	g.gen, g.list = v.gen, list
	return list, v, 0
}

// historyDir is history/<host>/<path>: the union of the names ever backed up
// in that directory. Directories are directories; every other name is a
// versionsDir.
type historyDir struct {
	fs.Inode
	common
	hostName string // directory name of the host
	host     string
	path     string
	ino      uint64
	children generational[HistoryEntry]
}

func (d *historyDir) entries(ctx context.Context) ([]HistoryEntry, *view, syscall.Errno) {
	return d.children.get(ctx, d.fsys, func(*view) ([]HistoryEntry, error) {
		list, err := d.fsys.src.HistoryChildren(ctx, d.host, d.path)
		if err != nil {
			return nil, err
		}
		byName := func(a, b HistoryEntry) int { return cmp.Compare(a.Name, b.Name) }
		if !slices.IsSortedFunc(list, byName) {
			list = slices.Clone(list)
			slices.SortFunc(list, byName)
		}
		return list, nil
	})
}

func (d *historyDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	v, err := d.fsys.catalog.current(ctx)
	if err != nil {
		return d.fsys.errno("list snapshots", err)
	}
	var h *hostView
	if h = v.host(d.hostName); h == nil {
		h = &hostView{}
	}
	d.fsys.dirAttr(&out.Attr, d.ino, newestTime(h))
	out.SetTimeout(listingTimeout)
	return 0
}

func (d *historyDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	list, _, errno := d.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	return newListStream(list, func(e *HistoryEntry) (fuse.DirEntry, bool) {
		if tree.ValidateName(e.Name) != nil {
			return fuse.DirEntry{}, false
		}
		return fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR,
			Ino: historyIno(d.host, childPath(d.path, e.Name), e.IsDir)}, true
	}), 0
}

func (d *historyDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	list, v, errno := d.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	i, ok := slices.BinarySearchFunc(list, name, func(e HistoryEntry, name string) int {
		return cmp.Compare(e.Name, name)
	})
	if !ok {
		return nil, syscall.ENOENT
	}
	p := childPath(d.path, name)
	ino := historyIno(d.host, p, list[i].IsDir)
	var h *hostView
	if h = v.host(d.hostName); h == nil {
		h = &hostView{}
	}
	d.fsys.dirAttr(&out.Attr, ino, newestTime(h))
	shortEntry(out)
	var ops fs.InodeEmbedder
	if list[i].IsDir {
		ops = &historyDir{common: d.common, hostName: d.hostName, host: d.host, path: p, ino: ino}
	} else {
		ops = &versionsDir{common: d.common, hostName: d.hostName, host: d.host, path: p, ino: ino}
	}
	return d.NewInode(ctx, ops, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
}

// versionsDir is history/<host>/<path of a file>/: one read-only file per
// distinct content the file ever had, named
// <time of the first snapshot that had it>_<base name>.
type versionsDir struct {
	fs.Inode
	common
	hostName string
	host     string
	path     string
	ino      uint64
	versions generational[namedVersion]
}

type namedVersion struct {
	name string
	v    Version
}

func (d *versionsDir) list(ctx context.Context) ([]namedVersion, syscall.Errno) {
	list, _, errno := d.versions.get(ctx, d.fsys, func(view *view) ([]namedVersion, error) {
		vs, err := d.fsys.src.Versions(ctx, d.host, d.path)
		if err != nil {
			return nil, err
		}
		base := d.path[lastSlash(d.path)+1:]
		named := make([]namedVersion, 0, len(vs))
		for _, v := range vs {
			if v.Snapshot == nil {
				continue
			}
			// The name of the snapshot's directory under hosts/, so that
			// two snapshots in one second stay apart here as they do there.
			dir, ok := view.dirOf[v.Snapshot.ID]
			if !ok {
				dir = v.Snapshot.Time.Local().Format(TimeFormat)
			}
			named = append(named, namedVersion{name: dir + "_" + base, v: v})
		}
		slices.SortStableFunc(named, func(a, b namedVersion) int { return cmp.Compare(a.name, b.name) })
		return slices.CompactFunc(named, func(a, b namedVersion) bool { return a.name == b.name }), nil
	})
	return list, errno
}

func lastSlash(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return -1
}

func (d *versionsDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	list, errno := d.list(ctx)
	if errno != 0 {
		return errno
	}
	mtime := d.fsys.started
	if len(list) > 0 {
		mtime = list[len(list)-1].v.Snapshot.Time
	}
	d.fsys.dirAttr(&out.Attr, d.ino, mtime)
	out.SetTimeout(listingTimeout)
	return 0
}

func (d *versionsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	list, errno := d.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	return newListStream(list, func(v *namedVersion) (fuse.DirEntry, bool) {
		if tree.ValidateName(v.name) != nil {
			return fuse.DirEntry{}, false
		}
		return fuse.DirEntry{Name: v.name, Mode: typeBits(v.v.Node.Type),
			Ino: versionIno(d.host, d.path, v.v.Snapshot)}, true
	}), 0
}

func (d *versionsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	list, errno := d.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	i, ok := slices.BinarySearchFunc(list, name, func(v namedVersion, name string) int {
		return cmp.Compare(v.name, name)
	})
	if !ok {
		return nil, syscall.ENOENT
	}
	v := list[i].v
	n := v.Node
	n.Name = name
	// One name in the mount, whatever the links were in the snapshot.
	n.Links = 1
	e := &entryNode{meta: meta{common: d.common, node: n, ino: versionIno(d.host, d.path, v.Snapshot)}}
	fillAttr(&out.Attr, &n, e.ino)
	out.SetEntryTimeout(listingTimeout)
	return d.NewInode(ctx, e, fs.StableAttr{Mode: typeBits(n.Type), Ino: e.ino}), 0
}
