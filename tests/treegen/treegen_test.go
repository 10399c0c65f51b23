//go:build linux

package treegen

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fresh returns a tree generated with seed 1 that nothing has read since.
func fresh(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := Generate(dir, Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { MakeWritable(dir) })
	return dir
}

// copyTree returns a `cp -a` copy of src.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	t.Cleanup(func() { MakeWritable(dst) })
	return dst
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := fresh(t), fresh(t)
	diffs, err := Diff(a, b, CompareOptions{ATime: true, IgnoreRootMeta: false})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
}

// TestGenerateHasEveryCase guards against a tree that silently lost the
// cases Compare is meant to check.
func TestGenerateHasEveryCase(t *testing.T) {
	root := fresh(t)
	lstat := func(rel string) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
			t.Fatalf("%q: %v", rel, err)
		}
		return &st
	}
	if st := lstat(PathSparse); st.Blocks*512 > 8<<20 || st.Size != 1<<20+256<<20+4096 {
		t.Errorf("sparse file: size %d, %d bytes allocated", st.Size, st.Blocks*512)
	}
	if st := lstat(PathTailHole); st.Blocks*512 > 1<<20 || st.Size != 4096+64<<20 {
		t.Errorf("tail-hole file: size %d, %d bytes allocated", st.Size, st.Blocks*512)
	}
	if st := lstat(PathHardLinkA); st.Nlink != 3 {
		t.Errorf("hard link count %d, want 3", st.Nlink)
	}
	if st := lstat(PathSetuid); st.Mode&unix.S_ISUID == 0 {
		t.Errorf("setuid bit missing: %o", st.Mode)
	}
	if st := lstat(PathStickyDir); st.Mode&unix.S_ISVTX == 0 {
		t.Errorf("sticky bit missing: %o", st.Mode)
	}
	if st := lstat(PathLarge); st.Size != 8<<20 {
		t.Errorf("large file size %d", st.Size)
	}
	if st := lstat("deep/d01"); st.Mtim.Nsec%1000 == 0 {
		t.Errorf("directory mtime has no sub-microsecond part: %v", st.Mtim)
	}
	if st := lstat(PathPre1970); st.Mtim.Sec >= 0 {
		t.Errorf("pre-1970 mtime is %v", st.Mtim)
	}
	for _, rel := range []string{PathNewline, PathNonUTF8, PathDeepLeaf, PathEmptyDir, PathFifo,
		PathSymlinkAbs, PathSymlinkDangling, PathSymlinkRel, PathSymlinkDir, PathDedupB, PathEmpty} {
		lstat(rel)
	}
	if XattrsSupported(t.TempDir()) {
		x, err := userXattrs(filepath.Join(root, PathXattr))
		if err != nil || len(x) != 3 {
			t.Errorf("xattrs %v, %v; want 3", x, err)
		}
	} else {
		t.Log("filesystem without user xattrs: not generated")
	}
	if os.Geteuid() == 0 {
		if st := lstat(PathOwned); st.Uid != OwnerUID || st.Gid != OwnerGID || st.Mode&unix.S_ISUID == 0 {
			t.Errorf("owned file: %d:%d mode %o", st.Uid, st.Gid, st.Mode)
		}
		if st := lstat(PathCharDev); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("chardev: mode %o rdev %d", st.Mode, st.Rdev)
		}
		lstat(PathBlockDev)
	}
}

func TestCompareAcceptsCopy(t *testing.T) {
	src := fresh(t)
	reference := fresh(t)
	dst := copyTree(t, src)
	// cp read src, so only the untouched twin still has the original atimes.
	Compare(t, reference, dst, CompareOptions{ATime: true})
	Compare(t, src, dst, CompareOptions{})
	Compare(t, src+"/"+PathLarge, dst+"/"+PathLarge, CompareOptions{})
}

// keepTimes runs mutate on path and puts its atime and mtime back, so that
// the only difference left is the one mutate made on purpose.
func keepTimes(t *testing.T, path string, mutate func() error) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if err := mutate(); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

func TestCompareReportsEachDifference(t *testing.T) {
	src := fresh(t)
	xattrs := XattrsSupported(t.TempDir())
	root := os.Geteuid() == 0
	tests := []struct {
		name string
		skip bool
		// mutate changes the copy at dir; the returned path and text must
		// appear in one reported difference.
		mutate func(t *testing.T, dir string)
		rel    string
		want   string
		only   bool // this must be the only difference
		twin   bool // compare with a fresh twin of src: copying src moved its atimes
		opts   CompareOptions
	}{
		{name: "mode", rel: "files/text.txt", want: "mode", only: true,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(dir+"/files/text.txt", 0o644)) }},
		{name: "setuid bit", rel: PathSetuid, want: "mode", only: true,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(dir+"/"+PathSetuid, 0o755)) }},
		{name: "sticky bit", rel: PathStickyDir, want: "mode", only: true,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(dir+"/"+PathStickyDir, 0o777)) }},
		{name: "file mtime ns", rel: PathLarge, want: "mtime", only: true,
			mutate: func(t *testing.T, dir string) { shiftTimes(t, dir+"/"+PathLarge, 0, 1) }},
		{name: "dir mtime ns", rel: "deep/d01", want: "mtime", only: true,
			mutate: func(t *testing.T, dir string) { shiftTimes(t, dir+"/deep/d01", 0, 1) }},
		{name: "symlink mtime", rel: PathSymlinkAbs, want: "mtime", only: true,
			mutate: func(t *testing.T, dir string) { shiftTimes(t, dir+"/"+PathSymlinkAbs, 0, -1) }},
		{name: "atime ns", rel: PathSmall, want: "atime", only: true, opts: CompareOptions{ATime: true}, twin: true,
			mutate: func(t *testing.T, dir string) { shiftTimes(t, dir+"/"+PathSmall, 1, 0) }},
		{name: "content byte", rel: PathLarge, want: "content differs from byte 5000000", only: true,
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathLarge
				keepTimes(t, p, func() error { return flipByte(p, 5_000_000) })
			}},
		{name: "content byte after hole", rel: PathSparse, want: "content differs from byte", only: true,
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathSparse
				keepTimes(t, p, func() error { return flipByte(p, 1<<20+256<<20+100) })
			}},
		{name: "size", rel: PathSmall, want: "size 2999, want 3000", only: true,
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathSmall
				keepTimes(t, p, func() error { return os.Truncate(p, 2999) })
			}},
		{name: "hard link broken", rel: PathHardLinkB, want: "hard-linked",
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathHardLinkB
				keepTimes(t, dir+"/hardlinks", func() error {
					must(t, os.Rename(p, p+".old"))
					out, err := exec.Command("cp", "-a", p+".old", p).CombinedOutput()
					if err != nil {
						t.Fatalf("cp: %v %s", err, out)
					}
					return os.Remove(p + ".old")
				})
			}},
		{name: "hard link added", rel: "names/.hidden", want: "hard-linked",
			mutate: func(t *testing.T, dir string) {
				keepTimes(t, dir+"/names", func() error {
					must(t, os.Remove(dir+"/names/.hidden"))
					return os.Link(dir+"/names/space name", dir+"/names/.hidden")
				})
			}},
		{name: "sparseness lost", rel: PathSparse, want: "not sparse", only: true,
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathSparse
				keepTimes(t, dir+"/sparse", func() error {
					out, err := exec.Command("cp", "-a", "--sparse=never", p, p+".full").CombinedOutput()
					if err != nil {
						t.Fatalf("cp: %v %s", err, out)
					}
					return os.Rename(p+".full", p)
				})
			}},
		{name: "symlink target", rel: PathSymlinkRel, want: "symlink target",
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathSymlinkRel
				must(t, os.Remove(p))
				must(t, os.Symlink("elsewhere", p))
			}},
		{name: "missing entry", rel: PathEmpty, want: "missing",
			mutate: func(t *testing.T, dir string) { must(t, os.Remove(dir+"/"+PathEmpty)) }},
		{name: "unexpected entry", rel: "files/new", want: "unexpected entry",
			mutate: func(t *testing.T, dir string) { must(t, os.WriteFile(dir+"/files/new", nil, 0o644)) }},
		{name: "type", rel: PathEmptyDir, want: "type file, want dir",
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(dir+"/"+PathEmptyDir))
				must(t, os.WriteFile(dir+"/"+PathEmptyDir, nil, 0o755))
			}},
		{name: "newline name content", rel: PathNewline, want: "content differs from byte 0", only: true,
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathNewline
				keepTimes(t, p, func() error { return flipByte(p, 0) })
			}},
		{name: "xattr value", skip: !xattrs, rel: PathXattr, want: "xattr user.costor.text", only: true,
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Lsetxattr(dir+"/"+PathXattr, "user.costor.text", []byte("hellO"), 0))
			}},
		{name: "xattr missing", skip: !xattrs, rel: "xattrs/dir", want: "xattr user.costor.dir missing", only: true,
			mutate: func(t *testing.T, dir string) { must(t, unix.Lremovexattr(dir+"/xattrs/dir", "user.costor.dir")) }},
		{name: "xattr extra", skip: !xattrs, rel: PathEmpty, want: "unexpected xattr user.extra", only: true,
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Lsetxattr(dir+"/"+PathEmpty, "user.extra", []byte("1"), 0))
			}},
		{name: "owner", skip: !root, rel: PathOwned, want: "owner 0:5678", only: false,
			mutate: func(t *testing.T, dir string) { must(t, os.Lchown(dir+"/"+PathOwned, 0, -1)) }},
		{name: "rdev", skip: !root, rel: PathCharDev, want: "rdev 1:5, want 1:3",
			mutate: func(t *testing.T, dir string) {
				p := dir + "/" + PathCharDev
				keepTimes(t, dir+"/special", func() error {
					must(t, os.Remove(p))
					must(t, unix.Mknod(p, unix.S_IFCHR|0o620, int(unix.Mkdev(1, 5))))
					return nil
				})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("needs root or user xattrs")
			}
			want, dst := src, ""
			if tt.twin {
				want, dst = fresh(t), copyTree(t, fresh(t))
			} else {
				dst = copyTree(t, src)
			}
			tt.mutate(t, dst)
			diffs, err := Diff(want, dst, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			prefix := fmt.Sprintf("%q: ", tt.rel)
			found := false
			for _, d := range diffs {
				if strings.HasPrefix(d, prefix) && strings.Contains(d, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no difference %q at %q reported; got %q", tt.want, tt.rel, diffs)
			}
			if tt.only && len(diffs) != 1 {
				t.Errorf("want exactly one difference, got %q", diffs)
			}
		})
	}
}

func TestCompareIgnoresATimeUnlessAsked(t *testing.T) {
	src := fresh(t)
	dst := copyTree(t, src)
	shiftTimes(t, dst+"/"+PathSmall, 5, 0)
	if diffs, err := Diff(src, dst, CompareOptions{}); err != nil || len(diffs) != 0 {
		t.Errorf("Diff without ATime: %q, %v", diffs, err)
	}
}

func TestCompareSkipAndRoot(t *testing.T) {
	src := fresh(t)
	dst := copyTree(t, src)
	must(t, os.RemoveAll(dst+"/deep"))
	must(t, os.Chmod(dst, 0o700))
	diffs, err := Diff(src, dst, CompareOptions{
		IgnoreRootMeta: true,
		Skip:           func(rel string) bool { return rel == "deep" || rel == "links" },
	})
	if err != nil || len(diffs) != 0 {
		t.Errorf("Diff with Skip and IgnoreRootMeta: %q, %v", diffs, err)
	}
}

func TestCompareLeavesATimesAlone(t *testing.T) {
	a, b := fresh(t), fresh(t)
	dst := copyTree(t, b) // b's atimes now moved; a's are the original ones
	for range 2 {
		Compare(t, a, dst, CompareOptions{ATime: true})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func shiftTimes(t *testing.T, path string, atimeNs, mtimeNs int64) {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	ts := []unix.Timespec{
		unix.NsecToTimespec(st.Atim.Nano() + atimeNs),
		unix.NsecToTimespec(st.Mtim.Nano() + mtimeNs),
	}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
}

func flipByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0x5a
	_, err = f.WriteAt(b, off)
	return err
}
