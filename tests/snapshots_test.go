//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/tests/treegen"
)

func TestSnapshotsJSONHostsTagsAndIDs(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "one.txt"), "one")
	start := time.Now().Add(-time.Second)

	id1 := s.backupJSON("--host", "alpha", "--tag", "daily", "--tag", "x", src).snapshotID(t)
	writeFile(t, filepath.Join(src, "two.txt"), "two")
	id2 := s.backupJSON("--host", "alpha", "--tag", "weekly", src).snapshotID(t)
	id3 := s.backupJSON("--host", "beta", src).snapshotID(t)

	snaps := s.snapshots()
	if len(snaps) != 3 {
		t.Fatalf("want 3 snapshots, got %d", len(snaps))
	}
	byID := map[string]snapshotJSON{}
	for _, sn := range snaps {
		byID[sn.ID] = sn
		if !strings.HasPrefix(sn.ID, sn.ShortID) || len(sn.ShortID) < 8 || len(sn.ShortID) >= len(sn.ID) {
			t.Errorf("short_id %q is not a proper prefix of id %q", sn.ShortID, sn.ID)
		}
		if sn.Time.Before(start) || sn.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("snapshot %s: time %v is not the time of the backup", sn.ShortID, sn.Time)
		}
		if !slices.Equal(sn.Paths, []string{src}) {
			t.Errorf("snapshot %s: paths %q, want [%q]", sn.ShortID, sn.Paths, src)
		}
		if sn.Tree == "" {
			t.Errorf("snapshot %s: empty tree", sn.ShortID)
		}
	}
	for _, tc := range []struct {
		id, host string
		tags     []string
	}{{id1, "alpha", []string{"daily", "x"}}, {id2, "alpha", []string{"weekly"}}, {id3, "beta", nil}} {
		sn, ok := byID[tc.id]
		if !ok {
			t.Fatalf("backup --json reported snapshot_id %q, which snapshots does not list", tc.id)
		}
		tags := slices.Clone(sn.Tags)
		slices.Sort(tags)
		if sn.Host != tc.host || !slices.Equal(tags, tc.tags) {
			t.Errorf("snapshot %s: host %q tags %q, want %q %q", sn.ShortID, sn.Host, sn.Tags, tc.host, tc.tags)
		}
	}
	if p := byID[id1].parentID(); p != "" {
		t.Errorf("first snapshot has parent %q", p)
	}
	if p := byID[id2].parentID(); p != id1 {
		t.Errorf("second snapshot of alpha: parent %q, want %q", p, id1)
	}
	if byID[id1].Tree == byID[id2].Tree {
		t.Errorf("a file was added between snapshots 1 and 2, yet both have tree %s", byID[id1].Tree)
	}

	ids := func(snaps []snapshotJSON) []string {
		var out []string
		for _, sn := range snaps {
			out = append(out, sn.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--host", "beta"}, []string{id3}},
		{[]string{"--host", "alpha"}, sorted(id1, id2)},
		{[]string{"--tag", "daily"}, []string{id1}},
		{[]string{"--path", src}, sorted(id1, id2, id3)},
		{[]string{"--path", "/no/such/path"}, nil},
	} {
		if got := ids(s.snapshots(tc.args...)); !slices.Equal(got, tc.want) {
			t.Errorf("snapshots %q: %q, want %q", tc.args, got, tc.want)
		}
	}

	// Any unique prefix names a snapshot; an unknown one is a clean error.
	for _, ref := range []string{id1, byID[id1].ShortID, id1[:10]} {
		out := s.mustCostor("ls", "--recursive", ref)
		if !strings.Contains(out, "one.txt") || strings.Contains(out, "two.txt") {
			t.Errorf("ls %s does not show the first snapshot:\n%s", ref, out)
		}
	}
	unknown := "0000000000"
	for _, sn := range snaps {
		if strings.HasPrefix(sn.ID, unknown) {
			unknown = "ffffffffff"
		}
	}
	_, stderr, code := s.costor("ls", unknown)
	if code != 1 {
		t.Errorf("ls of an unknown snapshot: exit %d, want 1", code)
	}
	oneLine(t, "ls of an unknown snapshot", stderr)
}

func TestLatestAndDiff(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	for _, name := range []string{"unchanged.txt", "modified.txt", "removed.txt"} {
		writeFile(t, filepath.Join(src, name), name)
	}
	first := s.backup(src)
	writeFile(t, filepath.Join(src, "modified.txt"), "new content, longer")
	writeFile(t, filepath.Join(src, "added.txt"), "added")
	if err := os.Remove(filepath.Join(src, "removed.txt")); err != nil {
		t.Fatal(err)
	}
	second := s.backup(src)

	// latest is the newest snapshot of this machine's hostname.
	if got := s.mustCostor("dump", "latest:"+filepath.Join(src, "modified.txt")); got != "new content, longer" {
		t.Errorf("dump latest: %q", got)
	}
	if got := s.mustCostor("dump", first+":"+filepath.Join(src, "modified.txt")); got != "modified.txt" {
		t.Errorf("dump of the first snapshot: %q", got)
	}
	out := s.mustCostor("diff", first, second)
	for _, name := range []string{"modified.txt", "added.txt", "removed.txt"} {
		if !strings.Contains(out, name) {
			t.Errorf("diff does not mention %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "unchanged.txt") {
		t.Errorf("diff mentions unchanged.txt:\n%s", out)
	}
}

// TestIncremental: an unchanged tree adds (almost) nothing; a change adds
// only what changed.
func TestIncremental(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	if err := treegen.RandomFiles(src, 3, 10, 1<<20); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "sub/small.txt"), "small")
	total, files := treeSize(t, src)

	first := s.backupJSON(src)
	if n := first.count(t, keyFilesNew); n != uint64(files) {
		t.Errorf("first backup: %d new files, want %d", n, files)
	}
	if n := first.count(t, keyBytesTotal); n != total {
		t.Errorf("first backup: %d bytes in total, want %d", n, total)
	}
	if n := first.count(t, keyBytesAdded); n < total*9/10 {
		t.Errorf("first backup of random data added only %d bytes of %d", n, total)
	}

	same := s.backupJSON(src)
	if n := same.count(t, keyFilesNew) + same.count(t, keyFilesChanged); n != 0 {
		t.Errorf("no-change backup: %d new or changed files, want 0: %s", n, same.raw)
	}
	if n := same.count(t, keyFilesSame); n != uint64(files) {
		t.Errorf("no-change backup: %d unchanged files, want %d", n, files)
	}
	if n := same.count(t, keyBytesAdded); n > 64<<10 {
		t.Errorf("no-change backup added %d bytes, want (near) zero", n)
	}
	if same.snapshotID(t) == first.snapshotID(t) {
		t.Error("no-change backup reused the old snapshot ID")
	}

	f, err := os.OpenFile(filepath.Join(src, "bulk-0003.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("appended"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeFile(t, filepath.Join(src, "sub/new.txt"), "new")
	changed := s.backupJSON(src)
	if n := changed.count(t, keyFilesNew); n != 1 {
		t.Errorf("after adding one file: %d new files", n)
	}
	if n := changed.count(t, keyFilesChanged); n != 1 {
		t.Errorf("after changing one file: %d changed files", n)
	}
	if n := changed.count(t, keyBytesAdded); n > 2<<20 {
		t.Errorf("changing one 1 MiB file added %d bytes", n)
	}
}

// TestDedup: a file that shares most of its content with one already stored
// adds only the chunks around the difference.
func TestDedup(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	if err := treegen.RandomFiles(src, 4, 1, 32<<20); err != nil {
		t.Fatal(err)
	}
	s.backup(src)
	a := readFile(t, filepath.Join(src, "bulk-0000.bin"))
	writeFile(t, filepath.Join(src, "copy-with-insert.bin"), a[:16<<20]+"an insertion in the middle"+a[16<<20:])
	writeFile(t, filepath.Join(src, "plain-copy.bin"), a)
	sum := s.backupJSON(src)
	// Content-defined chunks resynchronise after the insertion: at most a
	// couple of chunks are new, never half the file.
	if n := sum.count(t, keyBytesAdded); n > 16<<20 {
		t.Errorf("two near-copies of a stored 32 MiB file added %d bytes", n)
	}
}
