//go:build linux

package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo/tree"
)

// manyFiles makes dirs directories of files small files each under src and
// returns their contents by path relative to src.
func manyFiles(t *testing.T, src string, dirs, files int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for d := range dirs {
		dir := filepath.Join(src, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range files {
			rel := fmt.Sprintf("d%02d/f%03d", d, f)
			data := []byte(strings.Repeat(rel+"\n", 1+f%7))
			writeFile(t, filepath.Join(src, rel), data, 0o644)
			want[rel] = data
		}
	}
	return want
}

// noDescriptorsUnder fails t if this process still has a descriptor open
// on dir or below it. Garbage collection is off from the restore to the
// check, or a finalizer could close a leaked descriptor first.
func noDescriptorsUnder(t *testing.T, dir string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && (p == real || strings.HasPrefix(p, real+"/")) {
			t.Errorf("descriptor %s still open on %s after the restore", fd.Name(), p)
		}
	}
}

// withoutGC runs f with the garbage collector off.
func withoutGC(f func()) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	f()
}

// Entries that cannot be restored fail the restore, the first named in the
// error and the others in the warnings, but not the entries after them:
// the restore gets back everything it can, directory metadata included.
func TestRestoreGoesOnPastEntriesItCannotRestore(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	want := manyFiles(t, src, 2, 40)
	// A set of hard links whose first member is in the way: the second
	// one is restored as the file.
	writeFile(t, filepath.Join(src, "d00", "h1"), []byte("linked"), 0o644)
	if err := os.Link(filepath.Join(src, "d00", "h1"), filepath.Join(src, "d01", "h2")); err != nil {
		t.Fatal(err)
	}
	want["d01/h2"] = []byte("linked")
	if err := os.Chmod(filepath.Join(src, "d01"), 0o750); err != nil {
		t.Fatal(err)
	}
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })

	blocked := []string{"d00/f000", "d00/h1", "d01/f017"}
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			target := t.TempDir()
			for _, rel := range blocked {
				if err := os.MkdirAll(filepath.Join(target, rel, "keep"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var r *agent.RestoreResult
			var err error
			withoutGC(func() {
				r, err = agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, res.SnapshotID), src,
					agent.RestoreOptions{Target: target, Workers: workers})
				noDescriptorsUnder(t, target)
			})
			if err == nil || !strings.Contains(err.Error(), "a directory is in the way") {
				t.Fatalf("restore with directories where files go: %v, want a directory in the way", err)
			}
			reported := append([]string{err.Error()}, r.Warnings...)
			for _, rel := range blocked {
				abs := filepath.Join(target, rel)
				n := 0
				for _, msg := range reported {
					if strings.Contains(msg, abs+":") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%s is reported %d times in %q, want once", abs, n, reported)
				}
				if _, err := os.Stat(filepath.Join(abs, "keep")); err != nil {
					t.Errorf("the directory in the way was touched: %v", err)
				}
			}
			if len(reported) != len(blocked) {
				t.Errorf("reported %q, want only the %d blocked entries", reported, len(blocked))
			}
			for rel, data := range want {
				if rel == "d00/f000" || rel == "d01/f017" {
					continue
				}
				got, err := os.ReadFile(filepath.Join(target, rel))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s after the failures: %q, %v; want %q", rel, got, err, data)
				}
			}
			if fi, err := os.Stat(filepath.Join(target, "d01")); err != nil || fi.Mode().Perm() != 0o750 {
				t.Errorf("d01 after the failures: %v, %v; want its mode 0750 restored", fi, err)
			}
		})
	}
}

// Files are created by the workers, each holding the directory it is
// created in; when the restore returns, every one of those directories is
// closed again.
func TestRestoreClosesEveryDirectory(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	want := manyFiles(t, src, 30, 5)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })

	target := t.TempDir()
	var r *agent.RestoreResult
	withoutGC(func() {
		r = tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target, Workers: 3, Verify: true})
		noDescriptorsUnder(t, target)
	})
	if r.Files != uint64(len(want)) || r.Verified != r.Files {
		t.Errorf("restored %d files, verified %d; want %d", r.Files, r.Verified, len(want))
	}
	compareTrees(t, src, target)

	// Cancelled with a file in flight and the traversal waiting to queue
	// the next (one worker, so the queue is full): their jobs let go too.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	target = t.TempDir()
	withoutGC(func() {
		rd := &cancelAfterReads{Repository: tr.r, after: 20, cancel: cancel}
		_, err := agent.Restore(ctx, rd, tr.hk, tr.rootOf(t, res.SnapshotID), src,
			agent.RestoreOptions{Target: target, Workers: 1})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("restore cancelled after 20 chunks: %v, want context.Canceled", err)
		}
		noDescriptorsUnder(t, target)
	})
}

// cancelAfterReads is a repository that calls cancel at its after-th chunk
// read: an interrupt in the middle of a restore.
type cancelAfterReads struct {
	agent.Repository
	reads  atomic.Int32
	after  int32
	cancel context.CancelFunc
}

func (c *cancelAfterReads) ReadChunk(ctx context.Context, ch tree.Chunk, dst []byte) ([]byte, error) {
	if c.reads.Add(1) == c.after {
		c.cancel()
	}
	return c.Repository.ReadChunk(ctx, ch, dst)
}
