package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/local"
	"github.com/costor/costor/repo/storage/mem"
	"github.com/costor/costor/repo/tree"
)

var password = []byte("correct horse battery staple")

// backend makes a fresh, empty storage for one test.
type backend struct {
	name string
	new  func(t *testing.T) storage.Storage
}

var backends = []backend{
	{"local", func(t *testing.T) storage.Storage {
		st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
	{"mem", func(*testing.T) storage.Storage { return mem.New() }},
	// Without storage.Streamer: packs are built in memory and saved whole.
	{"mem-no-stream", func(*testing.T) storage.Storage { return saveOnly{mem.New()} }},
}

// saveOnly hides every method beyond storage.Storage.
type saveOnly struct{ storage.Storage }

// forEachBackend runs fn once per storage backend, so every backend passes
// the same repository tests.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fn(t, &env{st: b.new(t), indexDir: filepath.Join(t.TempDir(), "index")})
		})
	}
}

type env struct {
	st       storage.Storage
	indexDir string
}

func (e *env) opts() repo.Options {
	return repo.Options{Storage: e.st, IndexDir: e.indexDir, LockWait: 5 * time.Second}
}

func (e *env) init(t *testing.T, io repo.InitOptions) *repo.Repository {
	t.Helper()
	if io.KDF == nil {
		io.KDF = &crypto.TestKDFParams
	}
	r, err := repo.Init(t.Context(), e.opts(), password, io)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	return r
}

func (e *env) open(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Open(t.Context(), e.opts(), repo.Credentials{Password: password})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r
}

func closeRepo(t *testing.T, r *repo.Repository) {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// randomBlob returns n random bytes and their ID (blobs are opaque to the
// repository: it only checks that the bytes hash to the ID).
func randomBlob(rng *rand.Rand, n int) (id.ID, []byte) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return id.Hash(b), b
}

func saveBlob(t *testing.T, r *repo.Repository, data []byte) id.ID {
	t.Helper()
	blobID := id.Hash(data)
	if _, err := r.SaveBlob(t.Context(), pack.DataBlob, blobID, data, uint32(len(data))); err != nil {
		t.Fatalf("save blob: %v", err)
	}
	return blobID
}

func flush(t *testing.T, r *repo.Repository) {
	t.Helper()
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func packOf(t *testing.T, r *repo.Repository, blobID id.ID) index.Location {
	t.Helper()
	loc, ok, err := r.Index().Lookup(t.Context(), blobID)
	if err != nil || !ok {
		t.Fatalf("lookup %s: ok=%v err=%v", blobID.Short(), ok, err)
	}
	return loc
}

func packHandle(p id.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindPacks, Name: p.String()}
}

// flipByte damages one byte of a stored object in place, through the
// storage API so that it works for every backend.
func flipByte(t *testing.T, st storage.Storage, h storage.Handle, off int64) {
	t.Helper()
	ctx := t.Context()
	var data []byte
	if err := st.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x55
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func TestInitOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		r := e.init(t, repo.InitOptions{})
		if !r.CanWrite() {
			t.Error("a repository opened with its password cannot write")
		}
		cfg := r.Config()
		closeRepo(t, r)

		r = e.open(t)
		if got := r.Config(); got.ID != cfg.ID || got.PackSize != cfg.PackSize {
			t.Errorf("config after reopen = %+v, want %+v", got, cfg)
		}
		closeRepo(t, r)

		_, err := repo.Open(ctx, e.opts(), repo.Credentials{Password: []byte("wrong")})
		if !errors.Is(err, repo.ErrWrongPassword) {
			t.Errorf("open with a wrong password: %v, want ErrWrongPassword", err)
		}
		_, err = repo.Init(ctx, e.opts(), password, repo.InitOptions{KDF: &crypto.TestKDFParams})
		if !errors.Is(err, repo.ErrExists) {
			t.Errorf("second init: %v, want ErrExists", err)
		}
		if _, err := repo.Init(ctx, e.opts(), nil, repo.InitOptions{}); err == nil {
			t.Error("init without a password succeeded")
		}
	})
}

func TestOpenEmpty(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		_, err := repo.Open(t.Context(), e.opts(), repo.Credentials{Password: password})
		if !errors.Is(err, repo.ErrNoRepository) {
			t.Fatalf("open of empty storage: %v, want ErrNoRepository", err)
		}
	})
}

// testSnapshot stores a snapshot of host whose tree holds docs/a.txt with
// the given content as one chunk. It returns the snapshot, its root tree
// and the data chunk.
func testSnapshot(t *testing.T, r *repo.Repository, host string, when time.Time, content []byte) (id.ID, id.ID, tree.Chunk) {
	t.Helper()
	ctx := t.Context()
	secret, err := r.OrgSecret()
	if err != nil {
		t.Fatal(err)
	}
	chunk, sealed, _ := repo.SealChunk(crypto.NewChunkKeyer(secret), content, nil, nil)
	if _, err := r.SaveBlob(ctx, pack.DataBlob, chunk.ID, sealed, chunk.Length); err != nil {
		t.Fatal(err)
	}
	hk, err := r.HostKeyFor(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := r.SaveTree(ctx, hk, &tree.Tree{Nodes: []tree.Node{
		{Name: "a.txt", Type: tree.File, Mode: 0o644, Size: uint64(len(content)), Content: []tree.Chunk{chunk}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.SaveTree(ctx, hk, &tree.Tree{Nodes: []tree.Node{
		{Name: "docs", Type: tree.Dir, Mode: 0o755, Subtree: docs},
	}})
	if err != nil {
		t.Fatal(err)
	}
	det := &snapshot.Details{Paths: []string{"/docs"}, Tree: root, Hostname: host, Method: "none", Program: "test",
		Stats: snapshot.Stats{Files: 1, Dirs: 2, Bytes: uint64(len(content))}}
	snapID, err := r.SaveSnapshot(ctx, hk, snapshot.Public{Time: when, Tags: []string{"t1"}}, det)
	if err != nil {
		t.Fatal(err)
	}
	return snapID, root, chunk
}

func TestRecoveryKeyReadsButCannotWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		priv, pub, err := crypto.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		secret, err := crypto.NewRandomKey()
		if err != nil {
			t.Fatal(err)
		}
		org := &crypto.OrgKey{Version: 1, Secret: secret, RecoveryPublic: pub}

		other, _, _ := crypto.GenerateKeyPair()
		if _, err := repo.Init(ctx, e.opts(), password, repo.InitOptions{Org: org, Recovery: &other, KDF: &crypto.TestKDFParams}); err == nil {
			t.Fatal("init accepted a recovery key that does not match the organisation key")
		}

		r := e.init(t, repo.InitOptions{Org: org, Recovery: &priv})
		if got, err := r.OrgSecret(); err != nil || got != secret {
			t.Fatalf("org secret of the repository is not the organisation's (err %v)", err)
		}
		content := []byte("recovered by the admin")
		snapID, root, chunk := testSnapshot(t, r, "alice-pc", time.Now(), content)
		closeRepo(t, r)

		r, err = repo.Open(ctx, e.opts(), repo.Credentials{Recovery: &priv})
		if err != nil {
			t.Fatalf("open with the recovery key: %v", err)
		}
		defer closeRepo(t, r)
		if r.CanWrite() {
			t.Error("recovery credentials report CanWrite")
		}
		s, err := r.FindSnapshot(ctx, "latest", "alice-pc")
		if err != nil || s.ID != snapID {
			t.Fatalf("find latest: %v, %v", s.ID, err)
		}
		det, hk, err := r.Details(ctx, s)
		if err != nil {
			t.Fatalf("details: %v", err)
		}
		if det.Tree != root {
			t.Errorf("details tree = %s, want %s", det.Tree.Short(), root.Short())
		}
		tr, err := r.LoadTree(ctx, hk, root)
		if err != nil || len(tr.Nodes) != 1 || tr.Nodes[0].Name != "docs" {
			t.Fatalf("load root tree: %+v, %v", tr, err)
		}
		got, err := r.ReadChunk(ctx, chunk, nil)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read chunk: %q, %v", got, err)
		}

		data := []byte("new blob")
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id.Hash(data), data, uint32(len(data))); !errors.Is(err, repo.ErrReadOnly) {
			t.Errorf("SaveBlob with recovery key: %v, want ErrReadOnly", err)
		}
		if _, err := r.OrgSecret(); !errors.Is(err, repo.ErrReadOnly) {
			t.Errorf("OrgSecret with recovery key: %v, want ErrReadOnly", err)
		}
		if _, err := r.HostKeyFor(ctx, "new-host"); !errors.Is(err, repo.ErrReadOnly) {
			t.Errorf("HostKeyFor a new host with recovery key: %v, want ErrReadOnly", err)
		}
	})
}

func TestHostKeysSeparateHosts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		r := e.init(t, repo.InitOptions{})
		defer closeRepo(t, r)
		a1, err := r.HostKeyFor(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		a2, err := r.HostKeyFor(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.HostKeyFor(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		if a1.Envelope != a2.Envelope {
			t.Errorf("host a got two envelopes: %s, %s", a1.Envelope, a2.Envelope)
		}
		if a1.Envelope == b.Envelope || a1.Host != "a" || b.Host != "b" {
			t.Errorf("hosts share a key: a=%+v b=%+v", a1, b)
		}
		// A tree sealed for host a does not open with host b's key.
		treeID, err := r.SaveTree(ctx, a1, &tree.Tree{})
		if err != nil {
			t.Fatal(err)
		}
		flush(t, r)
		if _, err := r.LoadTree(ctx, b, treeID); err == nil {
			t.Error("host b's key opened host a's tree")
		}
		if _, err := r.LoadTree(ctx, a2, treeID); err != nil {
			t.Errorf("load tree: %v", err)
		}
	})
}

func TestBlobs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		rng := rand.New(rand.NewPCG(1, 2))
		r := e.init(t, repo.InitOptions{})
		var ids []id.ID
		blobs := map[id.ID][]byte{}
		for _, n := range []int{1, 100, 4096, 300 << 10} {
			blobID, data := randomBlob(rng, n)
			added, err := r.SaveBlob(ctx, pack.DataBlob, blobID, data, uint32(n))
			if err != nil || !added {
				t.Fatalf("save blob of %d bytes: added=%v err=%v", n, added, err)
			}
			// Pending in this process: not new again.
			if added, err := r.SaveBlob(ctx, pack.DataBlob, blobID, data, uint32(n)); err != nil || added {
				t.Fatalf("duplicate pending SaveBlob: added=%v err=%v", added, err)
			}
			if has, _ := r.HasBlob(ctx, blobID); !has {
				t.Fatalf("HasBlob false for a pending blob")
			}
			ids = append(ids, blobID)
			blobs[blobID] = data
		}
		flush(t, r)
		for _, b := range ids {
			if added, err := r.SaveBlob(ctx, pack.DataBlob, b, blobs[b], 1); err != nil || added {
				t.Fatalf("duplicate indexed SaveBlob: added=%v err=%v", added, err)
			}
			got, err := r.LoadBlob(ctx, b)
			if err != nil || !bytes.Equal(got, blobs[b]) {
				t.Fatalf("load blob %s: %v", b.Short(), err)
			}
		}
		if st := r.BlobStats(); st.Blobs != uint64(len(ids)) || st.Packs != 1 {
			t.Errorf("blob stats = %+v, want %d blobs in 1 pack", st, len(ids))
		}
		missing := id.Hash([]byte("never stored"))
		if _, err := r.LoadBlob(ctx, missing); !errors.Is(err, repo.ErrBlobNotFound) {
			t.Errorf("load of unknown blob: %v, want ErrBlobNotFound", err)
		}
		closeRepo(t, r)

		r = e.open(t)
		defer closeRepo(t, r)
		for _, b := range ids {
			got, err := r.LoadBlob(ctx, b)
			if err != nil || !bytes.Equal(got, blobs[b]) {
				t.Fatalf("load blob %s after reopen: %v", b.Short(), err)
			}
		}

		victim := ids[2]
		loc := packOf(t, r, victim)
		flipByte(t, e.st, packHandle(loc.Pack), int64(loc.Offset)+int64(loc.Length)/2)
		if _, err := r.LoadBlob(ctx, victim); !errors.Is(err, repo.ErrBlobCorrupt) {
			t.Errorf("load of damaged blob: %v, want ErrBlobCorrupt", err)
		}
		// Its neighbours in the same pack are unharmed.
		if _, err := r.LoadBlob(ctx, ids[1]); err != nil {
			t.Errorf("load of undamaged neighbour: %v", err)
		}
	})
}

// TestCloseWithoutFlushLosesNothingVisible: blobs never flushed are not in
// the repository after reopening, and the repository stays valid.
func TestCloseWithoutFlush(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		r := e.init(t, repo.InitOptions{})
		b := saveBlob(t, r, []byte("pending only"))
		closeRepo(t, r)
		r = e.open(t)
		defer closeRepo(t, r)
		if has, err := r.HasBlob(t.Context(), b); err != nil || has {
			t.Fatalf("unflushed blob visible after reopen: has=%v err=%v", has, err)
		}
		// And it can be stored now.
		if added, err := r.SaveBlob(t.Context(), pack.DataBlob, b, []byte("pending only"), 12); err != nil || !added {
			t.Fatalf("save again: added=%v err=%v", added, err)
		}
		flush(t, r)
	})
}

func TestReconcileIndexesUnindexedPack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		r := e.init(t, repo.InitOptions{})
		a := saveBlob(t, r, []byte("blob a"))
		b := saveBlob(t, r, []byte("blob b"))
		flush(t, r)
		p := packOf(t, r, a).Pack
		// As if the process died between writing the pack and indexing it.
		if err := r.Index().RemovePack(ctx, p); err != nil {
			t.Fatal(err)
		}
		if has, _ := r.HasBlob(ctx, a); has {
			t.Fatal("blob still indexed after RemovePack")
		}
		closeRepo(t, r)

		r = e.open(t)
		defer closeRepo(t, r)
		for _, blob := range []id.ID{a, b} {
			if has, err := r.HasBlob(ctx, blob); err != nil || !has {
				t.Fatalf("blob %s not re-indexed: has=%v err=%v", blob.Short(), has, err)
			}
			if _, err := r.LoadBlob(ctx, blob); err != nil {
				t.Fatalf("load re-indexed blob: %v", err)
			}
		}
		if loc := packOf(t, r, b); loc.Pack != p {
			t.Errorf("blob b indexed in pack %s, want %s", loc.Pack.Short(), p.Short())
		}
	})
}

func TestReconcileDropsVanishedPack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		r := e.init(t, repo.InitOptions{})
		a := saveBlob(t, r, []byte("blob in a pack that will vanish"))
		flush(t, r)
		p := packOf(t, r, a).Pack
		closeRepo(t, r)
		if err := e.st.Remove(ctx, packHandle(p)); err != nil {
			t.Fatal(err)
		}
		r = e.open(t)
		defer closeRepo(t, r)
		if has, err := r.HasBlob(ctx, a); err != nil || has {
			t.Fatalf("blob of a vanished pack still indexed: has=%v err=%v", has, err)
		}
		// It can be stored again instead of being skipped as present.
		if added, err := r.SaveBlob(ctx, pack.DataBlob, a, []byte("blob in a pack that will vanish"), 1); err != nil || !added {
			t.Fatalf("re-save: added=%v err=%v", added, err)
		}
	})
}

func TestIndexMissingAndRebuild(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		rng := rand.New(rand.NewPCG(3, 4))
		r := e.init(t, repo.InitOptions{})
		blobs := map[id.ID][]byte{}
		for range 20 {
			b, data := randomBlob(rng, 1000+rng.IntN(100000))
			blobs[b] = data
			if _, err := r.SaveBlob(ctx, pack.DataBlob, b, data, uint32(len(data))); err != nil {
				t.Fatal(err)
			}
		}
		snapID, root, chunk := testSnapshot(t, r, "h", time.Now(), []byte("in a snapshot"))
		closeRepo(t, r)

		check := func(t *testing.T, r *repo.Repository) {
			t.Helper()
			for b, data := range blobs {
				got, err := r.LoadBlob(ctx, b)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("blob %s after rebuild: %v", b.Short(), err)
				}
			}
			s, err := r.FindSnapshot(ctx, snapID.String()[:10], "")
			if err != nil || s.ID != snapID {
				t.Fatalf("snapshot after rebuild: %v", err)
			}
			det, hk, err := r.Details(ctx, s)
			if err != nil || det.Tree != root {
				t.Fatalf("details after rebuild: %v", err)
			}
			if _, err := r.LoadTree(ctx, hk, root); err != nil {
				t.Fatalf("tree after rebuild: %v", err)
			}
			if _, err := r.ReadChunk(ctx, chunk, nil); err != nil {
				t.Fatalf("chunk after rebuild: %v", err)
			}
			if loc := packOf(t, r, root); loc.Type != pack.TreeBlob {
				t.Errorf("tree blob indexed as %s", loc.Type)
			}
		}

		if err := os.RemoveAll(e.indexDir); err != nil {
			t.Fatal(err)
		}
		_, err := repo.Open(ctx, e.opts(), repo.Credentials{Password: password})
		if !errors.Is(err, repo.ErrIndexMissing) {
			t.Fatalf("open without index: %v, want ErrIndexMissing", err)
		}
		opts := e.opts()
		opts.RebuildIndex = true
		r, err = repo.Open(ctx, opts, repo.Credentials{Password: password})
		if err != nil {
			t.Fatalf("open with RebuildIndex: %v", err)
		}
		check(t, r)
		closeRepo(t, r)

		// Rebuilding over an intact index gives the same result.
		r, err = repo.Open(ctx, opts, repo.Credentials{Password: password})
		if err != nil {
			t.Fatalf("second rebuild: %v", err)
		}
		check(t, r)
		closeRepo(t, r)

		// And a plain open afterwards uses the rebuilt index.
		r = e.open(t)
		check(t, r)
		closeRepo(t, r)
	})
}

func TestSnapshots(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		r := e.init(t, repo.InitOptions{})
		defer closeRepo(t, r)
		if _, err := r.FindSnapshot(ctx, "latest", ""); !errors.Is(err, repo.ErrSnapshotNotFound) {
			t.Errorf("latest in empty repository: %v, want ErrSnapshotNotFound", err)
		}
		base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		hosts := []string{"a", "b"}
		hks := map[string]*repo.HostKey{}
		for _, h := range hosts {
			hk, err := r.HostKeyFor(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			hks[h] = hk
		}
		emptyTree, err := r.SaveTree(ctx, hks["a"], &tree.Tree{})
		if err != nil {
			t.Fatal(err)
		}
		// 17 snapshots: two of them must share their first hex digit.
		var ids []id.ID
		details := map[id.ID]*snapshot.Details{}
		newest := map[string]id.ID{}
		for i := range 17 {
			h := hosts[i%2]
			if i == 16 {
				h = "a"
			}
			det := &snapshot.Details{
				Paths: []string{fmt.Sprintf("/data/%d", i), "/home/\xffx"}, Tree: emptyTree, Hostname: h,
				Username: "u", Excludes: []string{"*.tmp"}, Method: "none", Program: "test",
				Stats:  snapshot.Stats{Files: uint64(i), BytesAdded: 7, Duration: time.Second},
				Errors: []string{"/x: permission denied"},
			}
			// Insert out of time order to check sorting.
			when := base.Add(time.Duration((i*7)%17) * time.Hour)
			snapID, err := r.SaveSnapshot(ctx, hks[h], snapshot.Public{Time: when, Tags: []string{"daily"}}, det)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, snapID)
			details[snapID] = det
			if prev, ok := newest[h]; !ok || when.After(timeOf(t, r, prev)) {
				newest[h] = snapID
			}
		}
		list, err := r.Snapshots(ctx)
		if err != nil || len(list) != 17 {
			t.Fatalf("snapshots: %d, %v", len(list), err)
		}
		for i := 1; i < len(list); i++ {
			if list[i].Time.Before(list[i-1].Time) {
				t.Fatalf("snapshots not oldest first: %v before %v", list[i-1].Time, list[i].Time)
			}
		}
		for _, h := range hosts {
			s, err := r.FindSnapshot(ctx, "latest", h)
			if err != nil || s.ID != newest[h] || s.Host != h {
				t.Errorf("latest of %s = %s (%v), want %s", h, s.ID.Short(), err, newest[h].Short())
			}
		}
		if s, err := r.FindSnapshot(ctx, "latest", ""); err != nil || s.ID != list[len(list)-1].ID {
			t.Errorf("latest of any host = %s, %v", s.ID.Short(), err)
		}
		if _, err := r.FindSnapshot(ctx, "latest", "nobody"); !errors.Is(err, repo.ErrSnapshotNotFound) {
			t.Errorf("latest of unknown host: %v, want ErrSnapshotNotFound", err)
		}

		byFirst := map[byte][]id.ID{}
		for _, s := range ids {
			byFirst[s.String()[0]] = append(byFirst[s.String()[0]], s)
		}
		ambiguous := ""
		for c, group := range byFirst {
			if len(group) > 1 {
				ambiguous = string(c)
			}
		}
		tests := []struct {
			spec     string
			want     id.ID
			notFound bool // else: some other error
			fails    bool
		}{
			{spec: ids[3].String(), want: ids[3]},
			{spec: strings.ToUpper(ids[5].String()[:12]), want: ids[5]},
			{spec: ids[7].Short(), want: ids[7]},
			{spec: ambiguous, fails: true},
			{spec: "", fails: true, notFound: true},
			{spec: "zz", fails: true, notFound: true},
			{spec: strings.Repeat("0", 64), fails: true, notFound: true},
		}
		for _, tc := range tests {
			s, err := r.FindSnapshot(ctx, tc.spec, "a")
			switch {
			case tc.fails && err == nil:
				t.Errorf("FindSnapshot(%q) = %s, want an error", tc.spec, s.ID.Short())
			case tc.fails && tc.notFound != errors.Is(err, repo.ErrSnapshotNotFound):
				t.Errorf("FindSnapshot(%q): %v; want ErrSnapshotNotFound: %v", tc.spec, err, tc.notFound)
			case !tc.fails && (err != nil || s.ID != tc.want):
				t.Errorf("FindSnapshot(%q) = %s, %v; want %s", tc.spec, s.ID.Short(), err, tc.want.Short())
			}
		}

		// Details round trip for every snapshot.
		for _, s := range list {
			det, hk, err := r.Details(ctx, s)
			if err != nil {
				t.Fatalf("details %s: %v", s.ID.Short(), err)
			}
			want := details[s.ID]
			if hk.Host != s.Host || s.HostKey != hk.Envelope {
				t.Errorf("details of %s opened with host key %+v", s.ID.Short(), hk)
			}
			if fmt.Sprint(det) != fmt.Sprint(want) {
				t.Errorf("details of %s:\n got %+v\nwant %+v", s.ID.Short(), det, want)
			}
			if len(s.Tags) != 1 || s.Tags[0] != "daily" || s.Version != 1 {
				t.Errorf("public part of %s: %+v", s.ID.Short(), s.Public)
			}
		}
	})
}

func timeOf(t *testing.T, r *repo.Repository, s id.ID) time.Time {
	t.Helper()
	found, err := r.FindSnapshot(t.Context(), s.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	return found.Time
}

func TestCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		r := e.init(t, repo.InitOptions{})
		content := bytes.Repeat([]byte("costor check "), 1000)
		snapID, _, chunk := testSnapshot(t, r, "h", time.Now(), content)
		// A second snapshot sharing the chunk: both must be named.
		snap2, _, _ := testSnapshot(t, r, "h2", time.Now().Add(time.Minute), content)

		rep, err := r.Check(ctx, repo.CheckOptions{ReadDataPercent: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) > 0 || len(rep.DamagedPacks) > 0 || len(rep.Affected) > 0 {
			t.Fatalf("healthy repository has problems: %+v", rep)
		}
		packs := 0
		if err := e.st.List(ctx, storage.KindPacks, func(storage.Info) error { packs++; return nil }); err != nil {
			t.Fatal(err)
		}
		if rep.Snapshots != 2 || rep.Packs != packs || rep.PacksRead != packs || rep.Trees != 4 {
			t.Errorf("check counted %+v, want 2 snapshots, %d packs read, 4 trees", rep, packs)
		}

		loc := packOf(t, r, chunk.ID)
		flipByte(t, e.st, packHandle(loc.Pack), int64(loc.Offset)+3)
		rep, err = r.Check(ctx, repo.CheckOptions{ReadDataPercent: 100})
		if err != nil {
			t.Fatal(err)
		}
		if blobs := rep.DamagedPacks[loc.Pack]; len(blobs) != 1 || blobs[0] != chunk.ID {
			t.Errorf("damaged packs = %v, want pack %s with blob %s", rep.DamagedPacks, loc.Pack.Short(), chunk.ID.Short())
		}
		for _, s := range []id.ID{snapID, snap2} {
			want := "snapshot " + s.Short() + ": /docs/a.txt"
			if !containsPrefix(rep.Affected, want) {
				t.Errorf("affected = %q, want an entry starting %q", rep.Affected, want)
			}
		}
		if len(rep.Problems) == 0 {
			t.Error("damaged pack reported no problem")
		}
		// Without reading data the damage is invisible: structure is fine.
		rep, err = r.Check(ctx, repo.CheckOptions{})
		if err != nil || len(rep.Problems) != 0 || rep.PacksRead != 0 {
			t.Errorf("structure check with damaged data: %+v, %v", rep, err)
		}
		closeRepo(t, r)

		// Now the pack disappears altogether.
		if err := e.st.Remove(ctx, packHandle(loc.Pack)); err != nil {
			t.Fatal(err)
		}
		r = e.open(t)
		defer closeRepo(t, r)
		rep, err = r.Check(ctx, repo.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range rep.Problems {
			if strings.Contains(p, "chunk "+chunk.ID.Short()+" is missing") && strings.Contains(p, "/docs/a.txt") {
				found = true
			}
		}
		if !found {
			t.Errorf("problems = %q, want the missing chunk of /docs/a.txt", rep.Problems)
		}
		if !containsPrefix(rep.Affected, "snapshot "+snap2.Short()+": /docs/a.txt") {
			t.Errorf("affected = %q, want snapshot %s named too", rep.Affected, snap2.Short())
		}
	})
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestConcurrentSaveBlob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		// The smallest pack size, so packs fill and upload while blobs
		// are still being saved.
		r := e.init(t, repo.InitOptions{PackSize: 1 << 20})
		defer closeRepo(t, r)
		rng := rand.New(rand.NewPCG(5, 6))
		const n = 300
		ids := make([]id.ID, n)
		data := make([][]byte, n)
		for i := range n {
			ids[i], data[i] = randomBlob(rng, 1000+rng.IntN(40<<10))
		}
		added := make([]atomic.Int32, n)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				// Each goroutine saves a window of half the blobs, so every
				// blob is saved by several goroutines at once.
				for k := range n / 2 {
					i := (g*n/8 + k) % n
					ok, err := r.SaveBlob(ctx, pack.DataBlob, ids[i], data[i], uint32(len(data[i])))
					if err != nil {
						errs <- err
						return
					}
					if ok {
						added[i].Add(1)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		flush(t, r)
		for i := range n {
			if c := added[i].Load(); c != 1 {
				t.Errorf("blob %d reported new %d times, want once", i, c)
			}
			got, err := r.LoadBlob(ctx, ids[i])
			if err != nil || !bytes.Equal(got, data[i]) {
				t.Fatalf("blob %d: %v", i, err)
			}
		}
		if st := r.BlobStats(); st.Blobs != n || st.Packs < 2 {
			t.Errorf("stats %+v, want %d blobs in several packs", st, n)
		}
		_, blobs, _, err := r.Index().Stats(ctx)
		if err != nil || blobs != n {
			t.Errorf("index holds %d blobs (%v), want %d", blobs, err, n)
		}
	})
}

// failingStream is mem storage whose streamed objects fail once more than
// limit bytes are written to them, as a full disk does.
type failingStream struct {
	*mem.Storage
	limit int
}

func (f failingStream) Create(ctx context.Context, k storage.Kind) (storage.Pending, error) {
	p, err := f.Storage.Create(ctx, k)
	return &failingPending{Pending: p, left: f.limit}, err
}

type failingPending struct {
	storage.Pending
	left int
}

var errDiskFull = errors.New("no space left on device")

func (p *failingPending) Write(b []byte) (int, error) {
	if len(b) > p.left {
		return 0, errDiskFull
	}
	p.left -= len(b)
	return p.Pending.Write(b)
}

// TestPackWriteFailureStopsWrites: when a streamed pack cannot be written,
// the blobs already in it are lost, so the failing SaveBlob and every later
// SaveBlob and Flush fail (a snapshot must never reference them), and no
// pack is left behind.
func TestPackWriteFailureStopsWrites(t *testing.T) {
	st := failingStream{Storage: mem.New(), limit: 3 << 20}
	e := &env{st: st, indexDir: filepath.Join(t.TempDir(), "index")}
	r := e.init(t, repo.InitOptions{})
	defer closeRepo(t, r)
	rng := rand.New(rand.NewPCG(7, 8))
	var failed error
	for i := 0; i < 16 && failed == nil; i++ {
		blobID, data := randomBlob(rng, 512<<10)
		_, failed = r.SaveBlob(t.Context(), pack.DataBlob, blobID, data, uint32(len(data)))
	}
	if !errors.Is(failed, errDiskFull) {
		t.Fatalf("SaveBlob past the full disk = %v, want %v", failed, errDiskFull)
	}
	blobID, data := randomBlob(rng, 100)
	if _, err := r.SaveBlob(t.Context(), pack.DataBlob, blobID, data, 100); err == nil {
		t.Fatal("SaveBlob after a lost pack succeeded")
	}
	if err := r.Flush(t.Context()); err == nil {
		t.Fatal("Flush after a lost pack succeeded")
	}
	n := 0
	if err := st.List(t.Context(), storage.KindPacks, func(storage.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d packs stored, want none", n)
	}
}

// TestRefusedBlobKeepsPack: a blob the pack refuses (here an unknown type)
// fails alone; the blobs before and after it are stored.
func TestRefusedBlobKeepsPack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		r := e.init(t, repo.InitOptions{})
		defer closeRepo(t, r)
		first := saveBlob(t, r, []byte("before the refused blob"))
		bad := []byte("unknown type")
		if _, err := r.SaveBlob(t.Context(), pack.BlobType(7), id.Hash(bad), bad, uint32(len(bad))); err == nil {
			t.Fatal("SaveBlob of blob type 7 succeeded")
		}
		second := saveBlob(t, r, []byte("after the refused blob"))
		flush(t, r)
		for _, b := range []id.ID{first, second} {
			if _, err := r.LoadBlob(t.Context(), b); err != nil {
				t.Fatalf("blob %s: %v", b.Short(), err)
			}
		}
	})
}
