//go:build linux

package treegen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CompareOptions tunes Compare and Diff. The zero value compares everything
// except atimes.
type CompareOptions struct {
	// ATime also compares access times to the nanosecond. Only meaningful
	// when want has not been read since its times were set (a fresh
	// Generate, not the tree a backup just read).
	ATime bool
	// IgnoreOwner skips uid/gid (a restore by a user who cannot chown).
	IgnoreOwner bool
	// IgnoreRootMeta compares only the type of the two roots, not their
	// mode, owner, times or xattrs: for a restore of a directory's contents
	// into a target that existed before.
	IgnoreRootMeta bool
	// Skip, when it returns true for a path relative to the roots ("." is
	// the root), leaves that path and everything below it out on both sides.
	Skip func(rel string) bool
}

// maxReported caps how many differences Compare reports one by one.
const maxReported = 200

// Compare reports through t.Errorf every way in which the tree at got differs
// from the tree at want, each with its path; want and got may also be single
// files. It fails the test at once only if want cannot be read.
func Compare(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	diffs, err := Diff(want, got, opts)
	if err != nil {
		t.Fatalf("compare %s with %s: %v", want, got, err)
	}
	for i, d := range diffs {
		if i == maxReported {
			t.Errorf("... and %d more differences", len(diffs)-i)
			break
		}
		t.Errorf("%s vs %s: %s", want, got, d)
	}
}

// Diff returns the differences between the trees at want and got, one
// message per difference, each starting with the quoted relative path. The
// error is for failures to read want, not for differences.
func Diff(want, got string, opts CompareOptions) ([]string, error) {
	d := &differ{
		opts:    opts,
		want:    want,
		got:     got,
		wantIno: map[string]inode{},
		gotIno:  map[string]inode{},
	}
	if err := d.walk("."); err != nil {
		return d.diffs, err
	}
	d.compareHardLinks()
	return d.diffs, nil
}

type inode struct{ dev, ino uint64 }

type differ struct {
	opts      CompareOptions
	want, got string
	diffs     []string
	// regular files by relative path, to compare hard-link groups at the end
	wantIno, gotIno map[string]inode
}

func (d *differ) addf(rel, format string, args ...any) {
	d.diffs = append(d.diffs, fmt.Sprintf("%q: ", rel)+fmt.Sprintf(format, args...))
}

func (d *differ) walk(rel string) error {
	if d.opts.Skip != nil && d.opts.Skip(rel) {
		return nil
	}
	wantPath, gotPath := filepath.Join(d.want, rel), filepath.Join(d.got, rel)
	var ws, gs unix.Stat_t
	if err := unix.Lstat(wantPath, &ws); err != nil {
		return fmt.Errorf("lstat %q: %w", wantPath, err)
	}
	if err := unix.Lstat(gotPath, &gs); err != nil {
		d.addf(rel, "missing (%v)", err)
		return nil
	}
	wantType, gotType := ws.Mode&unix.S_IFMT, gs.Mode&unix.S_IFMT
	if wantType != gotType {
		d.addf(rel, "type %s, want %s", typeName(gotType), typeName(wantType))
		return nil
	}
	if rel != "." || !d.opts.IgnoreRootMeta {
		d.compareMeta(rel, wantPath, gotPath, &ws, &gs)
	}
	switch wantType {
	case unix.S_IFREG:
		d.wantIno[rel] = inode{ws.Dev, ws.Ino}
		d.gotIno[rel] = inode{gs.Dev, gs.Ino}
		return d.compareFile(rel, wantPath, gotPath, &ws, &gs)
	case unix.S_IFLNK:
		wt, err := os.Readlink(wantPath)
		if err != nil {
			return err
		}
		gt, err := os.Readlink(gotPath)
		if err != nil {
			d.addf(rel, "readlink: %v", err)
		} else if wt != gt {
			d.addf(rel, "symlink target %q, want %q", gt, wt)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if ws.Rdev != gs.Rdev {
			d.addf(rel, "rdev %d:%d, want %d:%d", unix.Major(gs.Rdev), unix.Minor(gs.Rdev),
				unix.Major(ws.Rdev), unix.Minor(ws.Rdev))
		}
	case unix.S_IFDIR:
		return d.compareDir(rel, wantPath, gotPath)
	}
	return nil
}

func (d *differ) compareMeta(rel, wantPath, gotPath string, ws, gs *unix.Stat_t) {
	if ws.Mode != gs.Mode {
		d.addf(rel, "mode %07o, want %07o", gs.Mode, ws.Mode)
	}
	if !d.opts.IgnoreOwner && (ws.Uid != gs.Uid || ws.Gid != gs.Gid) {
		d.addf(rel, "owner %d:%d, want %d:%d", gs.Uid, gs.Gid, ws.Uid, ws.Gid)
	}
	if w, g := ws.Mtim.Nano(), gs.Mtim.Nano(); w != g {
		d.addf(rel, "mtime %s, want %s", fmtTime(g), fmtTime(w))
	}
	if w, g := ws.Atim.Nano(), gs.Atim.Nano(); d.opts.ATime && w != g {
		d.addf(rel, "atime %s, want %s", fmtTime(g), fmtTime(w))
	}
	wx, err := userXattrs(wantPath)
	if err != nil {
		d.addf(rel, "want side: %v", err)
		return
	}
	gx, err := userXattrs(gotPath)
	if err != nil {
		d.addf(rel, "%v", err)
		return
	}
	for name, wv := range wx {
		gv, ok := gx[name]
		switch {
		case !ok:
			d.addf(rel, "xattr %s missing", name)
		case !bytes.Equal(gv, wv):
			d.addf(rel, "xattr %s = %q, want %q", name, gv, wv)
		}
	}
	for name := range gx {
		if _, ok := wx[name]; !ok {
			d.addf(rel, "unexpected xattr %s", name)
		}
	}
}

func (d *differ) compareFile(rel, wantPath, gotPath string, ws, gs *unix.Stat_t) error {
	if ws.Size != gs.Size {
		d.addf(rel, "size %d, want %d", gs.Size, ws.Size)
		return nil
	}
	// A source with at least 1 MiB of holes must come back with holes: at
	// most half of the hole may be allocated.
	wantAlloc, gotAlloc := ws.Blocks*512, gs.Blocks*512
	if hole := ws.Size - wantAlloc; hole >= 1<<20 && gotAlloc > wantAlloc+hole/2 {
		d.addf(rel, "not sparse: %d bytes allocated of %d, want about %d", gotAlloc, gs.Size, wantAlloc)
	}
	off, err := firstDifference(wantPath, gotPath)
	switch {
	case errors.Is(err, errGotSide):
		d.addf(rel, "%v", err)
	case err != nil:
		return err
	case off >= 0:
		d.addf(rel, "content differs from byte %d on", off)
	}
	return nil
}

var errGotSide = errors.New("read")

// firstDifference streams both files and returns the offset of the first
// differing byte, or -1 when they are equal. Ranges that are holes in both
// files are skipped unread: a 256 MiB hole costs two lseeks, not 256 MiB of
// zeros (which under -race would be slow).
func firstDifference(wantPath, gotPath string) (int64, error) {
	wf, err := openNoATime(wantPath, 0)
	if err != nil {
		return 0, err
	}
	defer wf.Close()
	gf, err := openNoATime(gotPath, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errGotSide, err)
	}
	defer gf.Close()
	const bufSize = 1 << 20
	wb, gb := make([]byte, bufSize), make([]byte, bufSize)
	var off int64
	for {
		// Up to the next data in either file, both hold zeros.
		off = min(nextData(wf, off), nextData(gf, off))
		wn, werr := wf.ReadAt(wb, off)
		gn, gerr := gf.ReadAt(gb, off)
		if werr != nil && werr != io.EOF {
			return 0, werr
		}
		if gerr != nil && gerr != io.EOF {
			return 0, fmt.Errorf("%w: %v", errGotSide, gerr)
		}
		n := min(wn, gn)
		if i := mismatch(wb[:n], gb[:n]); i >= 0 {
			return off + int64(i), nil
		}
		if wn != gn {
			return off + int64(n), nil
		}
		if wn < bufSize {
			return -1, nil
		}
		off += int64(wn)
	}
}

// nextData is the offset of the first data at or after off in f, off itself
// when unknown (no SEEK_DATA support), or the file size when only a hole follows.
func nextData(f *os.File, off int64) int64 {
	next, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		if info, err := f.Stat(); err == nil {
			return max(info.Size(), off)
		}
		return off
	}
	if err != nil {
		return off
	}
	return next
}

func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func (d *differ) compareDir(rel, wantPath, gotPath string) error {
	wantNames, err := readNames(wantPath)
	if err != nil {
		return err
	}
	gotNames, err := readNames(gotPath)
	if err != nil {
		d.addf(rel, "read directory: %v", err)
		return nil
	}
	gotSet := make(map[string]bool, len(gotNames))
	for _, n := range gotNames {
		gotSet[n] = true
	}
	for _, name := range wantNames {
		child := filepath.Join(rel, name)
		if !gotSet[name] {
			if d.opts.Skip == nil || !d.opts.Skip(child) {
				d.addf(child, "missing")
			}
			continue
		}
		delete(gotSet, name)
		if err := d.walk(child); err != nil {
			return err
		}
	}
	extra := make([]string, 0, len(gotSet))
	for name := range gotSet {
		extra = append(extra, name)
	}
	sort.Strings(extra)
	for _, name := range extra {
		child := filepath.Join(rel, name)
		if d.opts.Skip == nil || !d.opts.Skip(child) {
			d.addf(child, "unexpected entry")
		}
	}
	return nil
}

// compareHardLinks checks that the paths sharing an inode in want are
// exactly those sharing one in got (both within the compared trees).
func (d *differ) compareHardLinks() {
	wantGroups, gotGroups := groupByInode(d.wantIno), groupByInode(d.gotIno)
	reported := map[string]bool{}
	rels := make([]string, 0, len(d.wantIno))
	for rel := range d.wantIno {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		w := wantGroups[d.wantIno[rel]]
		g := gotGroups[d.gotIno[rel]]
		if slices.Equal(w, g) {
			continue
		}
		key := strings.Join(g, "\x00") + "\x01" + strings.Join(w, "\x00")
		if reported[key] {
			continue
		}
		reported[key] = true
		d.addf(rel, "hard-linked with %q, want %q", g, w)
	}
}

func groupByInode(byPath map[string]inode) map[inode][]string {
	groups := map[inode][]string{}
	for rel, ino := range byPath {
		groups[ino] = append(groups[ino], rel)
	}
	for _, g := range groups {
		sort.Strings(g)
	}
	return groups
}

// openNoATime opens path read-only without updating its atime when the
// kernel lets us (owner or CAP_FOWNER), and normally otherwise.
func openNoATime(path string, flags int) (*os.File, error) {
	flags |= unix.O_RDONLY | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func readNames(dir string) ([]string, error) {
	f, err := openNoATime(dir, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %q: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

// userXattrs returns the user.* extended attributes of path (not following
// symlinks). Other namespaces belong to the system (security labels, ACLs).
func userXattrs(path string) (map[string][]byte, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	attrs := map[string][]byte{}
	for _, name := range names {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		value, err := getXattr(path, name)
		if err != nil {
			return nil, err
		}
		attrs[name] = value
	}
	return attrs, nil
}

func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs of %q: %w", path, err)
		}
		var names []string
		for _, name := range bytes.Split(buf[:n], []byte{0}) {
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*8)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s of %q: %w", name, path, err)
		}
		return buf[:n], nil
	}
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %o", t)
}

func fmtTime(ns int64) string {
	return fmt.Sprintf("%d (%s)", ns, time.Unix(0, ns).UTC().Format(time.RFC3339Nano))
}
