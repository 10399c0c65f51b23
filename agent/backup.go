package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restic/chunker"
	"golang.org/x/sync/errgroup"

	"github.com/costor/costor/agent/fsmeta"
	"github.com/costor/costor/internal/cpus"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/tree"
)

// BackupOptions describe one backup.
type BackupOptions struct {
	Paths    []string // absolute or relative; made absolute and cleaned
	Tags     []string
	Excludes []string // glob patterns: without '/' they match a base name, with '/' the whole path
	// ExcludePaths are absolute paths never backed up (the repository itself).
	ExcludePaths  []string
	OneFileSystem bool
	// Parent is the snapshot whose unchanged files are reused without
	// reading them; nil for none.
	Parent *Parent
	// Keyer and Polynomial come from the organisation secret; HostKey seals
	// this host's trees and snapshot details.
	Keyer      *crypto.ChunkKeyer
	Polynomial chunker.Pol
	HostKey    *repo.HostKey
	Hostname   string
	Username   string
	Method     string // how the point-in-time view was made ("none")
	Program    string
	// Workers is the number of large-file readers and of sealers; 0 means
	// one of each per CPU.
	Workers int
	// IOWorkers is the number of small-file readers and of directory
	// listers; 0 means DefaultIOWorkers. They spend most of their time
	// waiting for the disk, not on a CPU: a cold tree of small files is
	// read several times faster with many requests in flight.
	IOWorkers int
	Progress  *Progress // may be nil
	// Warn is told about every path that could not be read or changed while
	// being read; may be nil.
	Warn func(msg string)
	Now  func() time.Time
	// View, if set, is a point-in-time view (a filesystem snapshot) of
	// Paths: files are read from the view and recorded under their
	// original paths.
	View SnapshotView
	// Problems found before the walk (a filesystem the snapshot does not
	// cover): recorded like unreadable paths, so the backup exits 3.
	Problems []string
}

// SnapshotView is a read-only point-in-time view of the backup paths, made
// by a filesystem-snapshot adapter (btrfs, lvm, zfs, vss, apfs).
type SnapshotView interface {
	// Path maps an original absolute path (a backup path or below one) to
	// where its content can be read inside the view.
	Path(original string) (string, error)
}

// viewRoot maps one backup path to its place in the view.
type viewRoot struct{ original, view string }

// Parent identifies the snapshot a backup builds on.
type Parent struct {
	ID   id.ID
	Tree id.ID
	// Key opens the parent's trees; it may differ from the key new trees
	// are sealed with (another envelope of the same host).
	Key *repo.HostKey
}

// BackupResult is what a finished backup reports.
type BackupResult struct {
	SnapshotID id.ID
	Time       time.Time
	Stats      snapshot.Stats
	// Errors lists paths that could not be read: the backup is complete for
	// everything else, and the CLI exits 3.
	Errors []string
	// Changed lists files that changed while being read.
	Changed []string
}

// Progress is updated while a backup runs; read it from another goroutine.
type Progress struct {
	FilesDone, BytesDone   atomic.Uint64
	FilesTotal, BytesTotal atomic.Uint64 // from the scanner; grow while it runs
	ScanDone               atomic.Bool
	current                atomic.Pointer[string]
}

// Current returns the file being read most recently.
func (p *Progress) Current() string {
	if s := p.current.Load(); s != nil {
		return *s
	}
	return ""
}

type backuper struct {
	repo   Repository
	opts   BackupOptions
	cancel context.CancelCauseFunc

	fileJobs  chan *fileJob // files of at least chunker.MinSize
	smallJobs chan *fileJob // files below it: one chunk each, read and sealed by one worker
	sealJobs  chan *sealJob
	bufs      sync.Pool
	// listers bounds the directories listed at once beside the walker
	// (each lstat of every entry, its parent tree looked up): a no-change
	// backup is nothing but that, and on a cold cache every lstat waits
	// for the disk, so there are IOWorkers of them.
	listers chan struct{}

	mu         sync.Mutex
	errs       []string
	changed    []string
	unrecorded int

	files, dirs, bytes                atomic.Uint64
	filesNew, filesChanged, filesSame atomic.Uint64
	blobsAdded, bytesAdded            atomic.Uint64
	// statsAtStart: the repository's BlobStats when the backup began; the
	// snapshot's added counts are the difference at its end.
	statsAtStart repo.BlobStats
	viewRoots    []viewRoot
	// excludedDirs are ExcludePaths as (device, inode): the repository is
	// skipped even when reached through a symlink or a bind mount.
	excludedDirs map[[2]uint64]bool
	// dirsPending counts sealDir goroutines: Backup waits for them all, so
	// none is still storing a tree when the caller closes the repository.
	dirsPending sync.WaitGroup
	// parentTreesOurs: the parent's trees are sealed with our key, so one
	// of them that an unchanged directory encodes to can be named as it is.
	parentTreesOurs bool
	emptyTreeOnce   sync.Once
	emptyTree       id.ID
	emptyTreeErr    error
}

// future is a node that some goroutine is still producing.
type future struct {
	done chan struct{}
	node tree.Node
	skip bool // the entry is left out (it could not be read)
	err  error
}

func newFuture() *future { return &future{done: make(chan struct{})} }

func resolved(n tree.Node) *future {
	f := &future{done: make(chan struct{}), node: n}
	close(f.done)
	return f
}

func (f *future) resolve(n tree.Node, skip bool, err error) {
	f.node, f.skip, f.err = n, skip, err
	close(f.done)
}

type fileJob struct {
	path   string
	meta   tree.Node
	parent bool // the parent snapshot had this file (changed, not new)
	fut    *future
}

type sealJob struct {
	data *[]byte
	slot *tree.Chunk
	wg   *sync.WaitGroup
	err  *error
	once *sync.Once
}

// Backup runs a backup and writes its snapshot record.
func Backup(ctx context.Context, r Repository, opts BackupOptions) (*BackupResult, error) {
	if opts.Keyer == nil || opts.HostKey == nil {
		return nil, errors.New("backup: keys missing")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = cpus.N
	}
	if opts.IOWorkers <= 0 {
		opts.IOWorkers = DefaultIOWorkers
	}
	paths, err := cleanPaths(opts.Paths)
	if err != nil {
		return nil, err
	}
	opts.Paths = paths
	start := opts.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := &backuper{
		repo: r, opts: opts, cancel: cancel, statsAtStart: r.BlobStats(),
		fileJobs:  make(chan *fileJob, 4*opts.Workers),
		smallJobs: make(chan *fileJob, 4*opts.IOWorkers),
		sealJobs:  make(chan *sealJob, opts.Workers),
		listers:   make(chan struct{}, opts.IOWorkers),
	}
	b.parentTreesOurs = opts.Parent != nil &&
		(opts.Parent.Key == nil || opts.Parent.Key.SameDataKey(opts.HostKey))
	b.bufs.New = func() any { buf := make([]byte, 0, chunker.MinSize*2); return &buf }
	b.errs = append(b.errs, opts.Problems...)
	b.excludedDirs = map[[2]uint64]bool{}
	for _, p := range opts.ExcludePaths {
		if n, err := fsmeta.Lstat(p, filepath.Base(p)); err == nil {
			b.excludedDirs[[2]uint64{n.Device, n.Inode}] = true
		}
	}
	if opts.View != nil {
		for _, p := range paths {
			v, err := opts.View.Path(p)
			if err != nil {
				return nil, fmt.Errorf("backup %s from the snapshot: %w", p, err)
			}
			b.viewRoots = append(b.viewRoots, viewRoot{original: p, view: v})
		}
		// Inside a snapshot an excluded directory has the snapshot's
		// device: exclude its copy in the view too.
		for _, p := range opts.ExcludePaths {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				continue
			}
			if src := b.src(real); src != real {
				if n, err := fsmeta.Lstat(src, filepath.Base(src)); err == nil {
					b.excludedDirs[[2]uint64{n.Device, n.Inode}] = true
				}
			}
		}
	}

	var workers errgroup.Group
	for range opts.Workers {
		workers.Go(func() error { b.fileWorker(ctx, b.fileJobs); return nil })
	}
	for range opts.IOWorkers {
		workers.Go(func() error { b.fileWorker(ctx, b.smallJobs); return nil })
	}
	var sealers sync.WaitGroup
	for range opts.Workers {
		sealers.Go(func() { b.sealWorker(ctx) })
	}
	if opts.Progress != nil {
		go scan(ctx, paths, &opts)
	}

	root := b.root(ctx)
	<-root.done
	b.dirsPending.Wait()
	close(b.fileJobs)
	close(b.smallJobs)
	_ = workers.Wait()
	close(b.sealJobs)
	sealers.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	if root.err != nil {
		return nil, root.err
	}
	return b.saveSnapshot(ctx, start, paths, root.node.Subtree)
}

// saveSnapshot writes the snapshot record of a finished walk.
func (b *backuper) saveSnapshot(ctx context.Context, start time.Time, paths []string, rootTree id.ID) (*BackupResult, error) {
	opts := b.opts
	res := &BackupResult{Time: start, Errors: b.errs, Changed: b.changed}
	// What was added is known exactly only once every blob is stored: a
	// server may already hold what SaveBlob could not know about.
	if err := b.repo.Flush(ctx); err != nil {
		return nil, err
	}
	added := b.repo.BlobStats()
	res.Stats = snapshot.Stats{
		Files: b.files.Load(), Dirs: b.dirs.Load(), Bytes: b.bytes.Load(),
		FilesNew: b.filesNew.Load(), FilesChanged: b.filesChanged.Load(), FilesSame: b.filesSame.Load(),
		BlobsAdded: added.Blobs - b.statsAtStart.Blobs, BytesAdded: added.Bytes - b.statsAtStart.Bytes,
	}
	det := &snapshot.Details{
		Paths: paths, Tree: rootTree, Hostname: opts.Hostname, Username: opts.Username,
		Excludes: opts.Excludes, Method: opts.Method, Program: opts.Program, Stats: res.Stats,
	}
	det.Errors = append(append(det.Errors, b.errs...), b.changed...)
	if b.unrecorded > 0 {
		det.Errors = append(det.Errors, fmt.Sprintf("… and %d more problems, not recorded", b.unrecorded))
	}
	pub := snapshot.Public{Time: start, Tags: opts.Tags}
	if opts.Parent != nil {
		pub.Parent = opts.Parent.ID
	}
	res.Stats.Duration = opts.Now().Sub(start)
	det.Stats.Duration = res.Stats.Duration
	snapID, err := b.repo.SaveSnapshot(ctx, opts.HostKey, pub, det)
	if err != nil {
		return nil, err
	}
	res.SnapshotID = snapID
	return res, nil
}

// cleanPaths makes paths absolute and drops any path inside another one.
func cleanPaths(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New("backup: no paths given")
	}
	var out []string
	for _, p := range in {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("backup path %q: %w", p, err)
		}
		out = append(out, abs)
	}
	sort.Strings(out)
	var kept []string
outer:
	for _, p := range out {
		// Compare with every kept path, not only the last: "/a-b" sorts
		// between "/a" and "/a/b".
		for _, k := range kept {
			if within(p, k) {
				continue outer
			}
		}
		kept = append(kept, p)
	}
	return kept, nil
}

// src is where the backuper reads the original path abs: inside the
// snapshot view for paths at or below a backup path, abs itself otherwise
// (the directories on the way to a backup path are read live).
//
// Every path is mapped through the view, not only the backup paths: a
// nested subvolume or dataset below a backup path has a snapshot of its own,
// and inside the parent's snapshot it is just an empty directory.
func (b *backuper) src(abs string) string {
	for _, r := range b.viewRoots {
		if within(abs, r.original) {
			if v, err := b.opts.View.Path(abs); err == nil {
				return v
			}
			return filepath.Join(r.view, strings.TrimPrefix(abs, r.original))
		}
	}
	return abs
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// maxRecorded bounds the problems a snapshot records (the record's sealed
// part is limited in size); all of them are still reported through Warn.
const maxRecorded = 10000

// DefaultIOWorkers is BackupOptions.IOWorkers when unset. On a cold cache
// of 100,000 small files, 8 readers were 1.8 and 32 readers 2.4 times as
// fast as 2, with the same CPU time.
const DefaultIOWorkers = 16

func (b *backuper) warn(list *[]string, msg string) {
	b.mu.Lock()
	if len(*list) < maxRecorded {
		*list = append(*list, msg)
	} else {
		b.unrecorded++
	}
	b.mu.Unlock()
	if b.opts.Warn != nil {
		b.opts.Warn(msg)
	}
}

func (b *backuper) fail(err error) { b.cancel(err) }

// root builds the snapshot's root: a virtual directory "/" holding each
// backup path under its absolute location, with the real metadata of the
// directories on the way.
func (b *backuper) root(ctx context.Context) *future {
	var parentRoot id.ID
	if b.opts.Parent != nil {
		parentRoot = b.opts.Parent.Tree
	}
	for _, p := range b.opts.Paths {
		if p == "/" {
			meta, err := fsmeta.Lstat(b.src("/"), "/")
			if err != nil {
				f := newFuture()
				f.resolve(tree.Node{}, true, fmt.Errorf("backup /: %w", err))
				return f
			}
			return b.dir(ctx, "/", meta, parentRoot, meta.Device)
		}
	}
	return b.virtualDir(ctx, "/", tree.Node{Type: tree.Dir, Name: "/"}, b.opts.Paths, parentRoot)
}

// virtualDir is a directory on the way to backup paths: only the children
// leading to them are included.
func (b *backuper) virtualDir(ctx context.Context, abs string, meta tree.Node, paths []string, parentTree id.ID) *future {
	pt, prev := b.loadParentTree(ctx, parentTree, abs)
	groups := map[string][]string{}
	var names []string
	for _, p := range paths {
		rest := strings.TrimPrefix(p, strings.TrimSuffix(abs, "/")+"/")
		name, _, _ := strings.Cut(rest, "/")
		if _, ok := groups[name]; !ok {
			names = append(names, name)
		}
		groups[name] = append(groups[name], p)
	}
	sort.Strings(names)
	var children []*future
	for _, name := range names {
		childAbs := filepath.Join(abs, name)
		var parentSub id.ID
		if pn := findIn(pt, name); pn != nil && pn.Type == tree.Dir {
			parentSub = pn.Subtree
		}
		childMeta, err := fsmeta.Lstat(b.src(childAbs), name)
		if err != nil {
			b.warn(&b.errs, fmt.Sprintf("%s: %v", childAbs, err))
			continue
		}
		if len(groups[name]) == 1 && groups[name][0] == childAbs {
			children = append(children, b.entry(ctx, childAbs, childMeta, findIn(pt, name), childMeta.Device))
			continue
		}
		if childMeta.Type != tree.Dir {
			b.warn(&b.errs, fmt.Sprintf("%s: not a directory", childAbs))
			continue
		}
		children = append(children, b.virtualDir(ctx, childAbs, childMeta, groups[name], parentSub))
	}
	return b.sealDir(ctx, meta, children, prev)
}

func findIn(t *tree.Tree, name string) *tree.Node {
	if t == nil {
		return nil
	}
	n, ok := t.Find(name)
	if !ok {
		return nil
	}
	return n
}

// parentDir is what a directory's tree in the parent snapshot says about
// the new one: its ID, and the hash of its encoding to compare with.
type parentDir struct {
	tree   id.ID // null: no parent tree, or one that cannot be named
	digest id.ID
}

func (b *backuper) loadParentTree(ctx context.Context, treeID id.ID, abs string) (*tree.Tree, parentDir) {
	if treeID.IsNull() {
		return nil, parentDir{}
	}
	key := b.opts.HostKey
	if b.opts.Parent != nil && b.opts.Parent.Key != nil {
		key = b.opts.Parent.Key
	}
	t, digest, err := b.repo.LoadTreeDigest(ctx, key, treeID)
	if err != nil {
		// Without the parent's listing every file here is read again:
		// slower, never wrong.
		if b.opts.Warn != nil {
			b.opts.Warn(fmt.Sprintf("%s: parent snapshot's listing unreadable, reading all files again: %v", abs, err))
		}
		return nil, parentDir{}
	}
	if !b.parentTreesOurs || digest.IsNull() {
		return t, parentDir{}
	}
	return t, parentDir{tree: treeID, digest: digest}
}

// entry dispatches one directory entry by type.
func (b *backuper) entry(ctx context.Context, abs string, meta tree.Node, prev *tree.Node, rootDev uint64) *future {
	switch meta.Type {
	case tree.Dir:
		var parentSub id.ID
		if prev != nil && prev.Type == tree.Dir {
			parentSub = prev.Subtree
		}
		if b.opts.OneFileSystem && meta.Device != rootDev {
			return b.mountPoint(ctx, meta)
		}
		return b.subdir(ctx, abs, meta, parentSub, rootDev)
	case tree.File:
		return b.file(ctx, abs, meta, prev)
	default:
		b.files.Add(1)
		if b.opts.Progress != nil {
			b.opts.Progress.FilesDone.Add(1)
		}
		return resolved(meta)
	}
}

// mountPoint records a directory on another filesystem as an empty one,
// so --one-file-system still shows where the mount was.
func (b *backuper) mountPoint(ctx context.Context, meta tree.Node) *future {
	b.emptyTreeOnce.Do(func() {
		b.emptyTree, b.emptyTreeErr = b.saveTree(ctx, &tree.Tree{}, parentDir{})
	})
	f := newFuture()
	meta.Subtree = b.emptyTree
	f.resolve(meta, false, b.emptyTreeErr)
	b.dirs.Add(1)
	return f
}

// subdir lists a directory in a goroutine of its own when a lister is free
// and on the caller's goroutine otherwise, so at most Workers listings run
// beside the walker and memory stays bounded as before.
func (b *backuper) subdir(ctx context.Context, abs string, meta tree.Node, parentTree id.ID, rootDev uint64) *future {
	select {
	case b.listers <- struct{}{}:
	default:
		return b.dir(ctx, abs, meta, parentTree, rootDev)
	}
	f := newFuture()
	// Counted like a sealDir, so Backup waits for it before it closes the
	// file queue; added here, while the caller is itself counted (or is the
	// walker, before Backup waits).
	b.dirsPending.Add(1)
	go func() {
		defer b.dirsPending.Done()
		children, prev, ok := b.list(ctx, abs, meta, parentTree, rootDev, f)
		// The lister is free once the listing is done; this goroutine
		// goes on as the directory's sealDir.
		<-b.listers
		if ok {
			b.dirs.Add(1)
			b.finishDir(ctx, meta, children, prev, f)
		}
	}()
	return f
}

// dir lists a real directory and returns a future of its node.
func (b *backuper) dir(ctx context.Context, abs string, meta tree.Node, parentTree id.ID, rootDev uint64) *future {
	f := newFuture()
	children, prev, ok := b.list(ctx, abs, meta, parentTree, rootDev, f)
	if !ok {
		return f
	}
	return b.sealDir(ctx, meta, children, prev)
}

// list lists a directory and dispatches its entries. It resolves f and
// reports false if the backup is cancelled.
func (b *backuper) list(ctx context.Context, abs string, meta tree.Node, parentTree id.ID, rootDev uint64, f *future) ([]*future, parentDir, bool) {
	if ctx.Err() != nil {
		f.resolve(meta, false, context.Cause(ctx))
		return nil, parentDir{}, false
	}
	pt, prev := b.loadParentTree(ctx, parentTree, abs)
	entries := b.describeEntries(abs)
	children := make([]*future, 0, len(entries))
	for i, e := range entries {
		// Dropped once dispatched: a subdirectory may be walked on this
		// goroutine, and the described entries of every directory up
		// the stack would stay alive with it.
		entries[i] = dirEntry{}
		children = append(children, b.entry(ctx, e.path, e.meta, findIn(pt, e.meta.Name), rootDev))
	}
	return children, prev, true
}

type dirEntry struct {
	path string // in the backed-up tree
	meta tree.Node
}

// describeEntries lists the directory abs and describes each entry that is
// not excluded, sorted by name, warning about what cannot be read. The
// directory is open only while its entries are described (each beside it,
// with LstatAt), and closed before any of them is dispatched: a
// subdirectory may be walked on this goroutine, and descriptors held down
// a deep tree would add up.
func (b *backuper) describeEntries(abs string) []dirEntry {
	dirSrc := b.src(abs)
	dir, names, err := readDir(dirSrc)
	if err != nil {
		b.warn(&b.errs, fmt.Sprintf("%s: cannot list directory: %v", abs, err))
	}
	if dir != nil {
		defer dir.Close()
	}
	entries := make([]dirEntry, 0, len(names))
	for _, name := range names {
		p := filepath.Join(abs, name)
		if b.excluded(p, name) {
			continue
		}
		src := b.src(p)
		var meta tree.Node
		if dir != nil && src == filepath.Join(dirSrc, name) {
			meta, err = fsmeta.LstatAt(dir, src, name)
		} else {
			// Another view (a nested subvolume's snapshot) is mounted
			// here: describe what it shows.
			meta, err = fsmeta.Lstat(src, name)
		}
		if err != nil {
			b.warn(&b.errs, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		if meta.Type == tree.Dir && b.excludedDirs[[2]uint64{meta.Device, meta.Inode}] {
			continue
		}
		entries = append(entries, dirEntry{path: p, meta: meta})
	}
	return entries
}

// saveTree stores a directory's tree, counting it in the stats when new.
//
// A directory that encodes to the same bytes as its tree in the parent
// snapshot, which is still stored, is that tree: it is named as it is,
// costing an encode and a hash instead of compression and sealing (most
// directories of a backup after a few changes). Every entry of the new tree
// refers to stored blobs (a reused file's chunks were checked by allStored,
// a read file's were stored, a subdirectory's tree went through here), so
// the named tree does too. The HasBlob check is needed even so: a server
// client records there that the snapshot references the tree.
func (b *backuper) saveTree(ctx context.Context, t *tree.Tree, prev parentDir) (id.ID, error) {
	plain, err := t.Encode(nil)
	if err != nil {
		return id.ID{}, err
	}
	if !prev.tree.IsNull() && id.Hash(plain) == prev.digest {
		if ok, err := b.repo.HasBlob(ctx, prev.tree); err == nil && ok {
			return prev.tree, nil
		}
	}
	treeID, sealed, rawLen := repo.SealEncodedTree(b.opts.HostKey, plain)
	added, err := b.repo.SaveBlob(ctx, pack.TreeBlob, treeID, sealed, rawLen)
	if err != nil {
		return id.ID{}, err
	}
	if added {
		b.blobsAdded.Add(1)
		b.bytesAdded.Add(uint64(len(sealed)))
	}
	return treeID, nil
}

// readDir opens the directory at path and lists its names, sorted. The
// caller closes the directory; it is nil when it could not be opened.
// Names read before an error are returned with it.
func readDir(path string) (*os.File, []string, error) {
	f, err := openDirNoAtime(path)
	if err != nil {
		return nil, nil, err
	}
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return f, names, err
}

func (b *backuper) excluded(abs, name string) bool {
	for _, p := range b.opts.ExcludePaths {
		if abs == p {
			return true
		}
	}
	for _, pat := range b.opts.Excludes {
		target := name
		if strings.Contains(pat, "/") {
			target = abs
		}
		if ok, _ := filepath.Match(pat, target); ok {
			return true
		}
	}
	return false
}

// sealDir waits for the children in a goroutine of its own and stores the
// directory's tree, so the walker moves on at once.
func (b *backuper) sealDir(ctx context.Context, meta tree.Node, children []*future, prev parentDir) *future {
	f := newFuture()
	b.dirs.Add(1)
	b.dirsPending.Add(1)
	go func() {
		defer b.dirsPending.Done()
		b.finishDir(ctx, meta, children, prev, f)
	}()
	return f
}

// finishDir waits for a directory's children, stores its tree and
// resolves f with its node.
func (b *backuper) finishDir(ctx context.Context, meta tree.Node, children []*future, prev parentDir, f *future) {
	t := &tree.Tree{Nodes: make([]tree.Node, 0, len(children))}
	for _, c := range children {
		select {
		case <-c.done:
		case <-ctx.Done():
			f.resolve(meta, false, context.Cause(ctx))
			return
		}
		if c.err != nil {
			f.resolve(meta, false, c.err)
			return
		}
		if !c.skip {
			t.Nodes = append(t.Nodes, c.node)
		}
	}
	treeID, err := b.saveTree(ctx, t, prev)
	if err != nil {
		b.fail(fmt.Errorf("save directory %s: %w", meta.Name, err))
		f.resolve(meta, false, err)
		return
	}
	meta.Subtree = treeID
	f.resolve(meta, false, nil)
}

// file reuses an unchanged file's content from the parent snapshot or
// queues the file to be read.
func (b *backuper) file(ctx context.Context, abs string, meta tree.Node, prev *tree.Node) *future {
	b.files.Add(1)
	b.bytes.Add(meta.Size)
	if prev != nil && unchanged(prev, &meta) && b.allStored(ctx, prev.Content) {
		meta.Content = prev.Content
		meta.Size = prev.Size
		b.filesSame.Add(1)
		if p := b.opts.Progress; p != nil {
			p.FilesDone.Add(1)
			p.BytesDone.Add(meta.Size)
		}
		return resolved(meta)
	}
	job := &fileJob{path: abs, meta: meta, parent: prev != nil, fut: newFuture()}
	queue := b.fileJobs
	if meta.Size < chunker.MinSize {
		queue = b.smallJobs
	}
	select {
	case queue <- job:
	case <-ctx.Done():
		job.fut.resolve(meta, false, context.Cause(ctx))
	}
	return job.fut
}

// unchanged is the parent-reuse test: same type, size, mtime, ctime and
// inode means the content has not been rewritten.
func unchanged(prev, cur *tree.Node) bool {
	return prev.Type == tree.File && prev.Size == cur.Size && prev.MTime == cur.MTime &&
		prev.CTime == cur.CTime && prev.Inode == cur.Inode
}

// allStored guards reuse against a parent whose chunks are gone (pruned or
// lost): such a file is read again instead of being referenced blindly.
func (b *backuper) allStored(ctx context.Context, chunks []tree.Chunk) bool {
	for _, c := range chunks {
		ok, err := b.repo.HasBlob(ctx, c.ID)
		if err != nil || !ok {
			return false
		}
	}
	return true
}

// fileWorker reads the files of one queue. Its chunker (half a MiB of
// buffer) is made when a file first needs one: a small-file worker needs
// it only for a file that grew past the chunker's minimum size.
func (b *backuper) fileWorker(ctx context.Context, jobs <-chan *fileJob) {
	var ch *chunker.Chunker
	var scratch sealScratch
	for job := range jobs {
		if ctx.Err() != nil {
			job.fut.resolve(job.meta, false, context.Cause(ctx))
			continue
		}
		node, skip, err := b.readFile(ctx, job, &ch, &scratch)
		job.fut.resolve(node, skip, err)
	}
}

type sealScratch struct{ read, compressed, sealed []byte }

func (b *backuper) readFile(ctx context.Context, job *fileJob, ch **chunker.Chunker, scratch *sealScratch) (tree.Node, bool, error) {
	if p := b.opts.Progress; p != nil {
		p.current.Store(&job.path)
	}
	f, err := openNoAtime(b.src(job.path))
	if err != nil {
		b.warn(&b.errs, fmt.Sprintf("%s: %v", job.path, err))
		return job.meta, true, nil
	}
	defer f.Close()
	before, err := fsmeta.Fstat(f, job.meta.Name)
	if err != nil || before.Type != tree.File {
		b.warn(&b.errs, fmt.Sprintf("%s: changed type or vanished before it could be read", job.path))
		return job.meta, true, nil
	}
	var content []tree.Chunk
	var total uint64
	grew := false
	if before.Size < chunker.MinSize {
		content, total, grew, err = b.readSmall(ctx, f, before.Size, scratch)
	}
	if before.Size >= chunker.MinSize || grew {
		if grew {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err == nil {
			if *ch == nil {
				*ch = chunker.New(nil, b.opts.Polynomial)
			}
			content, total, err = b.readChunked(ctx, f, *ch)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return job.meta, false, context.Cause(ctx)
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			b.fail(fatal.err)
			return job.meta, false, fatal.err
		}
		b.warn(&b.errs, fmt.Sprintf("%s: %v", job.path, err))
		return job.meta, true, nil
	}
	after, err := fsmeta.Fstat(f, job.meta.Name)
	if err == nil && (!fsmeta.Same(&before, &after) || total != before.Size) {
		b.warn(&b.changed, fmt.Sprintf("%s: changed while being read", job.path))
	}
	node := before
	node.Content = content
	node.Size = total
	if job.parent {
		b.filesChanged.Add(1)
	} else {
		b.filesNew.Add(1)
	}
	if p := b.opts.Progress; p != nil {
		p.FilesDone.Add(1)
		if total > before.Size {
			p.BytesDone.Add(total - before.Size)
		}
	}
	return node, false, nil
}

// fatalError marks a repository failure, which ends the backup, as opposed
// to a file that cannot be read, which is only skipped.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// readSmall reads a file below the chunker's minimum size: it is one chunk
// anyway, and sealing it here saves a hand-off.
// It reports grew when the file has grown past the size seen, so that the
// caller reads it again through the chunker.
func (b *backuper) readSmall(ctx context.Context, f *os.File, size uint64, scratch *sealScratch) ([]tree.Chunk, uint64, bool, error) {
	// The worker's own buffer, grown to the largest small file it has
	// read: the shared 1 MiB chunk buffers would cost each of the many
	// small-file workers a MiB.
	if cap(scratch.read) < int(size)+1 {
		scratch.read = make([]byte, int(size)+1)
	}
	buf := scratch.read[:int(size)+1]
	// Read one byte more than expected to notice growth.
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, false, err
	}
	if uint64(n) > size {
		return nil, 0, true, nil
	}
	data := buf[:n]
	if len(data) == 0 {
		return nil, 0, false, nil
	}
	if b.opts.Progress != nil {
		b.opts.Progress.BytesDone.Add(uint64(len(data)))
	}
	c, err := b.seal(ctx, data, scratch)
	if err != nil {
		return nil, 0, false, &fatalError{err}
	}
	return []tree.Chunk{c}, uint64(len(data)), false, nil
}

// readChunked splits a large file and hands each chunk to the sealers,
// keeping the chunk order.
func (b *backuper) readChunked(ctx context.Context, f io.Reader, ch *chunker.Chunker) ([]tree.Chunk, uint64, error) {
	ch.Reset(f, b.opts.Polynomial)
	var (
		slots   []*tree.Chunk
		wg      sync.WaitGroup
		sealErr error
		once    sync.Once
		total   uint64
	)
	for {
		bufp := b.bufs.Get().(*[]byte)
		c, err := ch.Next((*bufp)[:0])
		if errors.Is(err, io.EOF) {
			b.bufs.Put(bufp)
			break
		}
		if err != nil {
			b.bufs.Put(bufp)
			wg.Wait()
			return nil, 0, err
		}
		*bufp = c.Data
		total += uint64(c.Length)
		if b.opts.Progress != nil {
			b.opts.Progress.BytesDone.Add(uint64(c.Length))
		}
		slot := new(tree.Chunk)
		slots = append(slots, slot)
		wg.Add(1)
		select {
		case b.sealJobs <- &sealJob{data: bufp, slot: slot, wg: &wg, err: &sealErr, once: &once}:
		case <-ctx.Done():
			wg.Done()
			wg.Wait()
			return nil, 0, context.Cause(ctx)
		}
	}
	wg.Wait()
	if sealErr != nil {
		return nil, 0, &fatalError{sealErr}
	}
	content := make([]tree.Chunk, len(slots))
	for i, s := range slots {
		content[i] = *s
	}
	return content, total, nil
}

func (b *backuper) sealWorker(ctx context.Context) {
	var scratch sealScratch
	for job := range b.sealJobs {
		c, err := b.seal(ctx, *job.data, &scratch)
		if err != nil {
			job.once.Do(func() { *job.err = err })
		}
		*job.slot = c
		b.bufs.Put(job.data)
		job.wg.Done()
	}
}

// seal keys, compresses, seals, hashes and stores one chunk.
func (b *backuper) seal(ctx context.Context, data []byte, s *sealScratch) (tree.Chunk, error) {
	c, sealed, compressed := repo.SealChunk(b.opts.Keyer, data, s.compressed, s.sealed)
	s.compressed, s.sealed = compressed, sealed
	added, err := b.repo.SaveBlob(ctx, pack.DataBlob, c.ID, sealed, c.Length)
	if err != nil {
		return c, err
	}
	if added {
		b.blobsAdded.Add(1)
		b.bytesAdded.Add(uint64(len(sealed)))
	}
	return c, nil
}
