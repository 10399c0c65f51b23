//go:build linux

package tests

import (
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
