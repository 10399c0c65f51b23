package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/costor/costor/agent/fsmeta"
	"github.com/costor/costor/internal/cpus"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// RestoreOptions describe one restore.
type RestoreOptions struct {
	Target string
	// Includes, if any, restore only paths (snapshot paths like
	// /home/a/x.txt) matching one of these globs, and everything below a
	// matching directory. Without '/' a pattern matches a base name.
	Includes []string
	// Owner restores uid/gid (needs root for other owners).
	Owner bool
	// Verify re-reads every restored file and compares it with what was
	// decrypted.
	Verify   bool
	Workers  int
	Warn     func(msg string)
	Progress *Progress
}

// RestoreResult counts what a restore wrote.
type RestoreResult struct {
	Files, Dirs, Other, Bytes, Verified uint64
	Warnings                            []string
}

// ErrUnsafePath is returned (wrapped) when restoring would write through a
// symlink or outside the target.
var ErrUnsafePath = errors.New("refusing to write outside the target")

type restorer struct {
	repo Repository
	hk   *repo.HostKey
	opts RestoreOptions
	root *os.Root

	jobs    chan restoreJob
	mu      sync.Mutex
	res     RestoreResult
	links   map[[2]uint64]string // (device, inode) → first restored path
	created map[string]bool      // directories made or checked
	// pendingMeta holds directories seen but not yet created because no
	// include selected anything in them yet.
	pendingMeta map[string]tree.Node
	dirs        []pendingDir // metadata applied last, deepest first
	firstErr    error
}

type pendingDir struct {
	rel  string
	node tree.Node
}

// restoreJob is one regular file for a worker: it creates the file in its
// directory (unless the traversal already has, for the first of a set of
// hard links), writes the content and applies the metadata.
type restoreJob struct {
	rel  string
	node tree.Node
	dir  *openDir // held for the job; released when it is done
	file *os.File // nil: the worker creates it
}

// Restore writes what sits at subpath of the snapshot tree rootTree into
// opts.Target: a directory's contents go into Target, a file to
// Target/<base name>. subpath "" or "/" restores the whole snapshot, each
// backed-up path under its absolute location.
//
// An entry that cannot be restored (a file that cannot be created or
// written, a link, a symlink) does not stop the others: Restore gets back
// everything it can and then returns the first such error, each later one
// going to the warnings. What stops a restore at once is a directory it
// cannot make safely, a tree it cannot read, or ctx.
func Restore(ctx context.Context, r Repository, hk *repo.HostKey, rootTree id.ID, subpath string, opts RestoreOptions) (*RestoreResult, error) {
	if opts.Workers <= 0 {
		opts.Workers = 2 * cpus.N
	}
	node, err := Resolve(ctx, r, hk, rootTree, subpath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return nil, fmt.Errorf("create target %s: %w", opts.Target, err)
	}
	root, err := os.OpenRoot(opts.Target)
	if err != nil {
		return nil, fmt.Errorf("open target %s: %w", opts.Target, err)
	}
	defer root.Close()
	rs := &restorer{
		repo: r, hk: hk, opts: opts, root: root,
		jobs:        make(chan restoreJob, opts.Workers),
		links:       map[[2]uint64]string{},
		created:     map[string]bool{".": true},
		pendingMeta: map[string]tree.Node{},
	}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(func() { rs.worker(ctx) })
	}
	snapDir := path.Clean("/" + subpath)
	if node.Type == tree.Dir {
		err = rs.contents(ctx, node.Subtree, ".", snapDir, rs.matches(snapDir, node.Name))
	} else {
		d := &dirHandle{rel: "."}
		err = rs.node(ctx, d, node, node.Name, snapDir, rs.matches(snapDir, node.Name))
	}
	close(rs.jobs)
	wg.Wait()
	if err != nil {
		return &rs.res, err
	}
	// Directories last, deepest first: writing a child moves its parent's
	// mtime, so parents' times are set only when nothing more is written.
	// Also when an entry failed: what was restored gets its directories'
	// modes and times.
	sort.SliceStable(rs.dirs, func(i, j int) bool {
		return strings.Count(rs.dirs[i].rel, "/") > strings.Count(rs.dirs[j].rel, "/")
	})
	for _, d := range rs.dirs {
		rs.apply(d.rel, &d.node)
	}
	return &rs.res, rs.firstErr
}

// Resolve finds the node at p in a snapshot tree. "/" (or "") is the root,
// returned as a directory node.
func Resolve(ctx context.Context, r Repository, hk *repo.HostKey, rootTree id.ID, p string) (*tree.Node, error) {
	node := &tree.Node{Name: "/", Type: tree.Dir, Subtree: rootTree, Mode: 0o755}
	for _, name := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if name == "" {
			continue
		}
		if node.Type != tree.Dir {
			return nil, fmt.Errorf("path %s: %s is not a directory", p, node.Name)
		}
		t, err := r.LoadTree(ctx, hk, node.Subtree)
		if err != nil {
			return nil, err
		}
		n, ok := t.Find(name)
		if !ok {
			return nil, fmt.Errorf("path %s: %w (no %q in the snapshot)", p, fs.ErrNotExist, name)
		}
		node = n
	}
	return node, nil
}

// matches reports whether snapshot path p is selected by the includes.
func (rs *restorer) matches(p, name string) bool {
	if len(rs.opts.Includes) == 0 {
		return true
	}
	for _, pat := range rs.opts.Includes {
		target := name
		if strings.Contains(pat, "/") {
			target = p
		}
		if ok, _ := filepath.Match(pat, target); ok {
			return true
		}
	}
	return false
}

func (rs *restorer) contents(ctx context.Context, treeID id.ID, rel, snapDir string, all bool) error {
	t, err := rs.repo.LoadTree(ctx, rs.hk, treeID)
	if err != nil {
		return err
	}
	d := &dirHandle{rel: rel}
	defer rs.closeDir(d)
	for i := range t.Nodes {
		n := &t.Nodes[i]
		childSnap := path.Join(snapDir, n.Name)
		if err := rs.node(ctx, d, n, path.Join(rel, n.Name), childSnap, all || rs.matches(childSnap, n.Name)); err != nil {
			return err
		}
	}
	return nil
}

// dirHandle is the directory whose entries the traversal is restoring,
// opened (as an os.Root of its own) at its first entry and held until the
// traversal and every file job in it are done: each entry is then created
// with one openat in it, where going through the target's root opens and
// closes every directory on the way down again. The traversal holds one
// per level and each queued or running job one more, so the directories
// held open stay bounded by the depth of the tree plus twice the number of
// workers.
type dirHandle struct {
	rel  string
	open *openDir // nil until an entry needs it
}

// openDir is an open directory shared by the traversal and the jobs
// creating files in it; the last of them to let go closes it.
type openDir struct {
	root *os.Root
	refs atomic.Int32
	keep bool // the target's own root, closed by Restore
}

func (o *openDir) retain() *openDir {
	o.refs.Add(1)
	return o
}

func (o *openDir) release() {
	if o.refs.Add(-1) == 0 && !o.keep {
		o.root.Close()
	}
}

// dirOf returns d's directory, opening it the first time (after
// ensureParent has made sure it exists and is a real directory).
func (rs *restorer) dirOf(d *dirHandle) (*openDir, error) {
	if d.open != nil {
		return d.open, nil
	}
	o := &openDir{root: rs.root, keep: true}
	if d.rel != "." {
		r, err := rs.root.OpenRoot(d.rel)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", filepath.Join(rs.opts.Target, d.rel), err)
		}
		o = &openDir{root: r}
	}
	o.refs.Store(1) // the traversal's
	d.open = o
	return o, nil
}

func (rs *restorer) closeDir(d *dirHandle) {
	if d.open != nil {
		d.open.release()
	}
	d.open = nil
}

func (rs *restorer) node(ctx context.Context, d *dirHandle, n *tree.Node, rel, snapPath string, selected bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tree.ValidateName(n.Name); err != nil {
		return fmt.Errorf("%s: %w", snapPath, err)
	}
	if n.Type == tree.Dir {
		if selected {
			if err := rs.ensureDir(rel, n); err != nil {
				return err
			}
		} else {
			rs.mu.Lock()
			rs.pendingMeta[rel] = *n
			rs.mu.Unlock()
		}
		return rs.contents(ctx, n.Subtree, rel, snapPath, selected)
	}
	if !selected {
		return nil
	}
	if err := rs.ensureParent(rel); err != nil {
		return err
	}
	od, err := rs.dirOf(d)
	if err != nil {
		return err
	}
	if err := rs.entry(ctx, od, n, rel); err != nil {
		if ctx.Err() != nil {
			return err
		}
		rs.failed(ctx, err)
	}
	return nil
}

// entry restores a non-directory entry in od, or queues it for a worker.
// Entries are created exclusively; only when something is in the way (an
// earlier restore) is it looked at and removed, so a fresh target costs no
// stat per entry.
func (rs *restorer) entry(ctx context.Context, od *openDir, n *tree.Node, rel string) error {
	dir := od.root
	abs := filepath.Join(rs.opts.Target, rel)
	switch n.Type {
	case tree.File:
		if n.Links > 1 {
			key := [2]uint64{n.Device, n.Inode}
			if first, ok := rs.links[key]; ok {
				err := rs.root.Link(first, rel)
				if errors.Is(err, fs.ErrExist) {
					if err = rs.clear(dir, n.Name, rel); err == nil {
						err = rs.root.Link(first, rel)
					}
				}
				if err != nil {
					return fmt.Errorf("restore hard link %s: %w", abs, err)
				}
				return nil
			}
		}
		// The first of a set of hard links is created here, so that
		// the links made later by this traversal find it; every other
		// file is created by the worker that writes it, which takes the
		// creation (the costliest step for a small file) off this one
		// goroutine.
		var f *os.File
		if n.Links > 1 {
			var err error
			if f, err = rs.create(dir, n.Name, rel); err != nil {
				return err
			}
			rs.links[[2]uint64{n.Device, n.Inode}] = rel
		}
		job := restoreJob{rel: rel, node: *n, dir: od.retain(), file: f}
		select {
		case rs.jobs <- job:
		case <-ctx.Done():
			job.dir.release()
			if f != nil {
				f.Close()
			}
			return ctx.Err()
		}
		return nil
	case tree.Symlink:
		err := dir.Symlink(n.LinkTarget, n.Name)
		if errors.Is(err, fs.ErrExist) {
			if err = rs.clear(dir, n.Name, rel); err == nil {
				err = dir.Symlink(n.LinkTarget, n.Name)
			}
		}
		if err != nil {
			return fmt.Errorf("restore symlink %s: %w", abs, err)
		}
	default:
		if err := rs.clear(dir, n.Name, rel); err != nil {
			return err
		}
		if err := fsmeta.CreateSpecial(abs, n); err != nil {
			rs.warn(fmt.Sprintf("%s: %v", abs, err))
			return nil
		}
	}
	rs.mu.Lock()
	rs.res.Other++
	rs.mu.Unlock()
	rs.apply(rel, n)
	return nil
}

// create makes the regular file name in dir, exclusively; only when
// something is in the way (an earlier restore) is it looked at and removed,
// so a fresh target costs no stat per entry.
func (rs *restorer) create(dir *os.Root, name, rel string) (*os.File, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := dir.OpenFile(name, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if err = rs.clear(dir, name, rel); err != nil {
			return nil, err
		}
		f, err = dir.OpenFile(name, flags, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", filepath.Join(rs.opts.Target, rel), err)
	}
	return f, nil
}

// clear removes whatever sits at rel (a file or a symlink from an earlier
// restore), never following it. A directory in the way is an error.
func (rs *restorer) clear(dir *os.Root, name, rel string) error {
	fi, err := dir.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", rel, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("restore %s: a directory is in the way (move it aside, or restore into an empty --target)", filepath.Join(rs.opts.Target, rel))
	}
	return dir.Remove(name)
}

// ensureDir makes sure rel is a real directory (not a symlink) and records
// its metadata for the end.
func (rs *restorer) ensureDir(rel string, n *tree.Node) error {
	if rs.created[rel] {
		return nil
	}
	if err := rs.ensureParent(rel); err != nil {
		return err
	}
	err := rs.root.Mkdir(rel, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := rs.root.Lstat(rel)
		if lerr != nil {
			return fmt.Errorf("restore %s: %w", rel, lerr)
		}
		if !fi.IsDir() {
			return fmt.Errorf("restore %s: %w: it exists and is not a directory (a symlink there could redirect the restore)", filepath.Join(rs.opts.Target, rel), ErrUnsafePath)
		}
	} else if err != nil {
		return fmt.Errorf("restore %s: %w", filepath.Join(rs.opts.Target, rel), err)
	}
	rs.created[rel] = true
	rs.res.Dirs++
	rs.dirs = append(rs.dirs, pendingDir{rel: rel, node: *n})
	return nil
}

// ensureParent creates the directories above rel that includes skipped,
// with the metadata the snapshot has for them.
func (rs *restorer) ensureParent(rel string) error {
	parent := path.Dir(rel)
	if rs.created[parent] {
		return nil
	}
	meta, ok := rs.pendingMeta[parent]
	if !ok {
		meta = tree.Node{Name: path.Base(parent), Type: tree.Dir, Mode: 0o755}
	}
	return rs.ensureDir(parent, &meta)
}

// worker restores files until the traversal is done.
func (rs *restorer) worker(ctx context.Context) {
	for job := range rs.jobs {
		err := rs.writeFile(ctx, job)
		job.dir.release()
		if err != nil {
			rs.failed(ctx, err)
		}
	}
}

// failed records an entry that could not be restored: the first failure is
// what Restore returns, every later one a warning, so that none goes
// unreported while the rest of the restore goes on. Once ctx is done the
// failures are only its echo and are not repeated.
func (rs *restorer) failed(ctx context.Context, err error) {
	rs.mu.Lock()
	first := rs.firstErr == nil
	if first {
		rs.firstErr = err
	}
	rs.mu.Unlock()
	if !first && ctx.Err() == nil {
		rs.warn(err.Error())
	}
}

// writeFile creates a file (unless the traversal did), writes its content
// and then its metadata, and closes it.
func (rs *restorer) writeFile(ctx context.Context, job restoreJob) error {
	abs := filepath.Join(rs.opts.Target, job.rel)
	f := job.file
	if f == nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if f, err = rs.create(job.dir.root, job.node.Name, job.rel); err != nil {
			return err
		}
	}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	var sum hash.Hash
	if rs.opts.Verify {
		sum = sha256.New()
	}
	w := fsmeta.NewSparseWriter(f)
	sink := &restoreSink{w: w, sum: sum, progress: rs.opts.Progress}
	if err := WriteContent(ctx, rs.repo, job.node.Content, sink); err != nil {
		if sink.writeErr != nil {
			return fmt.Errorf("write %s: %w", abs, err)
		}
		return fmt.Errorf("restore %s: %w", abs, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", abs, err)
	}
	if sum != nil {
		// Before the metadata: a mode like 0400 would keep us out.
		if err := rs.verify(job.rel, sum.Sum(nil)); err != nil {
			return err
		}
	}
	warnings, aerr := fsmeta.ApplyFile(f, abs, &job.node, fsmeta.ApplyOptions{Owner: rs.opts.Owner})
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", abs, err)
	}
	for _, w := range warnings {
		rs.warn(fmt.Sprintf("%s: %s", abs, w))
	}
	if aerr != nil {
		rs.warn(fmt.Sprintf("%s: %v", abs, aerr))
	}
	rs.mu.Lock()
	rs.res.Files++
	rs.res.Bytes += job.node.Size
	rs.mu.Unlock()
	if p := rs.opts.Progress; p != nil {
		p.FilesDone.Add(1)
	}
	return nil
}

// restoreSink writes restored content to its file, the verify hash and the
// progress counters, and remembers whether a failure was the disk's.
type restoreSink struct {
	w        io.Writer
	sum      hash.Hash
	progress *Progress
	writeErr error
}

func (s *restoreSink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.writeErr = err
		return n, err
	}
	if s.sum != nil {
		s.sum.Write(p)
	}
	if s.progress != nil {
		s.progress.BytesDone.Add(uint64(n))
	}
	return n, nil
}

func (rs *restorer) verify(rel string, want []byte) error {
	f, err := rs.root.Open(rel)
	if err != nil {
		return fmt.Errorf("verify %s: %w", rel, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify %s: %w", rel, err)
	}
	if string(h.Sum(nil)) != string(want) {
		return fmt.Errorf("verify %s: the file on disk differs from the backup", filepath.Join(rs.opts.Target, rel))
	}
	rs.mu.Lock()
	rs.res.Verified++
	rs.mu.Unlock()
	return nil
}

func (rs *restorer) apply(rel string, n *tree.Node) {
	abs := filepath.Join(rs.opts.Target, rel)
	warnings, err := fsmeta.Apply(abs, n, fsmeta.ApplyOptions{Owner: rs.opts.Owner})
	for _, w := range warnings {
		rs.warn(fmt.Sprintf("%s: %s", abs, w))
	}
	if err != nil {
		rs.warn(fmt.Sprintf("%s: %v", abs, err))
	}
}

func (rs *restorer) warn(msg string) {
	rs.mu.Lock()
	rs.res.Warnings = append(rs.res.Warnings, msg)
	rs.mu.Unlock()
	if rs.opts.Warn != nil {
		rs.opts.Warn(msg)
	}
}
