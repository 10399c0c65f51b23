package fsmeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/costor/costor/repo/tree"
)

// requireRoot skips a root-only test, except in CI where a skip would hide
// an untested feature.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI is set: run the tests as root in CI")
	}
	t.Skip("needs root")
}

// xattrCapableDir returns a fresh directory whose filesystem accepts user.*
// xattrs (tmpfs /tmp may not): t.TempDir, else one beside the test source.
// Locally it skips when none does; in CI that is a failure.
func xattrCapableDir(t *testing.T) string {
	t.Helper()
	if d := t.TempDir(); supportsUserXattrs(d) {
		return d
	}
	d, err := os.MkdirTemp(".", "xattrtest")
	if err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		if abs, err := filepath.Abs(d); err == nil && supportsUserXattrs(abs) {
			return abs
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("neither t.TempDir nor the package directory supports user xattrs")
	}
	t.Skip("no filesystem here supports user xattrs")
	return ""
}

func supportsUserXattrs(dir string) bool {
	probe := filepath.Join(dir, ".probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return false
	}
	defer os.Remove(probe)
	return unix.Lsetxattr(probe, "user.probe", []byte("1"), 0) == nil
}

// Distinct, nanosecond-precise times, one before 1970.
const (
	atimeNS = 1_500_000_000_987_654_321
	mtimeNS = 1_600_000_000_123_456_789
	oldNS   = -86_400_000_000_001
)

// entry sets up one object in the source tree, owned and timed as given.
type entry struct {
	name       string
	root       bool // needs root (devices, foreign owners, trusted.* xattrs)
	xattrs     bool // needs user xattr support
	create     func(path string) error
	mode       uint32 // applied with chmod after chown; 0 keeps the created mode
	uid, gid   int    // -1 keeps ours
	xattrList  []tree.Xattr
	atime      int64
	mtime      int64
	wantType   tree.NodeType
	wantRdev   uint64
	wantTarget string
}

func writeFile(content string) func(string) error {
	return func(p string) error { return os.WriteFile(p, []byte(content), 0o600) }
}

// posixACL encodes a system.posix_acl_access value: owner rw, user 1234 r,
// group r, mask r, other none.
func posixACL() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, 0xffffffff}, {0x02, 4, 1234}, {0x04, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

func manyXattrs() []tree.Xattr {
	var xs []tree.Xattr
	for i := range 40 {
		xs = append(xs, tree.Xattr{Name: fmt.Sprintf("user.a-rather-long-attribute-name-%02d", i), Value: []byte{byte(i)}})
	}
	return xs
}

func entries() []entry {
	return []entry{
		{name: "plain", create: writeFile("hello\n"), mode: 0o640, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File},
		{name: "setuid", root: true, create: writeFile("#!/bin/sh\n"), mode: 0o6755, uid: 1234, gid: 5678, atime: atimeNS, mtime: mtimeNS, wantType: tree.File},
		{name: "sticky-file", create: writeFile("x"), mode: 0o1600, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File},
		{name: "pre-1970", create: writeFile("old"), mode: 0o444, uid: -1, gid: -1, atime: oldNS, mtime: oldNS, wantType: tree.File},
		{name: "empty", create: writeFile(""), mode: 0o600, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File},
		{name: "not-utf8-\xff\xfe", create: writeFile("bytes"), mode: 0o644, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File},
		{name: "new\nline", create: writeFile("nl"), mode: 0o644, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File},
		{name: "dir", create: func(p string) error { return os.Mkdir(p, 0o700) }, mode: 0o2755, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.Dir},
		{name: "sticky-dir", create: func(p string) error { return os.Mkdir(p, 0o700) }, mode: 0o1777, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.Dir},
		{name: "foreign-dir", root: true, create: func(p string) error { return os.Mkdir(p, 0o700) }, mode: 0o750, uid: 1234, gid: 5678, atime: atimeNS, mtime: mtimeNS, wantType: tree.Dir},
		{name: "symlink", create: func(p string) error { return os.Symlink("../some/where\xff", p) }, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.Symlink, wantTarget: "../some/where\xff"},
		{name: "foreign-symlink", root: true, create: func(p string) error { return os.Symlink(strings.Repeat("long/", 300), p) }, uid: 1234, gid: 5678, atime: atimeNS, mtime: mtimeNS, wantType: tree.Symlink, wantTarget: strings.Repeat("long/", 300)},
		{name: "fifo", create: func(p string) error { return unix.Mkfifo(p, 0o600) }, mode: 0o620, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.Fifo},
		{name: "null", root: true, create: func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) }, mode: 0o666, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.CharDev, wantRdev: unix.Mkdev(1, 3)},
		{name: "loop", root: true, create: func(p string) error { return unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 300))) }, mode: 0o660, uid: 0, gid: 6, atime: atimeNS, mtime: mtimeNS, wantType: tree.BlockDev, wantRdev: unix.Mkdev(7, 300)},
		{name: "xattr-user", xattrs: true, create: writeFile("x"), mode: 0o444, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File,
			xattrList: []tree.Xattr{{Name: "user.b", Value: []byte("second")}, {Name: "user.a", Value: []byte("first\x00\xff")}, {Name: "user.empty", Value: []byte{}}}},
		{name: "xattr-big-value", xattrs: true, create: writeFile("x"), mode: 0o644, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File,
			xattrList: []tree.Xattr{{Name: "user.big", Value: []byte(strings.Repeat("v", 3000))}}},
		{name: "xattr-many-names", xattrs: true, create: writeFile("x"), mode: 0o644, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File,
			xattrList: manyXattrs()},
		{name: "xattr-dir", xattrs: true, create: func(p string) error { return os.Mkdir(p, 0o700) }, mode: 0o555, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.Dir,
			xattrList: []tree.Xattr{{Name: "user.d", Value: []byte("dir")}}},
		{name: "xattr-trusted", root: true, xattrs: true, create: writeFile("x"), mode: 0o600, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS, wantType: tree.File,
			xattrList: []tree.Xattr{{Name: "trusted.t", Value: []byte("root only")}, {Name: "user.u", Value: []byte("u")}}},
		{name: "acl", root: true, xattrs: true, create: writeFile("x"), mode: 0o640, uid: 1234, gid: 5678, atime: atimeNS, mtime: mtimeNS, wantType: tree.File,
			xattrList: []tree.Xattr{{Name: "system.posix_acl_access", Value: posixACL()}}},
	}
}

// setUp creates e at path and sets its metadata the way Apply would.
func setUp(path string, e entry) error {
	if err := e.create(path); err != nil {
		return err
	}
	for _, x := range e.xattrList {
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", x.Name, err)
		}
	}
	if e.uid >= 0 || e.gid >= 0 {
		if err := unix.Lchown(path, e.uid, e.gid); err != nil {
			return err
		}
	}
	if e.mode != 0 {
		if err := unix.Chmod(path, e.mode); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.atime), unix.NsecToTimespec(e.mtime)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// recreate builds n at path the way the restore engine does: the engine
// makes files, dirs and symlinks, fsmeta the rest and the metadata.
func recreate(t *testing.T, srcPath, path string, n *tree.Node) []string {
	t.Helper()
	switch n.Type {
	case tree.File:
		src, err := os.Open(srcPath)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		w := NewSparseWriter(dst)
		if _, err := io.Copy(w, src); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case tree.Dir:
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
	case tree.Symlink:
		if err := os.Symlink(n.LinkTarget, path); err != nil {
			t.Fatal(err)
		}
	default:
		if err := CreateSpecial(path, n); err != nil {
			t.Fatal(err)
		}
	}
	warnings, err := Apply(path, n, ApplyOptions{Owner: true})
	if err != nil {
		t.Fatal(err)
	}
	return warnings
}

// comparable zeroes what a recreation cannot preserve.
func comparable(n tree.Node) tree.Node {
	n.Inode, n.CTime, n.Device = 0, 0, 0
	return n
}

func TestRoundTrip(t *testing.T) {
	for _, e := range entries() {
		t.Run(strings.ReplaceAll(e.name, "\n", `\n`), func(t *testing.T) {
			if e.root {
				requireRoot(t)
			}
			var src, dst string
			if e.xattrs {
				src, dst = xattrCapableDir(t), xattrCapableDir(t)
			} else {
				src, dst = t.TempDir(), t.TempDir()
			}
			srcPath, dstPath := filepath.Join(src, e.name), filepath.Join(dst, e.name)
			if err := setUp(srcPath, e); err != nil {
				if e.xattrs && errors.Is(err, unix.ENOTSUP) && os.Getenv("CI") == "" {
					t.Skipf("filesystem lacks support: %v", err)
				}
				t.Fatal(err)
			}
			before, err := Lstat(srcPath, e.name)
			if err != nil {
				t.Fatal(err)
			}
			checkSource(t, before, e)
			checkLstatAt(t, src, e.name, before)

			warnings := recreate(t, srcPath, dstPath, &before)
			if len(warnings) > 0 {
				t.Errorf("Apply warnings: %q", warnings)
			}
			after, err := Lstat(dstPath, e.name)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := comparable(after), comparable(before); !reflect.DeepEqual(got, want) {
				t.Errorf("recreated differs\n got: %+v\nwant: %+v", got, want)
			}
		})
	}
}

// checkSource checks Lstat against what setUp did, so that a round trip
// of two equally wrong stats cannot pass.
func checkSource(t *testing.T, n tree.Node, e entry) {
	t.Helper()
	if n.Name != e.name || n.Type != e.wantType {
		t.Errorf("Name, Type = %q, %v; want %q, %v", n.Name, n.Type, e.name, e.wantType)
	}
	if e.mode != 0 && n.Mode != e.mode {
		t.Errorf("Mode = %#o, want %#o", n.Mode, e.mode)
	}
	if e.wantType == tree.Symlink && n.Mode != 0o777 {
		t.Errorf("symlink Mode = %#o, want 0777", n.Mode)
	}
	wantUID, wantGID := uint32(os.Geteuid()), uint32(os.Getegid())
	if e.uid >= 0 {
		wantUID = uint32(e.uid)
	}
	if e.gid >= 0 {
		wantGID = uint32(e.gid)
	}
	if n.UID != wantUID || n.GID != wantGID {
		t.Errorf("UID:GID = %d:%d, want %d:%d", n.UID, n.GID, wantUID, wantGID)
	}
	if n.UID == 0 && n.User != "root" || n.GID == 0 && n.Group != "root" {
		t.Errorf("User, Group = %q, %q for 0:0, want root", n.User, n.Group)
	}
	if n.ATime != e.atime || n.MTime != e.mtime {
		t.Errorf("ATime, MTime = %d, %d; want %d, %d", n.ATime, n.MTime, e.atime, e.mtime)
	}
	if n.Rdev != e.wantRdev || n.LinkTarget != e.wantTarget {
		t.Errorf("Rdev, LinkTarget = %d, %q; want %d, %q", n.Rdev, n.LinkTarget, e.wantRdev, e.wantTarget)
	}
	if n.Inode == 0 || n.CTime == 0 || n.Device == 0 {
		t.Errorf("Inode, CTime, Device = %d, %d, %d; want non-zero", n.Inode, n.CTime, n.Device)
	}
	wantLinks := uint64(1)
	if e.wantType == tree.Dir {
		wantLinks = 2
	}
	if n.Links != wantLinks {
		t.Errorf("Links = %d, want %d", n.Links, wantLinks)
	}
	if e.wantType != tree.File && n.Size != 0 {
		t.Errorf("Size = %d for a %v, want 0", n.Size, e.wantType)
	}
	for _, x := range e.xattrList {
		found := false
		for _, y := range n.Xattrs {
			if y.Name == x.Name {
				found = true
				if string(y.Value) != string(x.Value) {
					t.Errorf("xattr %s = %q, want %q", x.Name, y.Value, x.Value)
				}
			}
		}
		if !found {
			t.Errorf("xattr %s missing from %v", x.Name, n.Xattrs)
		}
	}
	for i := 1; i < len(n.Xattrs); i++ {
		if n.Xattrs[i-1].Name >= n.Xattrs[i].Name {
			t.Errorf("xattrs not sorted: %q before %q", n.Xattrs[i-1].Name, n.Xattrs[i].Name)
		}
	}
}

func TestRoundTripHardLinks(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "b")); err != nil {
		t.Fatal(err)
	}
	a, err := Lstat(filepath.Join(src, "a"), "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Lstat(filepath.Join(src, "b"), "b")
	if err != nil {
		t.Fatal(err)
	}
	if a.Links != 2 || b.Links != 2 || a.Inode != b.Inode || a.Device != b.Device {
		t.Fatalf("links %d/%d, inodes %d/%d: want 2 links to one inode", a.Links, b.Links, a.Inode, b.Inode)
	}
	recreate(t, filepath.Join(src, "a"), filepath.Join(dst, "a"), &a)
	if err := os.Link(filepath.Join(dst, "a"), filepath.Join(dst, "b")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []tree.Node{a, b} {
		got, err := Lstat(filepath.Join(dst, n.Name), n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(comparable(got), comparable(n)) {
			t.Errorf("%s differs\n got: %+v\nwant: %+v", n.Name, got, n)
		}
	}
}

func TestSocketSkipped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("cannot create a unix socket here: %v", err)
	}
	defer l.Close()
	n, err := Lstat(path, "sock")
	if err != nil {
		t.Fatal(err)
	}
	if n.Type != tree.Socket {
		t.Fatalf("Type = %v, want socket", n.Type)
	}
	target := filepath.Join(t.TempDir(), "sock")
	if err := CreateSpecial(target, &n); err != nil {
		t.Fatalf("CreateSpecial(socket) = %v, want nil", err)
	}
	if w, err := Apply(target, &n, ApplyOptions{Owner: true}); err != nil || len(w) > 0 {
		t.Fatalf("Apply(socket) = %q, %v; want nothing", w, err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket placeholder was created (Lstat err %v)", err)
	}
}

func TestCreateSpecialRejectsOtherTypes(t *testing.T) {
	for _, typ := range []tree.NodeType{tree.File, tree.Dir, tree.Symlink, 0, 99} {
		path := filepath.Join(t.TempDir(), "x")
		if err := CreateSpecial(path, &tree.Node{Type: typ}); !errors.Is(err, errNotSpecial) {
			t.Errorf("CreateSpecial(%v) = %v, want errNotSpecial", typ, err)
		}
	}
}

// Setting an xattr the filesystem refuses (user.* on a symlink) is a
// warning, and the rest of Apply still happens.
func TestApplyXattrWarning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l")
	if err := os.Symlink("t", path); err != nil {
		t.Fatal(err)
	}
	n := tree.Node{Type: tree.Symlink, Mode: 0o777, ATime: atimeNS, MTime: mtimeNS,
		Xattrs: []tree.Xattr{{Name: "user.x", Value: []byte("v")}}}
	warnings, err := Apply(path, &n, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "user.x") {
		t.Errorf("warnings = %q, want one about user.x", warnings)
	}
	got, err := Lstat(path, "l")
	if err != nil {
		t.Fatal(err)
	}
	if got.MTime != mtimeNS || got.ATime != atimeNS {
		t.Errorf("times = %d, %d; want %d, %d", got.ATime, got.MTime, atimeNS, mtimeNS)
	}
}

// checkLstatAt checks that describing name beside its open directory gives
// what Lstat of its path gave.
func checkLstatAt(t *testing.T, dir, name string, want tree.Node) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := LstatAt(d, filepath.Join(dir, name), name)
	if err != nil {
		t.Fatalf("LstatAt: %v", err)
	}
	if want.Type == tree.Symlink {
		// Lstat's readlink moved the link's atime (relatime: it was old).
		got.ATime, want.ATime = 0, 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LstatAt != Lstat\nlstatat: %+v\nlstat:   %+v", got, want)
	}
}

// LstatAt describes what is beside the open directory, not what its path
// names: the directory is renamed away after it is opened and another with
// the same entry names, of other modes and targets, put at its path.
func TestLstatAtUsesTheDirectory(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "d")
	mk := func(dir, target string, mode os.FileMode) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "f"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "l")); err != nil {
			t.Fatal(err)
		}
	}
	mk(path, "opened-target", 0o640)
	d, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	moved := filepath.Join(base, "moved")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	mk(path, "other-target", 0o604)
	for _, name := range []string{"f", "l"} {
		want, err := Lstat(filepath.Join(moved, name), name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LstatAt(d, filepath.Join(path, name), name)
		if err != nil {
			t.Fatalf("LstatAt(%s): %v", name, err)
		}
		got.ATime, want.ATime = 0, 0 // Lstat's readlink moved the link's atime
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LstatAt(%s) described the path, not the open directory\n got: %+v\nwant: %+v", name, got, want)
		}
	}
}

func TestFstatMatchesLstat(t *testing.T) {
	dir := xattrCapableDir(t)
	path := filepath.Join(dir, "f")
	if err := setUp(path, entry{create: writeFile("content"), mode: 0o4711, uid: -1, gid: -1, atime: atimeNS, mtime: mtimeNS,
		xattrList: []tree.Xattr{{Name: "user.z", Value: []byte("1")}, {Name: "user.y", Value: []byte("2")}}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fromFd, err := Fstat(f, "f")
	if err != nil {
		t.Fatal(err)
	}
	fromPath, err := Lstat(path, "f")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFd, fromPath) {
		t.Errorf("Fstat != Lstat\nfstat: %+v\nlstat: %+v", fromFd, fromPath)
	}
	if !Same(&fromFd, &fromPath) {
		t.Error("Same(fstat, lstat) = false")
	}
}

func TestLstatErrors(t *testing.T) {
	_, err := Lstat(filepath.Join(t.TempDir(), "missing"), "missing")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lstat(missing) = %v, want ErrNotExist", err)
	}
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	missing := filepath.Join(dir, "missing")
	if _, err := LstatAt(d, missing, "missing"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("LstatAt(missing) = %v, want ErrNotExist naming %s", err, missing)
	}
	if _, err := DeviceOf(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DeviceOf(missing) = %v, want ErrNotExist", err)
	}
	dev, err := DeviceOf(t.TempDir())
	if err != nil || dev == 0 {
		t.Errorf("DeviceOf(tempdir) = %d, %v", dev, err)
	}
}

// What a normal user cannot restore is reported, not fatal. Run as root the
// kernel allows everything, so this only runs unprivileged.
func TestApplyUnprivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("checks the unprivileged path; run the test binary as a normal user")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n := tree.Node{Type: tree.File, Mode: 0o644, UID: uint32(os.Geteuid()) + 1, GID: uint32(os.Getegid()), MTime: mtimeNS, ATime: atimeNS}
	warnings, err := Apply(path, &n, ApplyOptions{Owner: true})
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "needs root") {
		t.Errorf("Apply(foreign uid) = %q, %v; want one warning", warnings, err)
	}
	dev := tree.Node{Type: tree.CharDev, Mode: 0o666, Rdev: unix.Mkdev(1, 3)}
	err = CreateSpecial(filepath.Join(dir, "null"), &dev)
	if err == nil || !strings.Contains(err.Error(), "need root") {
		t.Errorf("CreateSpecial(chardev) unprivileged = %v, want an error saying it needs root", err)
	}
}
