//go:build linux

package tests

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costor/costor/tests/treegen"
	"golang.org/x/sys/unix"
)

// TestRoundTrip backs up a tree holding every kind of object and metadata
// and restores it in each supported way; what comes back must be identical
// to a fresh twin of the source (same seed), atimes included.
func TestRoundTrip(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	generate(t, src, 42)
	want := s.path("want") // untouched twin: src's atimes move when it is read
	generate(t, want, 42)

	id := s.backup(src)
	snaps := s.snapshots()
	if len(snaps) != 1 {
		t.Fatalf("want 1 snapshot, got %d", len(snaps))
	}
	if id != snaps[0].ID && id != snaps[0].ShortID {
		t.Errorf("backup printed %q last; snapshots lists id %q", id, snaps[0].ID)
	}
	snap := snaps[0].ID

	t.Run("whole snapshot", func(t *testing.T) {
		target := s.path("restore-all")
		s.mustCostor("restore", "--target", target, "latest")
		// DIR/abs/path: the source comes back under its absolute path.
		treegen.Compare(t, want, filepath.Join(target, src), treegen.CompareOptions{ATime: true})
	})
	t.Run("subtree", func(t *testing.T) {
		target := s.path("restore-sub")
		s.mustCostor("restore", "--target", target, snap+":"+src+"/deep")
		treegen.Compare(t, filepath.Join(want, "deep"), target,
			treegen.CompareOptions{ATime: true, IgnoreRootMeta: true})
	})
	t.Run("subtree with special names", func(t *testing.T) {
		target := s.path("restore-names")
		s.mustCostor("restore", "--target", target, snap+":"+src+"/names")
		treegen.Compare(t, filepath.Join(want, "names"), target,
			treegen.CompareOptions{ATime: true, IgnoreRootMeta: true})
	})
	for _, rel := range []string{treegen.PathLarge, treegen.PathSparse, treegen.PathNewline, treegen.PathNonUTF8, treegen.PathSetuid} {
		t.Run("single file "+rel, func(t *testing.T) {
			target := tempDir(t)
			s.mustCostor("restore", "--target", target, snap[:12]+":"+filepath.Join(src, rel))
			treegen.Compare(t, filepath.Join(want, rel), filepath.Join(target, filepath.Base(rel)),
				treegen.CompareOptions{ATime: true})
		})
	}
	t.Run("root-only entries", func(t *testing.T) {
		requireRoot(t)
		restored := filepath.Join(s.path("restore-all"), src)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(restored, treegen.PathOwned), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != treegen.OwnerUID || st.Gid != treegen.OwnerGID {
			t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, treegen.OwnerUID, treegen.OwnerGID)
		}
		if err := unix.Lstat(filepath.Join(restored, treegen.PathCharDev), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("char device: mode %o rdev %d", st.Mode, st.Rdev)
		}
	})
	t.Run("include", func(t *testing.T) {
		target := s.path("restore-include")
		s.mustCostor("restore", "--target", target, "--include", "*.txt", "latest")
		root := filepath.Join(target, src)
		treegen.Compare(t, filepath.Join(want, "files/text.txt"), filepath.Join(root, "files/text.txt"),
			treegen.CompareOptions{ATime: true})
		treegen.Compare(t, filepath.Join(want, treegen.PathDeepLeaf), filepath.Join(root, treegen.PathDeepLeaf),
			treegen.CompareOptions{ATime: true})
		for _, rel := range []string{treegen.PathLarge, treegen.PathSparse, treegen.PathSymlinkAbs, treegen.PathFifo} {
			if exists(filepath.Join(root, rel)) {
				t.Errorf("%s restored although it does not match --include *.txt", rel)
			}
		}
	})
	t.Run("verify", func(t *testing.T) {
		target := s.path("restore-verify")
		s.mustCostor("restore", "--target", target, "--verify", snap+":"+src+"/files")
		treegen.Compare(t, filepath.Join(want, "files"), target, treegen.CompareOptions{IgnoreRootMeta: true})
	})
	t.Run("dump file", func(t *testing.T) {
		for _, rel := range []string{treegen.PathLarge, treegen.PathNewline, treegen.PathEmpty} {
			out := s.mustCostor("dump", "latest:"+filepath.Join(src, rel))
			if out != readFile(t, filepath.Join(want, rel)) {
				t.Errorf("dump %s: %d bytes that differ from the file", rel, len(out))
			}
		}
	})
	t.Run("dump directory as tar", func(t *testing.T) {
		out := s.mustCostor("dump", "latest:"+filepath.Join(src, "deep"))
		tr := tar.NewReader(strings.NewReader(out))
		found := false
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("dump of a directory is not a tar stream: %v", err)
			}
			if strings.HasSuffix(hdr.Name, "/leaf.txt") {
				body, _ := io.ReadAll(tr)
				found = string(body) == "at the bottom\n"
			}
		}
		if !found {
			t.Error("tar stream lacks leaf.txt with its content")
		}
	})
	t.Run("ls", func(t *testing.T) {
		out := s.mustCostor("ls", "--recursive", "latest")
		for _, rel := range []string{treegen.PathDeepLeaf, treegen.PathLarge, treegen.PathSymlinkDangling} {
			if !strings.Contains(out, filepath.Join(src, rel)) {
				t.Errorf("ls --recursive does not list %s", filepath.Join(src, rel))
			}
		}
		out = s.mustCostor("ls", "latest:"+filepath.Join(src, "files"))
		if !strings.Contains(out, "large.bin") || strings.Contains(out, "leaf.txt") {
			t.Errorf("ls of files/ should list large.bin and not deep/…/leaf.txt:\n%s", out)
		}
	})
	t.Run("check", func(t *testing.T) {
		s.mustCostor("check")
		s.mustCostor("check", "--read-data")
		s.mustCostor("check", "--read-data-subset", "50%")
	})
}

func TestExclude(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	for _, rel := range []string{"keep.txt", "drop.tmp", "cache/inner.txt", "sub/keep2.txt", "sub/drop2.tmp"} {
		writeFile(t, filepath.Join(src, rel), rel)
	}
	s.backup("--exclude", "*.tmp", "--exclude", "cache", src)
	target := s.path("restore")
	s.mustCostor("restore", "--target", target, "latest")
	root := filepath.Join(target, src)
	for _, rel := range []string{"keep.txt", "sub/keep2.txt"} {
		if !exists(filepath.Join(root, rel)) {
			t.Errorf("%s missing from the restore", rel)
		}
	}
	for _, rel := range []string{"drop.tmp", "sub/drop2.tmp", "cache"} {
		if exists(filepath.Join(root, rel)) {
			t.Errorf("%s restored although excluded", rel)
		}
	}
}

func TestOneFileSystem(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "outer.txt"), "outer")
	mnt := filepath.Join(src, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	writeFile(t, filepath.Join(mnt, "inner.txt"), "inner")

	s.backup("--one-file-system", "--tag", "onefs", src)
	s.backup("--tag", "all", src)
	for _, tc := range []struct {
		tag       string
		wantInner bool
	}{{"onefs", false}, {"all", true}} {
		snaps := s.snapshots("--tag", tc.tag)
		if len(snaps) != 1 {
			t.Fatalf("snapshots --tag %s: %d snapshots, want 1", tc.tag, len(snaps))
		}
		target := s.path("restore-" + tc.tag)
		s.mustCostor("restore", "--target", target, snaps[0].ID)
		if !exists(filepath.Join(target, src, "outer.txt")) {
			t.Errorf("%s: outer.txt missing", tc.tag)
		}
		if got := exists(filepath.Join(target, src, "mnt/inner.txt")); got != tc.wantInner {
			t.Errorf("%s: mnt/inner.txt restored = %v, want %v", tc.tag, got, tc.wantInner)
		}
	}
}
