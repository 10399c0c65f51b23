//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/tests/treegen"
)

// TestSnapshotReleasedOnSignals: a btrfs snapshot taken for a backup is
// removed when the backup is stopped with SIGINT or SIGTERM; one left by a
// kill -9 is removed by the next backup, which then succeeds.
func TestSnapshotReleasedOnSignals(t *testing.T) {
	requireRoot(t)
	mnt := btrfsVolume(t)
	mustExec(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "vol"))
	data := filepath.Join(mnt, "vol", "data")
	// Enough data that a backup is still running when the signal arrives.
	if err := treegen.RandomFiles(data, 7, 24, 16<<20); err != nil {
		t.Fatal(err)
	}
	s := newSandbox(t)
	s.init()

	leftovers := func() []string {
		t.Helper()
		subvols, err := btrfsSubvolumes(t, mnt)
		if err != nil {
			t.Fatal(err)
		}
		var costor []string
		for _, p := range subvols {
			if strings.Contains(p, "costor-") {
				costor = append(costor, p)
			}
		}
		return costor
	}
	// startAndWaitForSnapshot starts a backup and returns once its
	// snapshot exists (so a signal hits a backup that holds one).
	startAndWaitForSnapshot := func() *background {
		t.Helper()
		b := s.start("backup", "--snapshot", "btrfs", data)
		deadline := time.Now().Add(30 * time.Second)
		for len(leftovers()) == 0 {
			if b.exited() || time.Now().After(deadline) {
				t.Fatalf("backup never had a snapshot while running (exited %v); stderr:\n%s", b.exited(), b.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return b
	}

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		b := startAndWaitForSnapshot()
		if err := b.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("backup did not stop within 60 s of %v", sig)
		}
		checkNoPanic(t, b.args, b.stderr.String())
		if code := b.cmd.ProcessState.ExitCode(); code == 0 {
			t.Errorf("%v: backup exited 0; it finished before the signal, so this round proves nothing", sig)
		}
		if left := leftovers(); len(left) > 0 {
			t.Errorf("after %v: snapshot subvolumes left: %v", sig, left)
		}
	}

	b := startAndWaitForSnapshot()
	if !b.kill(t) {
		t.Fatal("the backup finished before kill -9")
	}
	if left := leftovers(); len(left) == 0 {
		t.Fatal("kill -9 left no snapshot: nothing for the next run to clean up")
	}
	_, stderr, code := s.costor("backup", "--snapshot", "btrfs", data)
	if code != 0 {
		t.Fatalf("backup after kill -9: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "removed a btrfs snapshot left by an interrupted run") {
		t.Errorf("the next backup did not say it removed the leftover; stderr:\n%s", stderr)
	}
	if left := leftovers(); len(left) > 0 {
		t.Errorf("after the next backup: snapshot subvolumes left: %v", left)
	}
}

// TestBtrfsDistroLayout: the layout of Ubuntu or Fedora on btrfs — the
// system in subvolume "@" (not the top level), a nested subvolume inside
// it, "@home" mounted separately below it, and another filesystem (ext4)
// mounted below too. A --snapshot btrfs backup must hold the files of the
// nested subvolume and of @home, and must report (exit 3) the ext4 mount
// its snapshot cannot cover, never back it up silently as empty.
func TestBtrfsDistroLayout(t *testing.T) {
	requireRoot(t)
	top := btrfsVolume(t)
	dev := strings.TrimSpace(mustExec(t, "findmnt", "-n", "-o", "SOURCE", top))
	mustExec(t, "btrfs", "subvolume", "create", filepath.Join(top, "@"))
	mustExec(t, "btrfs", "subvolume", "create", filepath.Join(top, "@", "nested"))
	mustExec(t, "btrfs", "subvolume", "create", filepath.Join(top, "@home"))
	root := filepath.Join(tempDir(t), "root")
	mount := func(args ...string) {
		t.Helper()
		target := args[len(args)-1]
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		mustExec(t, "mount", args...)
		t.Cleanup(func() { _, _ = execProg(t, execOptions{}, "umount", target) })
	}
	mount("-o", "subvol=@", dev, root)
	mount("-o", "subvol=@home", dev, filepath.Join(root, "home"))
	img := filepath.Join(tempDir(t), "boot.img")
	mustExec(t, "truncate", "-s", "32M", img)
	mustExec(t, "mkfs.ext4", "-q", img)
	mount("-o", "loop", img, filepath.Join(root, "boot"))
	writeFile(t, filepath.Join(root, "etc", "hostname"), "distro\n")
	writeFile(t, filepath.Join(root, "nested", "n1"), "in a nested subvolume\n")
	writeFile(t, filepath.Join(root, "home", "alice", "h1"), "in @home\n")
	writeFile(t, filepath.Join(root, "boot", "b1"), "on ext4\n")

	s := newSandbox(t)
	s.init()
	stdout, stderr, code := s.costor("backup", "--snapshot", "btrfs", root)
	if code != 3 {
		t.Fatalf("backup: exit %d, want 3 (the ext4 mount is not covered)\nstderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, filepath.Join(root, "boot")) {
		t.Errorf("stderr does not name the uncovered mount %s:\n%s", filepath.Join(root, "boot"), stderr)
	}
	id := lastLine(t, stdout)
	target := s.path("restored")
	s.mustCostor("restore", id, "--target", target)
	for rel, want := range map[string]string{
		"etc/hostname": "distro\n", "nested/n1": "in a nested subvolume\n", "home/alice/h1": "in @home\n",
	} {
		if got := readFile(t, filepath.Join(target, root, rel)); got != want {
			t.Errorf("%s restored as %q, want %q", rel, got, want)
		}
	}
	subvols, err := btrfsSubvolumes(t, top)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range subvols {
		if strings.Contains(p, "costor-") || strings.Contains(p, ".costor-snapshots") {
			t.Errorf("snapshot left behind: %s", p)
		}
	}
}
