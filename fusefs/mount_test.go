//go:build linux

package fusefs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/costor/costor/fusefs"
	"github.com/costor/costor/fusefs/fusefstest"
	"github.com/costor/costor/repo/tree"
	"golang.org/x/sys/unix"
)

// requireFUSE skips unless the test can mount (root and /dev/fuse), except
// under CI, where a skip would hide the whole package.
func requireFUSE(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		reason = fmt.Sprintf("no FUSE: %v", err)
	} else {
		f.Close()
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s, and CI is set: run the tests as root on a machine with /dev/fuse", reason)
	}
	t.Skip(reason)
}

// mounted is a running Mount.
type mounted struct {
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func mount(t *testing.T, src fusefs.Source, opts fusefs.Options) *mounted {
	t.Helper()
	requireFUSE(t)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	m := &mounted{dir: t.TempDir(), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	ready := make(chan struct{})
	opts.OnMount = func() { close(ready) }
	go func() { m.done <- fusefs.Mount(ctx, m.dir, src, opts) }()
	select {
	case <-ready:
	case err := <-m.done:
		t.Fatalf("Mount returned before mounting: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not mounted within 10s")
	}
	if !isMounted(t, m.dir) {
		t.Fatalf("OnMount called, but %s is not in /proc/self/mounts", m.dir)
	}
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop cancels the mount and checks that it ended cleanly.
func (m *mounted) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case err, ok := <-m.done:
		if ok && err != nil {
			t.Errorf("Mount: %v", err)
		}
		if ok {
			close(m.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Mount did not return within 10s of cancel")
	}
	checkUnmounted(t, m.dir)
}

func checkUnmounted(t *testing.T, dir string) {
	t.Helper()
	if isMounted(t, dir) {
		t.Errorf("%s still mounted", dir)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("mount point after unmount: %v", err)
	}
}

func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == dir && strings.HasPrefix(f[2], "fuse") {
			return true
		}
	}
	return false
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.Local)

func dirName(t time.Time) string { return t.Local().Format(fusefs.TimeFormat) }

// sampleFiles is one of everything the mount must show faithfully.
func sampleFiles() []fusefstest.File {
	mt := t0.Add(-48 * time.Hour).UnixNano()
	return []fusefstest.File{
		{Path: "home/alice", Node: tree.Node{Type: tree.Dir, Mode: 0o750, UID: 1000, GID: 1000, MTime: mt + 1, Links: 3,
			Xattrs: []tree.Xattr{{Name: "user.dir", Value: []byte("d")}}}},
		{Path: "home/alice/notes.txt", Data: []byte("hello\n"), Node: tree.Node{Mode: 0o640, UID: 1000, GID: 100, MTime: mt + 2, ATime: mt + 3, CTime: mt + 4, Links: 1,
			Xattrs: []tree.Xattr{{Name: "user.big", Value: bytes.Repeat([]byte("x"), 3000)}, {Name: "user.color", Value: []byte("blue")}}}},
		{Path: "home/alice/big.bin", Data: randomBytes(1, 100_000), Node: tree.Node{Mode: 0o644, MTime: mt, Links: 1}},
		{Path: "home/alice/empty", Node: tree.Node{Mode: 0o600, MTime: mt, Links: 1}},
		{Path: "home/alice/link", Node: tree.Node{Type: tree.Symlink, Mode: 0o777, LinkTarget: "notes.txt", MTime: mt, Links: 1}},
		{Path: "home/alice/dangling", Node: tree.Node{Type: tree.Symlink, Mode: 0o777, LinkTarget: "/does/not/exist", MTime: mt, Links: 1}},
		{Path: "home/alice/hard1", Data: []byte("linked"), Node: tree.Node{Mode: 0o644, MTime: mt, Links: 2, Device: 42, Inode: 777}},
		{Path: "home/alice/sub/hard2", Data: []byte("linked"), Node: tree.Node{Mode: 0o644, MTime: mt, Links: 2, Device: 42, Inode: 777}},
		{Path: "home/alice/setuid", Data: []byte("#!/bin/sh\n"), Node: tree.Node{Mode: 0o4755, MTime: mt, Links: 1}},
		{Path: "home/alice/noperm", Data: []byte("secret"), Node: tree.Node{Mode: 0, MTime: mt, Links: 1}},
		{Path: "home/alice/old", Data: []byte("1969"), Node: tree.Node{Mode: 0o644, MTime: -1_500_000_000, Links: 1}},
		{Path: "home/alice/fifo", Node: tree.Node{Type: tree.Fifo, Mode: 0o600, MTime: mt, Links: 1}},
		{Path: "home/alice/null", Node: tree.Node{Type: tree.CharDev, Mode: 0o666, Rdev: unix.Mkdev(1, 3), MTime: mt, Links: 1}},
		{Path: "home/alice/name with\nnewline", Data: []byte("nl"), Node: tree.Node{Mode: 0o644, MTime: mt, Links: 1}},
		{Path: "home/alice/\xff\xfe", Data: []byte("not utf-8"), Node: tree.Node{Mode: 0o644, MTime: mt, Links: 1}},
	}
}

func newSource(t *testing.T, chunk int) *fusefstest.Source {
	t.Helper()
	src := fusefstest.New()
	src.ChunkSize = chunk
	return src
}

func add(t *testing.T, src *fusefstest.Source, host string, when time.Time, files ...fusefstest.File) fusefs.Snapshot {
	t.Helper()
	s, err := src.Add(host, when, files...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMountShowsSnapshotFaithfully(t *testing.T) {
	src := newSource(t, 4096)
	files := sampleFiles()
	snap := add(t, src, "laptop", t0, files...)
	m := mount(t, src, fusefs.Options{})

	byTime := filepath.Join(m.dir, "hosts", "laptop", dirName(t0))
	byID := filepath.Join(m.dir, "ids", snap.ID.Short())
	latest := filepath.Join(m.dir, "hosts", "laptop", "latest")
	for _, root := range []string{byTime, byID, latest} {
		t.Run(strings.TrimPrefix(root, m.dir), func(t *testing.T) {
			for _, f := range files {
				checkEntry(t, filepath.Join(root, f.Path), f)
			}
			names, err := readNames(filepath.Join(root, "home/alice"))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range files {
				if dir, base := filepath.Split(f.Path); dir == "home/alice/" {
					want = append(want, base)
				}
			}
			want = append(want, "sub")
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Errorf("home/alice lists %q, want %q", names, want)
			}
		})
	}

	var h1, h2 unix.Stat_t
	must(t, unix.Lstat(filepath.Join(byTime, "home/alice/hard1"), &h1))
	must(t, unix.Lstat(filepath.Join(byTime, "home/alice/sub/hard2"), &h2))
	if h1.Ino != h2.Ino {
		t.Errorf("hard links have inodes %d and %d", h1.Ino, h2.Ino)
	}
	var other unix.Stat_t
	must(t, unix.Lstat(filepath.Join(byTime, "home/alice/notes.txt"), &other))
	if other.Ino == h1.Ino {
		t.Error("unrelated files share an inode")
	}
	if target, err := os.Readlink(latest); err != nil || target != dirName(t0) {
		t.Errorf("latest -> %q, %v; want %q", target, err, dirName(t0))
	}
	if names, _ := readNames(m.dir); !slices.Equal(names, []string{"history", "hosts", "ids"}) {
		t.Errorf("root lists %q", names)
	}
	if _, err := os.Lstat(filepath.Join(byTime, "home/nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing name: %v, want ENOENT", err)
	}
	var sfs unix.Statfs_t
	must(t, unix.Statfs(m.dir, &sfs))
	if sfs.Bsize != 4096 || sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("statfs: bsize %d flags %#x", sfs.Bsize, sfs.Flags)
	}
}

func TestMountInodesAreStable(t *testing.T) {
	src := newSource(t, 0)
	add(t, src, "h", t0, sampleFiles()...)
	inodes := func() map[string]uint64 {
		m := mount(t, src, fusefs.Options{})
		defer m.stop(t)
		out := map[string]uint64{}
		root := filepath.Join(m.dir, "hosts", "h", dirName(t0))
		err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			out[strings.TrimPrefix(p, root)] = info.Sys().(*syscall.Stat_t).Ino
			return nil
		})
		must(t, err)
		return out
	}
	a, b := inodes(), inodes()
	if len(a) < 10 {
		t.Fatalf("walk found %d entries", len(a))
	}
	for p, ino := range a {
		if b[p] != ino {
			t.Errorf("%s: inode %d, then %d in a second mount", p, ino, b[p])
		}
	}
}

// checkEntry compares what the mount shows at p with what f recorded.
func checkEntry(t *testing.T, p string, f fusefstest.File) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Errorf("%s: %v", f.Path, err)
		return
	}
	n := f.Node
	if n.Type == 0 {
		n.Type = tree.File
	}
	wantType := map[tree.NodeType]uint32{tree.File: unix.S_IFREG, tree.Dir: unix.S_IFDIR, tree.Symlink: unix.S_IFLNK,
		tree.Fifo: unix.S_IFIFO, tree.CharDev: unix.S_IFCHR}[n.Type]
	if st.Mode != wantType|n.Mode {
		t.Errorf("%s: mode %o, want %o", f.Path, st.Mode, wantType|n.Mode)
	}
	if st.Uid != n.UID || st.Gid != n.GID {
		t.Errorf("%s: owner %d:%d, want %d:%d", f.Path, st.Uid, st.Gid, n.UID, n.GID)
	}
	if got := st.Mtim.Nano(); got != n.MTime {
		t.Errorf("%s: mtime %d, want %d", f.Path, got, n.MTime)
	}
	if n.ATime != 0 && st.Atim.Nano() != n.ATime {
		t.Errorf("%s: atime %d, want %d", f.Path, st.Atim.Nano(), n.ATime)
	}
	if n.CTime != 0 && st.Ctim.Nano() != n.CTime {
		t.Errorf("%s: ctime %d, want %d", f.Path, st.Ctim.Nano(), n.CTime)
	}
	if uint64(st.Nlink) != max(n.Links, 1) {
		t.Errorf("%s: nlink %d, want %d", f.Path, st.Nlink, n.Links)
	}
	checkXattrs(t, p, f.Path, n.Xattrs)
	switch n.Type {
	case tree.File:
		if st.Size != int64(len(f.Data)) || st.Blocks != (int64(len(f.Data))+511)/512 {
			t.Errorf("%s: size %d blocks %d, want %d", f.Path, st.Size, st.Blocks, len(f.Data))
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
		} else if !bytes.Equal(got, f.Data) {
			t.Errorf("%s: content differs (%d bytes, want %d)", f.Path, len(got), len(f.Data))
		}
	case tree.Symlink:
		if target, err := os.Readlink(p); err != nil || target != n.LinkTarget {
			t.Errorf("%s: readlink = %q, %v; want %q", f.Path, target, err, n.LinkTarget)
		}
	case tree.CharDev:
		if st.Rdev != n.Rdev {
			t.Errorf("%s: rdev %#x, want %#x", f.Path, st.Rdev, n.Rdev)
		}
	}
}

func checkXattrs(t *testing.T, p, rel string, want []tree.Xattr) {
	t.Helper()
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		t.Errorf("%s: listxattr: %v", rel, err)
		return
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Errorf("%s: listxattr: %v", rel, err)
		return
	}
	var names []string
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if name != "" {
			names = append(names, name)
		}
	}
	var wantNames []string
	for _, x := range want {
		wantNames = append(wantNames, x.Name)
		size, err := unix.Lgetxattr(p, x.Name, nil)
		if err != nil {
			t.Errorf("%s: getxattr %s size: %v", rel, x.Name, err)
			continue
		}
		v := make([]byte, size)
		if _, err := unix.Lgetxattr(p, x.Name, v[:size/2]); size > 1 && !errors.Is(err, unix.ERANGE) {
			t.Errorf("%s: getxattr %s with a short buffer: %v, want ERANGE", rel, x.Name, err)
		}
		n, err := unix.Lgetxattr(p, x.Name, v)
		if err != nil || !bytes.Equal(v[:n], x.Value) {
			t.Errorf("%s: getxattr %s = %q, %v", rel, x.Name, v[:n], err)
		}
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("%s: xattrs %q, want %q", rel, names, wantNames)
	}
	if _, err := unix.Lgetxattr(p, "user.absent", make([]byte, 10)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("%s: absent xattr: %v, want ENODATA", rel, err)
	}
}

func TestMountFSTest(t *testing.T) {
	src := newSource(t, 777)
	var files []fusefstest.File
	var names []string
	for i := range 20 {
		p := fmt.Sprintf("data/d%d/f%d.txt", i%4, i)
		files = append(files, fusefstest.File{Path: p, Data: randomBytes(uint64(i), i*300), Node: tree.Node{Mode: 0o644, MTime: t0.UnixNano()}})
		names = append(names, strings.TrimPrefix(p, "data/"))
	}
	snap := add(t, src, "h", t0, files...)
	m := mount(t, src, fusefs.Options{})
	if err := fstest.TestFS(os.DirFS(filepath.Join(m.dir, "ids", snap.ID.Short(), "data")), names...); err != nil {
		t.Error(err)
	}
}

func TestMountHistory(t *testing.T) {
	src := newSource(t, 0)
	a, b := []byte("version A"), []byte("version B, longer")
	t1, t2, t3 := t0, t0.Add(time.Hour), t0.Add(2*time.Hour)
	file := func(data []byte, mtime time.Time) fusefstest.File {
		return fusefstest.File{Path: "etc/app/config", Data: data, Node: tree.Node{Mode: 0o600, MTime: mtime.UnixNano(), Links: 1}}
	}
	add(t, src, "h", t1, file(a, t1), fusefstest.File{Path: "etc/only-first", Data: []byte("1")})
	add(t, src, "h", t2, file(b, t2))
	add(t, src, "h", t3, file(a, t3)) // A again: no new version
	add(t, src, "other", t3, fusefstest.File{Path: "etc/app/config", Data: []byte("other host")})
	m := mount(t, src, fusefs.Options{})

	hist := filepath.Join(m.dir, "history", "h")
	if names, err := readNames(filepath.Join(hist, "etc")); err != nil || !slices.Equal(names, []string{"app", "only-first"}) {
		t.Errorf("history/h/etc = %q, %v", names, err)
	}
	versions := filepath.Join(hist, "etc/app/config")
	names, err := readNames(versions)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{dirName(t1) + "_config", dirName(t2) + "_config"}
	if !slices.Equal(names, want) {
		t.Fatalf("versions = %q, want %q", names, want)
	}
	for i, data := range [][]byte{a, b} {
		p := filepath.Join(versions, want[i])
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s = %q, %v; want %q", want[i], got, err, data)
		}
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		if wantM := []time.Time{t1, t2}[i].UnixNano(); st.Mtim.Nano() != wantM || st.Mode != unix.S_IFREG|0o600 || st.Nlink != 1 {
			t.Errorf("%s: mtime %d mode %o nlink %d", want[i], st.Mtim.Nano(), st.Mode, st.Nlink)
		}
	}
	if st, err := os.Stat(versions); err != nil || !st.IsDir() {
		t.Errorf("a file's history is not a directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(hist, "etc/nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing history name: %v", err)
	}
	if names, _ := readNames(filepath.Join(m.dir, "history")); !slices.Equal(names, []string{"h", "other"}) {
		t.Errorf("history lists %q", names)
	}
}

func TestMountSeesNewSnapshots(t *testing.T) {
	src := newSource(t, 0)
	add(t, src, "h", t0, fusefstest.File{Path: "f", Data: []byte("1")})
	m := mount(t, src, fusefs.Options{})
	hostDir := filepath.Join(m.dir, "hosts", "h")
	if names, _ := readNames(hostDir); len(names) != 2 {
		t.Fatalf("hosts/h = %q", names)
	}
	t1 := t0.Add(time.Minute)
	add(t, src, "h", t1, fusefstest.File{Path: "f", Data: []byte("2")})
	add(t, src, "new-host", t1, fusefstest.File{Path: "f", Data: []byte("3")})
	deadline := time.Now().Add(5 * time.Second)
	for {
		names, err := readNames(hostDir)
		must(t, err)
		if slices.Contains(names, dirName(t1)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new snapshot not listed after 5s: %q", names)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if target, _ := os.Readlink(filepath.Join(hostDir, "latest")); target != dirName(t1) {
		t.Errorf("latest -> %q, want %q", target, dirName(t1))
	}
	if got, err := os.ReadFile(filepath.Join(hostDir, "latest", "f")); err != nil || string(got) != "2" {
		t.Errorf("latest/f = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "hosts", "new-host")); err != nil {
		t.Errorf("new host: %v", err)
	}
	if r := src.Refreshes(); r > 20 {
		t.Errorf("%d refreshes in a few seconds: not rate-limited", r)
	}
}

func TestMountHostFilter(t *testing.T) {
	src := newSource(t, 0)
	add(t, src, "a", t0, fusefstest.File{Path: "f"})
	add(t, src, "b", t0, fusefstest.File{Path: "f"})
	m := mount(t, src, fusefs.Options{Host: "b"})
	if names, _ := readNames(filepath.Join(m.dir, "hosts")); !slices.Equal(names, []string{"b"}) {
		t.Errorf("hosts = %q, want [b]", names)
	}
	if names, _ := readNames(filepath.Join(m.dir, "ids")); len(names) != 1 {
		t.Errorf("ids = %q, want one", names)
	}
}

func TestMountIsReadOnly(t *testing.T) {
	src := newSource(t, 0)
	add(t, src, "h", t0, fusefstest.File{Path: "d/f", Data: []byte("x"), Node: tree.Node{Mode: 0o666}},
		fusefstest.File{Path: "d/empty", Node: tree.Node{Type: tree.Dir, Mode: 0o777}})
	m := mount(t, src, fusefs.Options{})
	d := filepath.Join(m.dir, "hosts", "h", dirName(t0), "d")
	f := filepath.Join(d, "f")
	ops := map[string]func() error{
		"open for writing": func() error { return openClose(f, os.O_WRONLY) },
		"open read-write":  func() error { return openClose(f, os.O_RDWR) },
		"truncate on open": func() error { return openClose(f, os.O_RDONLY|os.O_TRUNC) },
		"create":           func() error { return openClose(filepath.Join(d, "new"), os.O_CREATE|os.O_WRONLY) },
		"create in root":   func() error { return openClose(filepath.Join(m.dir, "new"), os.O_CREATE|os.O_WRONLY) },
		"mkdir":            func() error { return os.Mkdir(filepath.Join(d, "newdir"), 0o755) },
		"mkdir in hosts":   func() error { return os.Mkdir(filepath.Join(m.dir, "hosts", "x"), 0o755) },
		"unlink":           func() error { return unix.Unlink(f) },
		"rmdir":            func() error { return unix.Rmdir(filepath.Join(d, "empty")) },
		"rename":           func() error { return os.Rename(f, filepath.Join(d, "g")) },
		"symlink":          func() error { return os.Symlink("f", filepath.Join(d, "s")) },
		"link":             func() error { return os.Link(f, filepath.Join(d, "l")) },
		"mknod":            func() error { return unix.Mkfifo(filepath.Join(d, "p"), 0o644) },
		"chmod":            func() error { return os.Chmod(f, 0o600) },
		"chown":            func() error { return os.Lchown(f, 1, 1) },
		"utimes":           func() error { return os.Chtimes(f, time.Now(), time.Now()) },
		"truncate":         func() error { return os.Truncate(f, 0) },
		"setxattr":         func() error { return unix.Lsetxattr(f, "user.x", []byte("1"), 0) },
		"removexattr":      func() error { return unix.Lremovexattr(f, "user.x") },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			if err := op(); !errors.Is(err, unix.EROFS) {
				t.Errorf("%s: %v, want EROFS", name, err)
			}
		})
	}
	if got, err := os.ReadFile(f); err != nil || string(got) != "x" {
		t.Errorf("file after the attempts: %q, %v", got, err)
	}
}

func openClose(p string, flag int) error {
	f, err := os.OpenFile(p, flag, 0o644)
	if err == nil {
		f.Close()
	}
	return err
}

func TestMountConcurrentReaders(t *testing.T) {
	src := newSource(t, 64<<10)
	data := randomBytes(7, 4<<20+12345)
	add(t, src, "h", t0, fusefstest.File{Path: "big", Data: data, Node: tree.Node{Mode: 0o644}})
	// A cache of a few chunks: readers evict each other's chunks.
	m := mount(t, src, fusefs.Options{CacheBytes: 256 << 10})
	p := filepath.Join(m.dir, "hosts", "h", dirName(t0), "big")
	want := sha256.Sum256(data)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			f, err := os.Open(p)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			if i%2 == 0 {
				h := sha256.New()
				if _, err := io.Copy(h, f); err != nil {
					t.Error(err)
				} else if [32]byte(h.Sum(nil)) != want {
					t.Errorf("reader %d: content differs", i)
				}
				return
			}
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			buf := make([]byte, 200<<10)
			for range 50 {
				off := rng.Int64N(int64(len(data)))
				n, err := f.ReadAt(buf[:rng.IntN(len(buf))], off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Errorf("reader %d: ReadAt(%d) differs", i, off)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestMountReadsAheadAcrossFiles checks that reading a small file starts
// loading the files after it in its directory, that a stat alone loads
// nothing, that no chunk is loaded twice, and that the look-ahead stops at
// a large file and is not started by one.
func TestMountReadsAheadAcrossFiles(t *testing.T) {
	src := newSource(t, 4<<20)
	var files []fusefstest.File
	for i := range 20 {
		files = append(files, fusefstest.File{Path: fmt.Sprintf("d/f%02d", i), Data: randomBytes(uint64(100+i), 1000+i), Node: tree.Node{Mode: 0o644}})
	}
	files = append(files,
		fusefstest.File{Path: "e/a", Data: randomBytes(200, 500), Node: tree.Node{Mode: 0o644}},
		fusefstest.File{Path: "e/b", Data: randomBytes(201, 2<<20), Node: tree.Node{Mode: 0o644}},
		fusefstest.File{Path: "e/c", Data: randomBytes(202, 500), Node: tree.Node{Mode: 0o644}})
	add(t, src, "h", t0, files...)
	m := mount(t, src, fusefs.Options{})
	root := filepath.Join(m.dir, "hosts", "h", dirName(t0))
	entries, err := os.ReadDir(filepath.Join(root, "d"))
	must(t, err)
	for _, e := range entries {
		if _, err := e.Info(); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.ChunkReads(); n != 0 {
		t.Fatalf("listing and stat loaded %d chunks, want none", n)
	}
	// settled is the count of chunk loads once it has not moved for a
	// while (loads run in the background).
	settled := func() int64 {
		t.Helper()
		n, still := src.ChunkReads(), 0
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			time.Sleep(30 * time.Millisecond)
			if m := src.ChunkReads(); m != n {
				n, still = m, 0
			} else if still++; still == 3 {
				return n
			}
		}
		t.Fatal("chunk loads did not settle within 10s")
		return 0
	}
	read := func(i int) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(root, files[i].Path))
		must(t, err)
		if !bytes.Equal(got, files[i].Data) {
			t.Fatalf("%s: content differs", files[i].Path)
		}
	}
	read(0)
	after0 := settled()
	if after0 < 2 || after0 > 9 {
		t.Fatalf("after reading d/f00: %d chunks loaded, want its own and 1 to 8 of the files after it", after0)
	}
	read(1)
	if n := settled(); n < after0 || n > 10 {
		t.Fatalf("reading d/f01 after d/f00: %d chunks loaded in all, was %d", n, after0)
	}
	// d/f01 was loaded ahead, so its own read added nothing beyond new
	// look-ahead; reading the rest in order loads each chunk once.
	for i := 2; i < 20; i++ {
		read(i)
	}
	if n := settled(); n != 20 {
		t.Errorf("reading 20 one-chunk files in order loaded %d chunks, want 20", n)
	}
	read(20) // e/a: e/b's first chunk is over the look-ahead budget
	if n := settled(); n != 21 {
		t.Errorf("after reading e/a: %d chunks loaded in all, want 21 (no look-ahead past a large file)", n)
	}
	read(21) // e/b is large: it leaves its neighbours alone
	if n := settled(); n != 22 {
		t.Errorf("after reading e/b: %d chunks loaded in all, want 22 (a large file does not load the files after it)", n)
	}
}

func TestMountReadErrorIsEIO(t *testing.T) {
	src := newSource(t, 0)
	snap := add(t, src, "h", t0, fusefstest.File{Path: "f", Data: []byte("content")})
	m := mount(t, src, fusefs.Options{})
	p := filepath.Join(m.dir, "hosts", "h", dirName(t0), "f")
	tr, err := src.LoadTree(context.Background(), &snap, snap.Tree)
	must(t, err)
	src.FailChunk(tr.Nodes[0].Content[0].ID, errors.New("pack missing"))
	if _, err := os.ReadFile(p); !errors.Is(err, unix.EIO) {
		t.Errorf("read of a failing chunk: %v, want EIO", err)
	}
	src.FailChunk(tr.Nodes[0].Content[0].ID, nil)
	if got, err := os.ReadFile(p); err != nil || string(got) != "content" {
		t.Errorf("after healing: %q, %v (errors must not be cached)", got, err)
	}
}

func TestMountLargeDirectory(t *testing.T) {
	src := newSource(t, 0)
	const n = 100_000
	files := make([]fusefstest.File, n)
	for i := range files {
		files[i] = fusefstest.File{Path: fmt.Sprintf("big/file-%06d", i), Node: tree.Node{Mode: 0o644}}
	}
	add(t, src, "h", t0, files...)
	m := mount(t, src, fusefs.Options{})
	dir := filepath.Join(m.dir, "hosts", "h", dirName(t0), "big")
	start := time.Now()
	names, err := readNames(dir)
	elapsed := time.Since(start)
	must(t, err)
	if len(names) != n || names[0] != "file-000000" || names[n-1] != fmt.Sprintf("file-%06d", n-1) {
		t.Fatalf("listed %d names", len(names))
	}
	t.Logf("listed %d entries in %v", n, elapsed)
}

// TestMountUnmountFromOutside checks that umount ends Mount cleanly.
func TestMountUnmountFromOutside(t *testing.T) {
	src := newSource(t, 0)
	add(t, src, "h", t0, fusefstest.File{Path: "f"})
	m := mount(t, src, fusefs.Options{})
	must(t, unix.Unmount(m.dir, 0))
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("Mount: %v", err)
		}
		close(m.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Mount still running 5s after umount")
	}
	checkUnmounted(t, m.dir)
}

// TestMountStopWhileBusy cancels while a file is open, which makes a plain
// unmount fail with EBUSY: the mount must still go away.
func TestMountStopWhileBusy(t *testing.T) {
	src := newSource(t, 0)
	add(t, src, "h", t0, fusefstest.File{Path: "f", Data: []byte("x")})
	m := mount(t, src, fusefs.Options{})
	f, err := os.Open(filepath.Join(m.dir, "hosts", "h", dirName(t0), "f"))
	must(t, err)
	defer f.Close()
	start := time.Now()
	m.stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v", d)
	}
}

func TestMountRejectsBadMountpoint(t *testing.T) {
	src := newSource(t, 0)
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	for _, p := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if err := fusefs.Mount(context.Background(), p, src, fusefs.Options{}); err == nil {
			t.Errorf("Mount(%s) succeeded", p)
		}
	}
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
