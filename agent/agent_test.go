//go:build linux

package agent_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/local"
	"github.com/costor/costor/repo/tree"
)

var password = []byte("agent test password")

// testRepo is a local repository in a temporary directory plus everything
// a backup needs.
type testRepo struct {
	r       *repo.Repository
	dir     string
	opts    repo.Options
	keyer   *crypto.ChunkKeyer
	hk      *repo.HostKey
	backups agent.BackupOptions
	// hostKey: the host key pair a server client was opened with.
	hostKey *crypto.HostKey
}

func newTestRepo(t *testing.T, packSize int) *testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := repo.Options{Storage: st, IndexDir: filepath.Join(dir, "index"), LockWait: 5 * time.Second}
	r, err := repo.Init(t.Context(), opts, password, repo.InitOptions{KDF: &crypto.TestKDFParams, PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRepo{r: r, dir: dir, opts: opts}
	tr.setup(t)
	t.Cleanup(func() { tr.r.Close() })
	return tr
}

func (tr *testRepo) setup(t *testing.T) {
	t.Helper()
	secret, err := tr.r.OrgSecret()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := tr.r.HostKeyFor(t.Context(), "testhost")
	if err != nil {
		t.Fatal(err)
	}
	tr.keyer, tr.hk = crypto.NewChunkKeyer(secret), hk
	tr.backups = agent.BackupOptions{
		Keyer: tr.keyer, Polynomial: pol, HostKey: hk, Hostname: "testhost", Method: "none", Program: "test",
		ExcludePaths: []string{tr.dir},
	}
}

// reopen closes the repository and opens it again, optionally rebuilding
// the index.
func (tr *testRepo) reopen(t *testing.T, rebuild bool) {
	t.Helper()
	if err := tr.r.Close(); err != nil {
		t.Fatal(err)
	}
	opts := tr.opts
	opts.RebuildIndex = rebuild
	r, err := repo.Open(t.Context(), opts, repo.Credentials{Password: password})
	if err != nil {
		t.Fatal(err)
	}
	tr.r = r
	tr.setup(t)
}

func (tr *testRepo) backup(t *testing.T, modify func(*agent.BackupOptions)) *agent.BackupResult {
	t.Helper()
	opts := tr.backups
	modify(&opts)
	res, err := agent.Backup(t.Context(), tr.r, opts)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res
}

func (tr *testRepo) rootOf(t *testing.T, snapID id.ID) id.ID {
	t.Helper()
	return tr.parentOf(t, snapID).Tree
}

func (tr *testRepo) parent(t *testing.T, res *agent.BackupResult) *agent.Parent {
	t.Helper()
	return tr.parentOf(t, res.SnapshotID)
}

// parentOf is snapshot snapID as the CLI's findParent hands it to a
// backup: with the key its details were opened with.
func (tr *testRepo) parentOf(t *testing.T, snapID id.ID) *agent.Parent {
	t.Helper()
	s, err := tr.r.FindSnapshot(t.Context(), snapID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	det, key, err := tr.r.Details(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return &agent.Parent{ID: snapID, Tree: det.Tree, Key: key}
}

func (tr *testRepo) restore(t *testing.T, snapID id.ID, subpath string, opts agent.RestoreOptions) *agent.RestoreResult {
	t.Helper()
	res, err := agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, snapID), subpath, opts)
	if err != nil {
		t.Fatalf("restore %s: %v", subpath, err)
	}
	return res
}

func (tr *testRepo) resolve(t *testing.T, snapID id.ID, p string) (*tree.Node, error) {
	t.Helper()
	return agent.Resolve(t.Context(), tr.r, tr.hk, tr.rootOf(t, snapID), p)
}

var fixedTime = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

func writeFile(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = rng.Read(b)
	return b
}

// makeSource builds a tree with every kind of entry the engine must handle
// and returns the number of regular files in it.
func makeSource(t *testing.T, dir string) int {
	t.Helper()
	mkdir := func(p string, mode os.FileMode) {
		if err := os.Mkdir(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mkdir("sub", 0o750)
	mkdir("sub/deeper", 0o755)
	mkdir("emptydir", 0o700)
	mkdir("plain", 0o755) // no symlink below: its tree must never change
	mkdir("plain/inner", 0o755)
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"small.txt", []byte("hello, costor\n"), 0o640},
		{"empty", nil, 0o600},
		{"mid.bin", randomBytes(1, 100<<10), 0o644},
		{"chunky.bin", randomBytes(2, 700<<10), 0o644},
		{"big.bin", randomBytes(3, 9<<20), 0o755},
		{"sub/nested.txt", []byte("nested\n"), 0o644},
		{"plain/inner/f.dat", []byte("plain"), 0o644},
		{"sub/deeper/x.tmp", []byte("temporary"), 0o644},
		{"bad\xff\xfename", []byte("not utf-8"), 0o644},
		{"new\nline", []byte("newline in name"), 0o604},
		{"hard1", []byte("two names, one inode"), 0o644},
		{"setgid", []byte("mode bits"), 0o2755},
	}
	for _, f := range files {
		writeFile(t, filepath.Join(dir, f.name), f.data, f.mode)
	}
	if err := os.Link(filepath.Join(dir, "hard1"), filepath.Join(dir, "sub", "hard2")); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"small.txt", "link"}, {"/nonexistent/target", "sub/dangling"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	// Fixed, nanosecond-precise times, children before their directories.
	var paths []string
	_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		return nil
	})
	for i := len(paths) - 1; i >= 0; i-- {
		mt := fixedTime.Add(time.Duration(i) * time.Hour)
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	return len(files) + 1 // hard2
}

type entry struct {
	typ     fs.FileMode
	perm    fs.FileMode
	mtime   int64
	size    int64
	sum     [32]byte
	target  string
	inode   uint64
	nlink   uint64
	symlink bool
}

// listTree describes everything below dir by relative path.
func listTree(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{typ: fi.Mode().Type(), perm: fs.FileMode(st.Mode & 0o7777), mtime: st.Mtim.Nano(),
			inode: st.Ino, nlink: uint64(st.Nlink)}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.size, e.sum = int64(len(data)), sha256.Sum256(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			e.target, _ = os.Readlink(p)
			e.symlink = true
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameEntry compares everything but the inode.
func sameEntry(a, b entry) bool {
	a.inode, a.nlink, b.inode, b.nlink = 0, 0, 0, 0
	return a == b
}

// compareTrees checks that got holds exactly what want holds: types,
// contents, permission bits, symlink targets, mtimes to the nanosecond and
// hard links.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	w, g := listTree(t, want), listTree(t, got)
	for rel, we := range w {
		ge, ok := g[rel]
		if !ok {
			t.Errorf("%q missing from the restore", rel)
			continue
		}
		if ge.typ != we.typ || ge.size != we.size || ge.sum != we.sum || ge.target != we.target {
			t.Errorf("%q differs: got %+v, want %+v", rel, ge, we)
		}
		if !we.symlink && ge.perm != we.perm {
			t.Errorf("%q mode %#o, want %#o", rel, ge.perm, we.perm)
		}
		if ge.mtime != we.mtime {
			t.Errorf("%q mtime %v, want %v", rel, time.Unix(0, ge.mtime), time.Unix(0, we.mtime))
		}
	}
	for rel := range g {
		if _, ok := w[rel]; !ok {
			t.Errorf("%q restored but not in the source", rel)
		}
	}
	// Hard links: paths sharing an inode in the source share one in the
	// restore.
	groups := map[uint64][]string{}
	for rel, we := range w {
		if we.typ.IsRegular() && we.nlink > 1 {
			groups[we.inode] = append(groups[we.inode], rel)
		}
	}
	for _, names := range groups {
		for _, n := range names[1:] {
			if g[n].inode != g[names[0]].inode {
				t.Errorf("hard links %q and %q restored as separate files", names[0], n)
			}
		}
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	nFiles := makeSource(t, src)
	target := t.TempDir()
	progress := &agent.Progress{}

	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src}; o.Progress = progress })
	if len(res.Errors) != 0 || len(res.Changed) != 0 {
		t.Fatalf("backup errors %q, changed %q", res.Errors, res.Changed)
	}
	if res.Stats.FilesNew != uint64(nFiles) || res.Stats.FilesSame != 0 || res.Stats.BlobsAdded == 0 {
		t.Errorf("stats %+v, want %d new files", res.Stats, nFiles)
	}
	if got := progress.FilesDone.Load(); got != res.Stats.Files {
		t.Errorf("progress counted %d files done, stats %d", got, res.Stats.Files)
	}

	big, err := tr.resolve(t, res.SnapshotID, src+"/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if len(big.Content) < 2 || big.Size != 9<<20 {
		t.Errorf("a 9 MiB file stored as %d chunk(s) of total %d bytes", len(big.Content), big.Size)
	}
	for _, c := range big.Content {
		if c.Length > 8<<20 {
			t.Errorf("chunk of %d bytes exceeds the chunker maximum", c.Length)
		}
	}

	rres := tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target, Verify: true})
	compareTrees(t, src, target)
	// hard2 is a link, not a file written
	if rres.Files != uint64(nFiles-1) || rres.Verified != rres.Files {
		t.Errorf("restore result %+v, want %d files written and verified", rres, nFiles-1)
	}
	if len(rres.Warnings) != 0 {
		t.Errorf("restore warnings: %q", rres.Warnings)
	}

	// The whole snapshot restores each path under its absolute location.
	whole := t.TempDir()
	tr.restore(t, res.SnapshotID, "/", agent.RestoreOptions{Target: whole})
	compareTrees(t, src, filepath.Join(whole, src))

	// Restoring again over an existing restore replaces files in place.
	tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target})
	compareTrees(t, src, target)
}

// ancestorsStamp records the metadata of the directories above p, which a
// backup of p records too.
func ancestorsStamp(t *testing.T, p string) string {
	var b strings.Builder
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			t.Fatal(err)
		}
		b.WriteString(d + ":" + time.Unix(0, st.Mtim.Nano()).String() + time.Unix(0, st.Ctim.Nano()).String() + "\n")
		if d == "/" {
			return b.String()
		}
	}
}

func TestIncrementalBackup(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	nFiles := makeSource(t, src)
	only := func(o *agent.BackupOptions) { o.Paths = []string{src} }

	first := tr.backup(t, only)
	second := tr.backup(t, func(o *agent.BackupOptions) { only(o); o.Parent = tr.parent(t, first) })
	s := second.Stats
	if s.FilesSame != uint64(nFiles) || s.FilesNew != 0 || s.FilesChanged != 0 {
		t.Errorf("unchanged tree: stats %+v, want all %d files reused", s, nFiles)
	}
	if s.Files != first.Stats.Files || s.Bytes != first.Stats.Bytes || s.Dirs != first.Stats.Dirs {
		t.Errorf("second backup counted %+v, first %+v", s, first.Stats)
	}
	// Listing a directory must not move its atime (recorded in its
	// parent's tree), so a tree without symlinks keeps its ID at once.
	sameTree := func(p string, a, b id.ID) {
		t.Helper()
		na, err := tr.resolve(t, a, p)
		if err != nil {
			t.Fatal(err)
		}
		nb, err := tr.resolve(t, b, p)
		if err != nil {
			t.Fatal(err)
		}
		if na.Subtree != nb.Subtree {
			t.Errorf("unchanged directory %s got a new tree ID: %s → %s", p, na.Subtree.Short(), nb.Subtree.Short())
		}
	}
	sameTree(src+"/plain", first.SnapshotID, second.SnapshotID)

	// readlink moves a symlink's atime, which the tree records, so the
	// first backup's own reading changes the trees holding symlinks; from
	// then on (relatime) everything must stay put.
	stamp := ancestorsStamp(t, src)
	third := tr.backup(t, func(o *agent.BackupOptions) { only(o); o.Parent = tr.parent(t, second) })
	s = third.Stats
	if s.FilesSame != uint64(nFiles) || s.FilesNew != 0 || s.FilesChanged != 0 {
		t.Errorf("unchanged tree: stats %+v, want all %d files reused", s, nFiles)
	}
	sameTree(src, second.SnapshotID, third.SnapshotID)
	// Trees above src are only new if something else touched those
	// directories (other processes use /tmp too).
	if s.BlobsAdded != 0 {
		t.Logf("%d blobs added by an unchanged backup", s.BlobsAdded)
		if ancestorsStamp(t, src) == stamp {
			t.Errorf("unchanged tree added %d blobs", s.BlobsAdded)
		} else if s.BlobsAdded > uint64(strings.Count(src, "/")) {
			t.Errorf("unchanged tree added %d blobs, more than the directories above it", s.BlobsAdded)
		}
	}

	// Same size, new content.
	p := filepath.Join(src, "mid.bin")
	if err := os.WriteFile(p, randomBytes(99, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	fourth := tr.backup(t, func(o *agent.BackupOptions) { only(o); o.Parent = tr.parent(t, third) })
	s = fourth.Stats
	if s.FilesChanged != 1 || s.FilesSame != uint64(nFiles-1) || s.FilesNew != 0 {
		t.Errorf("one file changed: stats %+v", s)
	}
	if s.BlobsAdded < 2 { // the new chunk and at least the tree of src
		t.Errorf("one file changed but only %d blobs added", s.BlobsAdded)
	}
	target := t.TempDir()
	tr.restore(t, fourth.SnapshotID, src, agent.RestoreOptions{Target: target})
	compareTrees(t, src, target)
}

// reseal copies tree treeID and everything below it, opened with from, as
// trees sealed with to and always zstd-compressed (today's builds store a
// small tree raw when zstd saves little; another build may not have), and
// returns the copy's root. The copy of tree lie is stored under an ID that
// is not the hash of its bytes, as a damaged index or a lying server would
// hand it out.
func reseal(t *testing.T, tr *testRepo, from, to *repo.HostKey, treeID, lie id.ID) id.ID {
	t.Helper()
	tt, err := tr.r.LoadTree(t.Context(), from, treeID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tt.Nodes {
		if tt.Nodes[i].Type == tree.Dir {
			tt.Nodes[i].Subtree = reseal(t, tr, from, to, tt.Nodes[i].Subtree, lie)
		}
	}
	plain, err := tt.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	const zstdFrame = 1 // repo/compress's flag for a zstd frame
	sealed := to.SIV.Seal(nil, enc.EncodeAll(plain, []byte{zstdFrame}))
	copyID := id.Hash(sealed)
	if treeID == lie {
		copyID = id.Hash(append(sealed, 'x'))
	}
	if _, err := tr.r.SaveBlob(t.Context(), pack.TreeBlob, copyID, sealed, uint32(len(plain))); err != nil {
		t.Fatal(err)
	}
	if err := tr.r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return copyID
}

// TestUnchangedDirectoriesKeepParentTrees: a directory that encodes to the
// same bytes as its tree in the parent snapshot is that tree, even when
// sealing it again would give other bytes (a parent written by an older
// build); a changed directory gets a new tree; a parent tree whose stored
// bytes are not the ones its ID names is never named; and neither is one
// sealed with another data key, or the new snapshot would hold trees its
// own key cannot open.
func TestUnchangedDirectoriesKeepParentTrees(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	nFiles := makeSource(t, src)
	only := func(o *agent.BackupOptions) { o.Paths = []string{src} }
	first := tr.backup(t, only)
	subtree := func(snap id.ID, p string) id.ID {
		t.Helper()
		n, err := tr.resolve(t, snap, p)
		if err != nil {
			t.Fatal(err)
		}
		return n.Subtree
	}
	// resolve goes by a snapshot's root; walk a copy by hand.
	inCopy := func(root id.ID, p string) id.ID {
		t.Helper()
		cur := root
		for _, name := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			tt, err := tr.r.LoadTree(t.Context(), tr.hk, cur)
			if err != nil {
				t.Fatal(err)
			}
			n, ok := tt.Find(name)
			if !ok {
				t.Fatalf("%s: no %q in the copy", p, name)
			}
			cur = n.Subtree
		}
		return cur
	}
	// The parent as the CLI hands it over: with the key its details were
	// opened with, the same data key as tr.hk.
	oldBuild := tr.parent(t, first)
	parentKey := oldBuild.Key

	oldRoot := reseal(t, tr, tr.hk, tr.hk, tr.rootOf(t, first.SnapshotID), id.ID{})
	plain := src + "/plain"
	if inCopy(oldRoot, plain) == subtree(first.SnapshotID, plain) {
		t.Fatal("the copied tree seals to the same bytes: test is broken")
	}
	oldBuild.Tree = oldRoot
	second := tr.backup(t, func(o *agent.BackupOptions) { only(o); o.Parent = oldBuild })
	if s := second.Stats; s.FilesSame != uint64(nFiles) {
		t.Fatalf("stats %+v, want all %d files reused", s, nFiles)
	}
	for _, p := range []string{plain, plain + "/inner"} {
		if got, want := subtree(second.SnapshotID, p), inCopy(oldRoot, p); got != want {
			t.Errorf("unchanged %s: tree %s, want the parent's %s", p, got.Short(), want.Short())
		}
	}

	writeFile(t, filepath.Join(src, "plain", "inner", "g.dat"), []byte("new"), 0o644)
	third := tr.backup(t, func(o *agent.BackupOptions) { only(o); o.Parent = tr.parent(t, second) })
	if subtree(third.SnapshotID, plain+"/inner") == subtree(second.SnapshotID, plain+"/inner") {
		t.Error("a directory with a new file kept its old tree")
	}
	target := t.TempDir()
	tr.restore(t, third.SnapshotID, src, agent.RestoreOptions{Target: target, Verify: true})
	compareTrees(t, src, target)

	// A parent whose tree of plain/inner is stored under an ID that is
	// not its hash: its listing serves, its ID is not named.
	lyingRoot := reseal(t, tr, tr.hk, tr.hk, tr.rootOf(t, third.SnapshotID), subtree(third.SnapshotID, plain+"/inner"))
	fourth := tr.backup(t, func(o *agent.BackupOptions) {
		only(o)
		o.Parent = &agent.Parent{ID: third.SnapshotID, Tree: lyingRoot}
	})
	if s := fourth.Stats; s.FilesSame != uint64(nFiles+1) {
		t.Errorf("stats %+v, want all %d files reused through the listings", s, nFiles+1)
	}
	if got := subtree(fourth.SnapshotID, plain+"/inner"); got == inCopy(lyingRoot, plain+"/inner") {
		t.Errorf("plain/inner named the parent's tree %s, whose bytes do not hash to it", got.Short())
	}

	// A parent sealed with another data key: its listings are read, its
	// trees are not named.
	other, err := tr.r.HostKeyFor(t.Context(), "otherhost")
	if err != nil {
		t.Fatal(err)
	}
	if other.SameDataKey(tr.hk) || !parentKey.SameDataKey(tr.hk) {
		t.Fatal("data keys compare wrongly: test is broken")
	}
	foreignRoot := reseal(t, tr, tr.hk, other, tr.rootOf(t, third.SnapshotID), id.ID{})
	fifth := tr.backup(t, func(o *agent.BackupOptions) {
		only(o)
		o.Parent = &agent.Parent{ID: third.SnapshotID, Tree: foreignRoot, Key: other}
	})
	if s := fifth.Stats; s.FilesSame != uint64(nFiles+1) {
		t.Errorf("stats %+v, want all %d files reused through the other key's listings", s, nFiles+1)
	}
	for _, snap := range []id.ID{fourth.SnapshotID, fifth.SnapshotID} {
		target = t.TempDir()
		tr.restore(t, snap, src, agent.RestoreOptions{Target: target, Verify: true})
		compareTrees(t, src, target)
	}
}

// TestParentWithLostChunks: a parent whose chunks are gone must not be
// reused blindly, or the new snapshot would reference missing data.
func TestParentWithLostChunks(t *testing.T) {
	tr := newTestRepo(t, 1<<20)
	src := filepath.Join(t.TempDir(), "src")
	nFiles := makeSource(t, src)
	only := func(o *agent.BackupOptions) { o.Paths = []string{src} }
	first := tr.backup(t, only)
	parent := tr.parent(t, first)

	big, err := tr.resolve(t, first.SnapshotID, src+"/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	loc, ok, err := tr.r.Index().Lookup(t.Context(), big.Content[0].ID)
	if err != nil || !ok {
		t.Fatal(err)
	}
	if err := tr.r.Storage().Remove(t.Context(), storage.Handle{Kind: storage.KindPacks, Name: loc.Pack.String()}); err != nil {
		t.Fatal(err)
	}
	tr.reopen(t, true)

	// Which files still have every chunk?
	intact := 0
	srcTree, err := tr.resolve(t, first.SnapshotID, src)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(treeID id.ID)
	walk = func(treeID id.ID) {
		tt, err := tr.r.LoadTree(t.Context(), tr.hk, treeID)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tt.Nodes {
			switch n.Type {
			case tree.Dir:
				walk(n.Subtree)
			case tree.File:
				all := true
				for _, c := range n.Content {
					if has, _ := tr.r.HasBlob(t.Context(), c.ID); !has {
						all = false
					}
				}
				if all {
					intact++
				}
			}
		}
	}
	walk(srcTree.Subtree)
	if intact == nFiles {
		t.Fatal("removing a pack lost no chunk: test is broken")
	}

	second := tr.backup(t, func(o *agent.BackupOptions) { only(o); o.Parent = parent })
	s := second.Stats
	// Files whose chunks were all intact are reused. A file that shares a
	// lost chunk with another may be reused too once the other's re-read
	// has stored that chunk again (directories are listed in parallel, so
	// which comes first varies); the restore below proves nothing the new
	// snapshot references is missing.
	if s.FilesSame < uint64(intact) || s.FilesSame+s.FilesChanged != uint64(nFiles) || s.FilesChanged == 0 {
		t.Errorf("stats %+v, want at least %d of %d files reused and the rest read again", s, intact, nFiles)
	}
	target := t.TempDir()
	tr.restore(t, second.SnapshotID, src, agent.RestoreOptions{Target: target, Verify: true})
	compareTrees(t, src, target)
}

func TestBackupErrors(t *testing.T) {
	tr := newTestRepo(t, 0)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	makeSource(t, src)
	gone := filepath.Join(base, "gone")

	if _, err := agent.Backup(t.Context(), tr.r, tr.backups); err == nil {
		t.Error("backup without paths succeeded")
	}
	noKeys := tr.backups
	noKeys.Keyer = nil
	noKeys.Paths = []string{src}
	if _, err := agent.Backup(t.Context(), tr.r, noKeys); err == nil {
		t.Error("backup without keys succeeded")
	}

	var warned []string
	res := tr.backup(t, func(o *agent.BackupOptions) {
		o.Paths = []string{src, gone, src + "/sub"} // sub is inside src: dropped
		o.Warn = func(m string) { warned = append(warned, m) }
	})
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], gone) {
		t.Fatalf("errors %q, want one naming %s", res.Errors, gone)
	}
	if !slices.Equal(warned, res.Errors) {
		t.Errorf("warned %q, errors %q", warned, res.Errors)
	}
	s, err := tr.r.FindSnapshot(t.Context(), res.SnapshotID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := tr.r.Details(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(det.Errors, res.Errors) || !slices.Equal(det.Paths, []string{gone, src}) {
		t.Errorf("details: paths %q errors %q", det.Paths, det.Errors)
	}
	if _, err := tr.resolve(t, res.SnapshotID, src+"/small.txt"); err != nil {
		t.Errorf("the readable path is not in the snapshot: %v", err)
	}

	if os.Geteuid() == 0 {
		t.Log("running as root: every file is readable, skipping the unreadable-file case")
		return
	}
	locked := filepath.Join(src, "locked")
	writeFile(t, locked, []byte("secret"), 0o000)
	res = tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], locked) {
		t.Fatalf("errors %q, want one naming %s", res.Errors, locked)
	}
	if _, err := tr.resolve(t, res.SnapshotID, locked); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unreadable file in snapshot: %v", err)
	}
}

func TestExcludes(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	res := tr.backup(t, func(o *agent.BackupOptions) {
		o.Paths = []string{src}
		o.Excludes = []string{"*.tmp", src + "/emptydir", "*.bin"}
	})
	for p, want := range map[string]bool{
		"sub/deeper/x.tmp": false, "sub/deeper": true, "emptydir": false, "big.bin": false,
		"small.txt": true, "sub/nested.txt": true,
	} {
		_, err := tr.resolve(t, res.SnapshotID, src+"/"+p)
		if got := err == nil; got != want {
			t.Errorf("%s in snapshot: %v (%v), want %v", p, got, err, want)
		}
	}
}

func TestOneFileSystem(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	mnt := filepath.Join(src, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a second filesystem: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	writeFile(t, filepath.Join(mnt, "inside.txt"), []byte("other fs"), 0o644)

	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src}; o.OneFileSystem = true })
	n, err := tr.resolve(t, res.SnapshotID, mnt)
	if err != nil || n.Type != tree.Dir {
		t.Fatalf("mount point not recorded as a directory: %v", err)
	}
	if _, err := tr.resolve(t, res.SnapshotID, mnt+"/inside.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file on another filesystem backed up with OneFileSystem: %v", err)
	}
	res = tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	if _, err := tr.resolve(t, res.SnapshotID, mnt+"/inside.txt"); err != nil {
		t.Errorf("file on another filesystem missing without OneFileSystem: %v", err)
	}
}

func TestRestoreRefusesSymlinkedDirectory(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })

	outside := t.TempDir()
	target := t.TempDir()
	// The snapshot's first path component (tmp) points outside the target.
	first := strings.Split(strings.TrimPrefix(src, "/"), "/")[0]
	if err := os.Symlink(outside, filepath.Join(target, first)); err != nil {
		t.Fatal(err)
	}
	_, err := agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, res.SnapshotID), "/", agent.RestoreOptions{Target: target})
	if !errors.Is(err, agent.ErrUnsafePath) {
		t.Fatalf("restore through a planted symlink: %v, want ErrUnsafePath", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("restore wrote outside the target: %v", entries)
	}

	// The same at a deeper directory, inside a subpath restore.
	target = t.TempDir()
	if err := os.Symlink(outside, filepath.Join(target, "sub")); err != nil {
		t.Fatal(err)
	}
	_, err = agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, res.SnapshotID), src, agent.RestoreOptions{Target: target})
	if !errors.Is(err, agent.ErrUnsafePath) {
		t.Fatalf("restore through a planted sub symlink: %v, want ErrUnsafePath", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("restore wrote outside the target: %v", entries)
	}
}

func TestRestoreReplacesSymlinkedFile(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })

	victim := filepath.Join(t.TempDir(), "victim")
	writeFile(t, victim, []byte("must stay"), 0o644)
	target := t.TempDir()
	for _, name := range []string{"small.txt", "empty", "big.bin", "link"} {
		if err := os.Symlink(victim, filepath.Join(target, name)); err != nil {
			t.Fatal(err)
		}
	}
	tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target})
	if data, _ := os.ReadFile(victim); string(data) != "must stay" {
		t.Errorf("restore wrote through a symlink: victim holds %q", data)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Errorf("restore changed the victim's mode to %v", fi.Mode())
	}
	compareTrees(t, src, target)
}

func TestResolveStaysInsideSnapshot(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })

	want, err := tr.resolve(t, res.SnapshotID, src+"/small.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/../../" + src + "/small.txt",
		strings.TrimPrefix(src, "/") + "/sub/../small.txt",
		"../" + src + "/./small.txt",
	} {
		n, err := tr.resolve(t, res.SnapshotID, p)
		if err != nil || n.Inode != want.Inode || n.Name != "small.txt" {
			t.Errorf("resolve %q: %+v, %v", p, n, err)
		}
	}
	for _, p := range []string{"../etc/passwd", "/a/../../etc", src + "/small.txt/x"} {
		if n, err := tr.resolve(t, res.SnapshotID, p); err == nil {
			t.Errorf("resolve %q found %q", p, n.Name)
		}
	}
	if n, err := tr.resolve(t, res.SnapshotID, "/../.."); err != nil || n.Type != tree.Dir || n.Name != "/" {
		t.Errorf("resolve /../..: %+v, %v, want the root", n, err)
	}

	// A restore of an escaping subpath stays in the target.
	target := t.TempDir()
	tr.restore(t, res.SnapshotID, "../../../"+src+"/sub", agent.RestoreOptions{Target: target})
	compareTrees(t, filepath.Join(src, "sub"), target)

	// A tree entry named ".." cannot be written: the encoder refuses it.
	if _, _, _, err := repo.SealTree(tr.hk, &tree.Tree{Nodes: []tree.Node{{Name: "..", Type: tree.File}}}); err == nil {
		t.Error("a tree with an entry named .. was sealed")
	}
	if _, _, _, err := repo.SealTree(tr.hk, &tree.Tree{Nodes: []tree.Node{{Name: "a/b", Type: tree.File}}}); err == nil {
		t.Error("a tree with an entry named a/b was sealed")
	}
}

func TestRestoreSubsets(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	srcList := listTree(t, src)

	// A single file lands at Target/<base name>.
	target := t.TempDir()
	r := tr.restore(t, res.SnapshotID, src+"/sub/nested.txt", agent.RestoreOptions{Target: target, Verify: true})
	got := listTree(t, target)
	if len(got) != 1 || !sameEntry(got["nested.txt"], srcList["sub/nested.txt"]) {
		t.Errorf("single file restore: %+v", got)
	}
	if r.Files != 1 || r.Verified != 1 {
		t.Errorf("single file restore counted %+v", r)
	}
	// A symlink alone.
	target = t.TempDir()
	tr.restore(t, res.SnapshotID, src+"/link", agent.RestoreOptions{Target: target})
	if l, err := os.Readlink(filepath.Join(target, "link")); err != nil || l != "small.txt" {
		t.Errorf("symlink restore: %q, %v", l, err)
	}

	// A directory's contents go into Target.
	target = t.TempDir()
	tr.restore(t, res.SnapshotID, src+"/sub", agent.RestoreOptions{Target: target})
	compareTrees(t, filepath.Join(src, "sub"), target)

	// Includes by base name and by path.
	target = t.TempDir()
	r = tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target, Includes: []string{"*.txt", src + "/sub/deeper"}, Verify: true})
	got = listTree(t, target)
	wantNames := []string{"small.txt", "sub", "sub/nested.txt", "sub/deeper", "sub/deeper/x.tmp"}
	var gotNames []string
	for n := range got {
		gotNames = append(gotNames, n)
	}
	slices.Sort(gotNames)
	slices.Sort(wantNames)
	if !slices.Equal(gotNames, wantNames) {
		t.Errorf("includes restored %q, want %q", gotNames, wantNames)
	}
	for _, n := range wantNames {
		if !sameEntry(got[n], srcList[n]) {
			t.Errorf("%s restored as %+v, want %+v", n, got[n], srcList[n])
		}
	}
	if r.Files != 3 || r.Verified != 3 {
		t.Errorf("includes restore counted %+v, want 3 files verified", r)
	}

	// A path not in the snapshot.
	_, err := agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, res.SnapshotID), src+"/nope", agent.RestoreOptions{Target: t.TempDir()})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("restore of a missing path: %v, want fs.ErrNotExist", err)
	}
}

func TestRestoreDamagedChunkFails(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	n, err := tr.resolve(t, res.SnapshotID, src+"/mid.bin")
	if err != nil {
		t.Fatal(err)
	}
	loc, _, err := tr.r.Index().Lookup(t.Context(), n.Content[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	packPath := filepath.Join(tr.dir, "packs", loc.Pack.String()[:2], loc.Pack.String())
	f, err := os.OpenFile(packPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	if _, err := f.ReadAt(b, int64(loc.Offset)+10); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, int64(loc.Offset)+10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = agent.Restore(t.Context(), tr.r, tr.hk, tr.rootOf(t, res.SnapshotID), src+"/mid.bin", agent.RestoreOptions{Target: t.TempDir()})
	if !errors.Is(err, repo.ErrBlobCorrupt) {
		t.Errorf("restore of a damaged file: %v, want ErrBlobCorrupt", err)
	}
}

func TestSparseRestore(t *testing.T) {
	tr := newTestRepo(t, 0)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const hole = 64 << 20
	p := filepath.Join(src, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), hole+4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res := tr.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	target := t.TempDir()
	tr.restore(t, res.SnapshotID, src, agent.RestoreOptions{Target: target, Verify: true})
	compareTrees(t, src, target)
	fi, err := os.Stat(filepath.Join(target, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	allocated := fi.Sys().(*syscall.Stat_t).Blocks * 512
	if fi.Size() != hole+4100 || allocated > 1<<20 {
		t.Errorf("sparse file restored with size %d and %d bytes allocated", fi.Size(), allocated)
	}
	if res.Stats.BytesAdded > 1<<20 {
		t.Errorf("a 64 MiB hole stored as %d bytes", res.Stats.BytesAdded)
	}
	data, _ := os.ReadFile(filepath.Join(target, "sparse"))
	if !bytes.Equal(data[:4], []byte("head")) || !bytes.Equal(data[len(data)-4:], []byte("tail")) {
		t.Error("sparse file content wrong")
	}
}
