package agent_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costor/costor/agent"
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

// A file that cannot be written fails the restore, named in the error, but
// not the files after it: the restore gets back everything it can.
func TestRestoreGoesOnPastAFileItCannotWrite(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	want := manyFiles(t, src, 2, 40)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })

	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			target := t.TempDir()
			blocked := filepath.Join(target, "d00", "f000")
			if err := os.MkdirAll(filepath.Join(blocked, "keep"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, res.SnapshotID), src,
				agent.RestoreOptions{Target: target, Workers: workers})
			if err == nil || !strings.Contains(err.Error(), blocked) || !strings.Contains(err.Error(), "a directory is in the way") {
				t.Fatalf("restore with a directory where %s goes: %v, want an error naming it", blocked, err)
			}
			if _, err := os.Stat(filepath.Join(blocked, "keep")); err != nil {
				t.Errorf("the directory in the way was touched: %v", err)
			}
			for rel, data := range want {
				if rel == "d00/f000" {
					continue
				}
				got, err := os.ReadFile(filepath.Join(target, rel))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s after the failure: %q, %v; want %q", rel, got, err, data)
				}
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
	r := tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target, Workers: 3, Verify: true})
	if r.Files != uint64(len(want)) || r.Verified != r.Files {
		t.Errorf("restored %d files, verified %d; want %d", r.Files, r.Verified, len(want))
	}
	compareTrees(t, src, target)

	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && (p == target || strings.HasPrefix(p, target+"/")) {
			t.Errorf("descriptor %s still open on %s after the restore", fd.Name(), p)
		}
	}
}
