//go:build linux

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/storage/local"
	"github.com/costor/costor/repo/tree"
)

// changeViewTree applies one change of each kind to a tree made by
// makeViewTree plus olddir/z, and returns the expected diff.
func changeViewTree(t *testing.T, src string) []diffEntry {
	t.Helper()
	p := func(rel string) string { return filepath.Join(src, rel) }
	mustDo(t, os.WriteFile(p("new.txt"), []byte("new"), 0o644))
	mustDo(t, os.Remove(p("a.txt")))
	mustDo(t, os.WriteFile(p("hard1"), []byte("changed"), 0o644)) // hard2 is the same inode
	mustDo(t, os.WriteFile(p("line\nbreak"), []byte("z"), 0o644)) // same size, other content
	mustDo(t, os.Chmod(p("sub/big.bin"), 0o644))
	mustDo(t, os.MkdirAll(p("newdir"), 0o755))
	mustDo(t, os.WriteFile(p("newdir/x"), nil, 0o644))
	mustDo(t, os.WriteFile(p("newdir/y"), nil, 0o644))
	mustDo(t, os.RemoveAll(p("olddir")))
	mustDo(t, os.Remove(p("fifo")))
	mustDo(t, os.Mkdir(p("fifo"), 0o755))
	mustDo(t, os.WriteFile(p("fifo/inner"), nil, 0o644))
	touchAll(t, src) // only the changes above remain
	return []diffEntry{
		{Path: src + "/a.txt", Change: "removed"},
		{Path: src + "/fifo", Change: "type"},
		{Path: src + "/fifo/inner", Change: "added"},
		{Path: src + "/hard1", Change: "modified"},
		{Path: src + "/hard2", Change: "modified"},
		{Path: src + "/line\nbreak", Change: "modified"},
		{Path: src + "/new.txt", Change: "added"},
		{Path: src + "/newdir", Change: "added"},
		{Path: src + "/newdir/x", Change: "added"},
		{Path: src + "/newdir/y", Change: "added"},
		{Path: src + "/olddir", Change: "removed"},
		{Path: src + "/olddir/z", Change: "removed"},
		{Path: src + "/sub/big.bin", Change: "metadata"},
	}
}

func TestDiff(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	mustDo(t, os.Mkdir(filepath.Join(src, "olddir"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(src, "olddir", "z"), []byte("z"), 0o644))
	touchAll(t, src)
	snap1 := f.backup(src)
	want := changeViewTree(t, src)
	snap2 := f.backup(src)

	t.Run("plain", func(t *testing.T) {
		out, stderr, err := f.run("diff", snap1, snap2)
		if err != nil {
			t.Fatal(err)
		}
		var wantOut strings.Builder
		for _, e := range want {
			marker := changeMarkers[changeKindNamed(t, e.Change)]
			fmt.Fprintf(&wantOut, "%c %s\n", marker, displayPath(e.Path))
		}
		if out != wantOut.String() {
			t.Errorf("diff output:\n%s\nwant:\n%s", out, wantOut.String())
		}
		if !strings.Contains(out, `M "`+src+`/line\nbreak"`+"\n") {
			t.Errorf("a path with a newline is not quoted on one line:\n%s", out)
		}
		wantSummary := "5 added, 3 removed, 3 modified, 1 type changed, 1 metadata only\n"
		if stderr != wantSummary {
			t.Errorf("summary on stderr = %q, want %q", stderr, wantSummary)
		}
	})
	t.Run("json", func(t *testing.T) {
		out, _, err := f.run("diff", "--json", "--quiet", snap1, snap2)
		if err != nil {
			t.Fatal(err)
		}
		var got []diffEntry
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("diff --json:\n%v\nwant:\n%v", got, want)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		out, _, err := f.run("diff", snap2, snap1)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"+ " + src + "/a.txt\n", "T " + src + "/fifo\n", "- " + src + "/fifo/inner\n", "- " + src + "/newdir/y\n", "+ " + src + "/olddir/z\n"} {
			if !strings.Contains(out, line) {
				t.Errorf("reverse diff lacks %q:\n%s", line, out)
			}
		}
	})
	t.Run("same snapshot", func(t *testing.T) {
		out, stderr, err := f.run("diff", snap1, snap1)
		if err != nil || out != "" || !strings.HasPrefix(stderr, "0 added, 0 removed") {
			t.Errorf("diff of a snapshot with itself: %v, %q, %q", err, out, stderr)
		}
		out, _, err = f.run("--json", "diff", snap1, snap1)
		if err != nil || out != "[]\n" {
			t.Errorf("diff --json of a snapshot with itself: %v, %q", err, out)
		}
	})
	t.Run("subdirectory", func(t *testing.T) {
		out, _, err := f.run("diff", snap1+":"+src+"/sub", snap2+":"+src+"/sub")
		if err != nil || out != "U "+src+"/sub/big.bin\n" {
			t.Errorf("diff of a subdirectory: %v, %q", err, out)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, args := range [][]string{{"diff", snap1}, {"diff", snap1, "0000"}, {"diff", snap1, snap2 + ":/nope"}} {
			if _, _, err := f.run(args...); err == nil || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: err = %v, want a one-line error", args, err)
			}
		}
	})
}

func changeKindNamed(t *testing.T, name string) changeKind {
	for k, n := range changeNames {
		if n == name {
			return changeKind(k)
		}
	}
	t.Fatalf("no change kind %q", name)
	return 0
}

// countingLoader counts the trees a diff reads.
type countingLoader struct {
	r     *repo.Repository
	loads atomic.Int64
}

func (c *countingLoader) LoadTree(ctx context.Context, hk *repo.HostKey, treeID id.ID) (*tree.Tree, error) {
	c.loads.Add(1)
	return c.r.LoadTree(ctx, hk, treeID)
}

// TestDiffSkipsUnchangedSubtrees checks the point of a Merkle tree: a diff
// reads only the directories on the path to a change.
func TestDiffSkipsUnchangedSubtrees(t *testing.T) {
	f := newViewFixture(t)
	src := filepath.Join(t.TempDir(), "many")
	const dirs = 40
	for i := range dirs {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i), "deeper")
		mustDo(t, os.MkdirAll(d, 0o755))
		mustDo(t, os.WriteFile(filepath.Join(d, "f"), []byte{byte(i)}, 0o644))
	}
	touchAll(t, src)
	snap1 := f.backup(src)
	// No touchAll: it would move every ctime, and with it every tree ID.
	mustDo(t, os.WriteFile(filepath.Join(src, "d17", "deeper", "f"), []byte("changed"), 0o644))
	snap2 := f.backup(src)

	ctx := context.Background()
	st, err := local.Open(f.dir)
	mustDo(t, err)
	r, err := repo.Open(ctx, repo.Options{Storage: st, IndexDir: filepath.Join(f.dir, "index")},
		repo.Credentials{Password: []byte(viewTestPassword)})
	mustDo(t, err)
	defer r.Close()
	var roots [2]id.ID
	var hk *repo.HostKey
	for i, spec := range []string{snap1, snap2} {
		s, err := r.FindSnapshot(ctx, spec, "")
		mustDo(t, err)
		det, key, err := r.Details(ctx, s)
		mustDo(t, err)
		roots[i], hk = det.Tree, key
	}
	loader := &countingLoader{r: r}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	d := &differ{r: loader, hkA: hk, hkB: hk, out: &plainChangeWriter{w: w}}
	mustDo(t, d.trees(ctx, "/", roots[0], roots[1]))
	mustDo(t, w.Flush())
	if want := "M " + src + "/d17/deeper/f\n"; out.String() != want {
		t.Errorf("diff = %q, want %q", out.String(), want)
	}
	// Two trees (one per side) per directory from / down to deeper.
	depth := strings.Count(src, "/") + 3
	if got := loader.loads.Load(); got > int64(2*depth) {
		t.Errorf("diff read %d trees, want at most %d: unchanged subtrees must be skipped", got, 2*depth)
	}
}

func TestMetadataDiffers(t *testing.T) {
	base := tree.Node{Type: tree.File, Mode: 0o644, UID: 1, GID: 2, MTime: 5, ATime: 6, CTime: 7, Inode: 8, Links: 1,
		Xattrs: []tree.Xattr{{Name: "user.a", Value: []byte("1")}}}
	for _, tc := range []struct {
		name   string
		change func(n *tree.Node)
		want   bool
	}{
		{"nothing", func(*tree.Node) {}, false},
		{"mode", func(n *tree.Node) { n.Mode = 0o600 }, true},
		{"uid", func(n *tree.Node) { n.UID = 9 }, true},
		{"gid", func(n *tree.Node) { n.GID = 9 }, true},
		{"mtime", func(n *tree.Node) { n.MTime = 9 }, true},
		{"xattr value", func(n *tree.Node) { n.Xattrs = []tree.Xattr{{Name: "user.a", Value: []byte("2")}} }, true},
		{"xattr gone", func(n *tree.Node) { n.Xattrs = nil }, true},
		{"atime", func(n *tree.Node) { n.ATime = 9 }, false},
		{"ctime", func(n *tree.Node) { n.CTime = 9 }, false},
		{"inode", func(n *tree.Node) { n.Inode = 9 }, false},
		{"links", func(n *tree.Node) { n.Links = 9 }, false},
		{"dir mtime", func(n *tree.Node) { n.Type = tree.Dir; n.MTime = 9 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base, base
			tc.change(&b)
			a.Type = b.Type
			if got := metadataDiffers(&a, &b); got != tc.want {
				t.Errorf("metadataDiffers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContentDiffers(t *testing.T) {
	c1, c2 := tree.Chunk{ID: id.Hash([]byte("1")), Length: 1}, tree.Chunk{ID: id.Hash([]byte("2")), Length: 1}
	for _, tc := range []struct {
		name string
		a, b tree.Node
		want bool
	}{
		{"same file", tree.Node{Type: tree.File, Size: 1, Content: []tree.Chunk{c1}}, tree.Node{Type: tree.File, Size: 1, Content: []tree.Chunk{c1}}, false},
		{"other chunk", tree.Node{Type: tree.File, Size: 1, Content: []tree.Chunk{c1}}, tree.Node{Type: tree.File, Size: 1, Content: []tree.Chunk{c2}}, true},
		{"more chunks", tree.Node{Type: tree.File, Size: 2, Content: []tree.Chunk{c1, c2}}, tree.Node{Type: tree.File, Size: 2, Content: []tree.Chunk{c1}}, true},
		{"size only", tree.Node{Type: tree.File, Size: 1}, tree.Node{Type: tree.File, Size: 2}, true},
		{"symlink target", tree.Node{Type: tree.Symlink, LinkTarget: "a"}, tree.Node{Type: tree.Symlink, LinkTarget: "b"}, true},
		{"device", tree.Node{Type: tree.CharDev, Rdev: 1}, tree.Node{Type: tree.CharDev, Rdev: 2}, true},
		{"dirs", tree.Node{Type: tree.Dir, Subtree: c1.ID}, tree.Node{Type: tree.Dir, Subtree: c2.ID}, false},
	} {
		if got := contentDiffers(&tc.a, &tc.b); got != tc.want {
			t.Errorf("%s: contentDiffers = %v, want %v", tc.name, got, tc.want)
		}
	}
}
