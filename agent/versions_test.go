//go:build linux

package agent_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costor/costor/agent"
)

// TestVersionHistory: the per-path version index that backups write
// collapses equal content, names each version after the first snapshot
// that had it, survives a forget of that snapshot (renamed after the next
// one) and a rebuilt index.
func TestVersionHistory(t *testing.T) {
	tr := newTestRepo(t, 1<<20)
	src := filepath.Join(t.TempDir(), "src")
	file := filepath.Join(src, "doc", "notes.txt")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	contents := []string{"v1", "v2", "v1", "v3"}
	var snaps []*agent.BackupResult
	var parent *agent.Parent
	for i, c := range contents {
		writeFile(t, file, []byte(c), 0o644)
		when := fixedTime.Add(time.Duration(i) * time.Hour)
		res := tr.backup(t, func(o *agent.BackupOptions) {
			o.Paths = []string{src}
			o.Parent = parent
			o.Now = func() time.Time { return when }
		})
		parent = tr.parent(t, res)
		snaps = append(snaps, res)
	}
	check := func(t *testing.T, wantSnaps ...int) {
		t.Helper()
		vs, err := tr.r.Versions(t.Context(), "testhost", file)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != len(wantSnaps) {
			t.Fatalf("got %d versions, want %d", len(vs), len(wantSnaps))
		}
		for i, v := range vs {
			want := snaps[wantSnaps[i]].SnapshotID
			if v.Snapshot.ID != want {
				t.Errorf("version %d named after snapshot %s, want %s", i, v.Snapshot.ID.Short(), want.Short())
			}
			if v.Size != 2 {
				t.Errorf("version %d: size %d, want 2", i, v.Size)
			}
		}
		if vs[0].Content == vs[1].Content {
			t.Error("two distinct versions share a content ID")
		}
	}
	// v1 (snap 0), v2 (snap 1), v1 again (collapses into snap 0), v3 (snap 3).
	check(t, 0, 1, 3)

	children, err := tr.r.HistoryChildren(t.Context(), "testhost", filepath.Join(src, "doc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(children) != 1 || children[0].Name != "notes.txt" || children[0].IsDir {
		t.Fatalf("history of doc/: %+v, want one file notes.txt", children)
	}
	up, err := tr.r.HistoryChildren(t.Context(), "testhost", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(up) != 1 || up[0].Name != "doc" || !up[0].IsDir {
		t.Fatalf("history of src/: %+v, want one directory doc", up)
	}

	// Forget the snapshot v1 is named after: v1 is now first seen in snap 2.
	if err := tr.r.ForgetSnapshot(t.Context(), snaps[0].SnapshotID); err != nil {
		t.Fatal(err)
	}
	if err := tr.r.EnsureVersions(t.Context()); err != nil {
		t.Fatal(err)
	}
	vs, err := tr.r.Versions(t.Context(), "testhost", file)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].Snapshot.ID != snaps[1].SnapshotID || vs[1].Snapshot.ID != snaps[2].SnapshotID {
		t.Fatalf("after forgetting snapshot 0: %d versions, first named after %v", len(vs), vs)
	}

	// A rebuilt index records the same history.
	tr.reopen(t, true)
	vs2, err := tr.r.Versions(t.Context(), "testhost", file)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs2) != len(vs) {
		t.Fatalf("after repair index: %d versions, want %d", len(vs2), len(vs))
	}
	for i := range vs {
		if vs[i].Snapshot.ID != vs2[i].Snapshot.ID || vs[i].Content != vs2[i].Content {
			t.Errorf("after repair index, version %d differs", i)
		}
	}
}
