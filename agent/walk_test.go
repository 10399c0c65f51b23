//go:build linux

package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// failingRepo fails every SaveBlob after the first few.
type failingRepo struct {
	agent.Repository
	left atomic.Int32
}

var errStoreFailed = errors.New("store failed")

func (f *failingRepo) SaveBlob(ctx context.Context, t pack.BlobType, blob id.ID, sealed []byte, raw uint32) (bool, error) {
	if f.left.Add(-1) < 0 {
		return false, errStoreFailed
	}
	return f.Repository.SaveBlob(ctx, t, blob, sealed, raw)
}

// Directories are listed in parallel: a deep and wide tree is recorded
// whole and in order, and a repository failure in the middle of it ends the
// backup with that error instead of hanging or racing.
func TestParallelWalk(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := t.TempDir()
	want := 0
	for a := range 6 {
		for b := range 5 {
			dir := filepath.Join(src, fmt.Sprintf("a%d", a), fmt.Sprintf("b%d", b), "c")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 7 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), fmt.Appendf(nil, "%d/%d/%d", a, b, i), 0o644); err != nil {
					t.Fatal(err)
				}
				want++
			}
		}
	}
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	if res.Stats.Files != uint64(want) || res.Stats.FilesNew != uint64(want) {
		t.Fatalf("stats %+v, want %d new files", res.Stats, want)
	}
	again := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src}; o.Parent = tr.parent(t, res) })
	if again.Stats.FilesSame != uint64(want) {
		t.Fatalf("second backup: %d of %d files unmodified", again.Stats.FilesSame, want)
	}
	if tr.rootOf(t, again.SnapshotID) != tr.rootOf(t, res.SnapshotID) {
		t.Fatal("an unchanged tree got another root tree")
	}

	for _, n := range []int32{0, 5, 40, 100} {
		opts := tr.backups
		opts.Paths = []string{src}
		fr := &failingRepo{Repository: tr.r}
		fr.left.Store(n)
		touch := filepath.Join(src, "a0", "new")
		if err := os.WriteFile(touch, fmt.Appendf(nil, "new %d", n), 0o644); err != nil {
			t.Fatal(err)
		}
		// Without a parent every file is read and stored again, so the
		// store is called for each of the 200-odd blobs and fails midway.
		for a := range 6 {
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("a%d", a), "b0", "c", "f0"), fmt.Appendf(nil, "changed %d %d", a, n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := agent.Backup(t.Context(), fr, opts); !errors.Is(err, errStoreFailed) {
			t.Fatalf("after %d blobs: err = %v, want the store's error", n, err)
		}
	}
}
