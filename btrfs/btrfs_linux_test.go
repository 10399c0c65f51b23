//go:build linux

package btrfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireRoot skips a test that needs root and btrfs-progs, except on CI,
// where a skipped filesystem test would hide a broken adapter.
func requireRoot(t *testing.T) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, tool := range []string{"btrfs", "mkfs.btrfs", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = tool
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("btrfs tests need %s (CI is set, so this is not skipped)", missing)
	}
	t.Skipf("btrfs tests need %s", missing)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newFS mounts a fresh btrfs image on a loop device and returns the mount
// point; the cleanup unmounts and detaches it even when the test fails.
func newFS(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sh(t, "mkfs.btrfs", "-q", img)
	dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	sh(t, "mount", dev, mnt)
	t.Cleanup(func() {
		if err := exec.Command("umount", mnt).Run(); err != nil {
			out, err := exec.Command("umount", "-l", mnt).CombinedOutput()
			if err != nil {
				t.Errorf("umount %s: %v: %s", mnt, err, out)
			}
		}
	})
	return mnt
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func take(t *testing.T, paths ...string) *View {
	t.Helper()
	v, err := Take(t.Context(), paths, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Release(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return v
}

// viewRead maps path through v and reads it there.
func viewRead(t *testing.T, v *View, path string) string {
	t.Helper()
	p, err := v.Path(path)
	if err != nil {
		t.Fatal(err)
	}
	return read(t, p)
}

// costorSubvolumes lists the snapshots costor made on the filesystem at mnt.
func costorSubvolumes(t *testing.T, mnt string) []string {
	t.Helper()
	var names []string
	for _, s := range parseSubvolumeList([]byte(sh(t, "btrfs", "subvolume", "list", mnt))) {
		if strings.Contains(s.path, SnapshotDir) {
			names = append(names, s.path)
		}
	}
	return names
}

// assertClean checks that no snapshot and no .costor-snapshots directory is left.
func assertClean(t *testing.T, mnt string, subvols ...string) {
	t.Helper()
	if left := costorSubvolumes(t, mnt); len(left) > 0 {
		t.Errorf("snapshots left behind: %v", left)
	}
	for _, sv := range append(subvols, mnt) {
		if _, err := os.Lstat(filepath.Join(sv, SnapshotDir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (%v)", filepath.Join(sv, SnapshotDir), err)
		}
	}
}

func TestPointInTime(t *testing.T) {
	mnt := newFS(t)
	sh(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "vol"))
	for _, tc := range []struct {
		name, root, file string
		subvol           string // where the snapshot must live
	}{
		{"top-level subvolume", filepath.Join(mnt, "data"), "f.txt", mnt},
		{"mount point itself", mnt, "top/f.txt", mnt},
		{"nested subvolume", filepath.Join(mnt, "vol"), "f.txt", filepath.Join(mnt, "vol")},
		{"deep inside nested", filepath.Join(mnt, "vol/a/b/c"), "d/e/f.txt", filepath.Join(mnt, "vol")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(tc.root, tc.file)
			write(t, file, "v1 "+tc.name)
			v := take(t, tc.root)
			write(t, file, "v2 changed after Take")
			write(t, filepath.Join(tc.root, "new.txt"), "created after Take")

			p, err := v.Path(file)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(tc.subvol, SnapshotDir) + "/costor-backup-"; !strings.HasPrefix(p, want) {
				t.Errorf("Path(%s) = %s, want it under %s*", file, p, want)
			}
			if got := read(t, p); got != "v1 "+tc.name {
				t.Errorf("view reads %q, want the content at Take time", got)
			}
			newInView, _ := v.Path(filepath.Join(tc.root, "new.txt"))
			if _, err := os.Stat(newInView); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file created after Take is in the view (%v)", err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
				t.Errorf("writing into the view: %v, want EROFS", err)
			}
			if _, err := v.Path("/elsewhere/x"); err == nil {
				t.Error("Path of a path outside the backup paths succeeded")
			}

			if err := v.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			assertClean(t, mnt, tc.subvol)
			if err := v.Release(t.Context()); err != nil {
				t.Errorf("second Release: %v", err)
			}
			if _, err := v.Path(file); err == nil {
				t.Error("Path after Release succeeded")
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("view path still there after Release (%v)", err)
			}
		})
	}
}

// A backup path above a nested subvolume gets that subvolume's content too,
// from its own snapshot; read-only subvolumes are used as they are.
func TestNestedSubvolumesBelowPath(t *testing.T) {
	mnt := newFS(t)
	vol := filepath.Join(mnt, "dir/vol")
	write(t, filepath.Join(mnt, "top.txt"), "top v1")
	if err := os.MkdirAll(filepath.Dir(vol), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "btrfs", "subvolume", "create", vol)
	sh(t, "btrfs", "subvolume", "create", filepath.Join(vol, "inner"))
	write(t, filepath.Join(vol, "x/vol.txt"), "vol v1")
	write(t, filepath.Join(vol, "inner/in.txt"), "inner v1")
	ro := filepath.Join(mnt, "frozen")
	sh(t, "btrfs", "subvolume", "snapshot", "-r", vol, ro)

	v := take(t, mnt)
	for _, f := range []string{"top.txt", "dir/vol/x/vol.txt", "dir/vol/inner/in.txt"} {
		write(t, filepath.Join(mnt, f), "changed")
	}
	for f, want := range map[string]string{
		"top.txt":              "top v1",
		"dir/vol/x/vol.txt":    "vol v1",
		"dir/vol/inner/in.txt": "inner v1",
		"frozen/x/vol.txt":     "vol v1",
	} {
		if got := viewRead(t, v, filepath.Join(mnt, f)); got != want {
			t.Errorf("%s in the view: %q, want %q", f, got, want)
		}
	}
	if p, _ := v.Path(filepath.Join(ro, "x/vol.txt")); p != filepath.Join(ro, "x/vol.txt") {
		t.Errorf("a read-only subvolume maps to %s, want itself", p)
	}
	if n := len(costorSubvolumes(t, mnt)); n != 3 {
		t.Errorf("%d snapshots, want 3 (top level, vol, inner): %v", n, costorSubvolumes(t, mnt))
	}
	if err := v.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	assertClean(t, mnt, vol, filepath.Join(vol, "inner"))
}

func TestTakeUnsupported(t *testing.T) {
	mnt := newFS(t)
	tmpfs := t.TempDir()
	sh(t, "mount", "-t", "tmpfs", "tmpfs", tmpfs)
	t.Cleanup(func() { _ = exec.Command("umount", tmpfs).Run() })
	write(t, filepath.Join(mnt, "a/f"), "x")

	if ok, err := Supported(tmpfs); ok || err != nil {
		t.Errorf("Supported(tmpfs) = %v, %v", ok, err)
	}
	if ok, err := Supported(mnt); !ok || err != nil {
		t.Errorf("Supported(btrfs) = %v, %v", ok, err)
	}
	_, err := Take(t.Context(), []string{filepath.Join(mnt, "a"), tmpfs}, Options{})
	if !errors.Is(err, ErrNotBtrfs) || !strings.Contains(err.Error(), tmpfs) {
		t.Errorf("Take of tmpfs: %v, want ErrNotBtrfs naming %s", err, tmpfs)
	}
	if _, err := Take(t.Context(), []string{"relative/path"}, Options{}); err == nil {
		t.Error("Take of a relative path succeeded")
	}
	if _, err := Take(t.Context(), []string{mnt}, Options{Tag: "a/b"}); err == nil {
		t.Error("Take with a tag holding '/' succeeded")
	}
	assertClean(t, mnt)
}

// A Take that fails after its first snapshot removes that snapshot, and the
// error names the command and carries its stderr.
func TestTakeFailsHalfway(t *testing.T) {
	mnt := newFS(t)
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
	sh(t, "btrfs", "subvolume", "create", a)
	sh(t, "btrfs", "subvolume", "create", b)
	snapshots := 0
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if len(args) > 1 && args[1] == "snapshot" {
			snapshots++
			if snapshots == 2 {
				return []byte("ERROR: injected failure"), errors.New("exit status 1")
			}
		}
		return exec.CommandContext(ctx, name, args...).Output()
	}
	_, err := Take(t.Context(), []string{a, b}, Options{Run: run})
	if err == nil || !strings.Contains(err.Error(), "btrfs subvolume snapshot -r") || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Take: %v, want the failing command and its output", err)
	}
	if snapshots != 2 {
		t.Errorf("%d snapshot commands, want 2", snapshots)
	}
	assertClean(t, mnt, a, b)
}

// A snapshot a cancelled Take made is still removed, and Release works
// with a cancelled context.
func TestReleaseAfterCancel(t *testing.T) {
	mnt := newFS(t)
	write(t, filepath.Join(mnt, "f"), "x")
	ctx, cancel := context.WithCancel(t.Context())
	v, err := Take(ctx, []string{mnt}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := v.Release(ctx); err != nil {
		t.Fatalf("Release with a cancelled context: %v", err)
	}
	assertClean(t, mnt)
}

func TestCleanup(t *testing.T) {
	mnt := newFS(t)
	vol := filepath.Join(mnt, "vol")
	sh(t, "btrfs", "subvolume", "create", vol)
	now := time.Now().Unix()
	mk := func(subvol, name string) string {
		dir := filepath.Join(subvol, SnapshotDir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		sh(t, "btrfs", "subvolume", "snapshot", "-r", subvol, p)
		return p
	}
	dead := mk(mnt, fmt.Sprintf("costor-backup-999999-%d", now))
	deadNested := mk(vol, fmt.Sprintf("costor-nightly-db-999999-%d", now))
	reused := mk(mnt, fmt.Sprintf("costor-backup-%d-1000", os.Getpid())) // our pid, but named before we started
	live := mk(mnt, fmt.Sprintf("costor-backup-%d-%d", os.Getpid(), now))
	notOurs := mk(mnt, "costor-manual")

	removed, err := Cleanup(t.Context(), Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range removed {
		got[r] = true
	}
	for _, p := range []string{dead, deadNested, reused} {
		if !got[p] || isSubvolume(p) {
			t.Errorf("leftover %s not removed (returned %v)", p, removed)
		}
	}
	for _, p := range []string{live, notOurs} {
		if got[p] || !isSubvolume(p) {
			t.Errorf("%s removed, but it is not a dead run's", p)
		}
	}
	if _, err := os.Stat(filepath.Join(vol, SnapshotDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty %s left in vol (%v)", SnapshotDir, err)
	}
	for _, p := range []string{live, notOurs} {
		sh(t, "btrfs", "subvolume", "delete", p)
	}
}

func TestProcessAlive(t *testing.T) {
	now := time.Now().Unix()
	for _, tc := range []struct {
		pid  int
		t    int64
		want bool
	}{
		{os.Getpid(), now, true},
		{os.Getpid(), 1000, false}, // the pid was reused since
		{999999, now, false},
		{1, now, true},
	} {
		if got := processAlive(tc.pid, tc.t); got != tc.want {
			t.Errorf("processAlive(%d, %d) = %v, want %v", tc.pid, tc.t, got, tc.want)
		}
	}
	if _, ok := processStart([]byte("1 (a) b) S 0")); ok {
		t.Error("processStart accepted a short stat line")
	}
	self, _ := os.ReadFile("/proc/self/stat")
	if start, ok := processStart(self); !ok || start > now+1 || start < now-3600 {
		t.Errorf("processStart(self) = %d, %v; now %d", start, ok, now)
	}
}
