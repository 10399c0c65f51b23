//go:build linux

package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/mem"
	"github.com/costor/costor/repo/tree"
)

// memServer keeps a site server's rules in memory: it stores blobs only
// under the hash of their bytes, commits a snapshot only when it holds
// every blob the snapshot lists, and remembers each snapshot's list. It is
// the second implementation of repo.Remote; the real one (server/client
// against a real server) is exercised end to end in tests/.
type memServer struct {
	st *mem.Storage

	mu       sync.Mutex
	blobs    map[id.ID][]byte
	refs     map[id.ID]map[id.ID]bool
	missingQ int // Missing calls
	singleQ  int // Missing calls about one blob (HasBlob misses)
	uploaded int // blobs uploaded
}

var _ repo.Remote = (*memServer)(nil)

func (s *memServer) Missing(ctx context.Context, blobs []id.ID) ([]id.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missingQ++
	if len(blobs) == 1 {
		s.singleQ++
	}
	var out []id.ID
	for _, b := range blobs {
		if _, ok := s.blobs[b]; !ok {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s *memServer) Upload(ctx context.Context, blobs []repo.RemoteBlob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range blobs {
		if id.Hash(b.Data) != b.ID {
			return fmt.Errorf("blob %s does not hash to its ID", b.ID.Short())
		}
		s.blobs[b.ID] = append([]byte(nil), b.Data...)
		s.uploaded++
	}
	return nil
}

func (s *memServer) LoadBlob(ctx context.Context, blob id.ID) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[blob]
	if !ok {
		return nil, storage.ErrNotExist
	}
	return b, nil
}

func (s *memServer) Refs(ctx context.Context, snap id.ID, fn func(id.ID) error) error {
	s.mu.Lock()
	list := s.refs[snap]
	s.mu.Unlock()
	for b := range list {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

func (s *memServer) Commit(ctx context.Context, record []byte, refs io.Reader, n int64) error {
	data, err := io.ReadAll(refs)
	if err != nil {
		return err
	}
	if int64(len(data)) != n || n%id.Size != 0 {
		return fmt.Errorf("refs of %d bytes, announced %d", len(data), n)
	}
	set := map[id.ID]bool{}
	s.mu.Lock()
	for i := 0; i < len(data); i += id.Size {
		var b id.ID
		copy(b[:], data[i:])
		if _, ok := s.blobs[b]; !ok {
			s.mu.Unlock()
			return fmt.Errorf("blob %s: %w", b.Short(), repo.ErrMissingBlobs)
		}
		set[b] = true
	}
	snap := id.Hash(record)
	s.refs[snap] = set
	s.mu.Unlock()
	return s.st.Save(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: snap.String()}, bytes.NewReader(record), int64(len(record)))
}

// remoteFixture is one organisation's server and the means to open it as
// any of its hosts.
type remoteFixture struct {
	srv *memServer
	org crypto.OrgKey
}

func newRemoteFixture(t *testing.T) *remoteFixture {
	t.Helper()
	st := mem.New()
	// A repository config is all a server's storage needs for a client to
	// open it; Init writes one (and a key file the client never uses).
	r, err := repo.Init(t.Context(), repo.Options{Storage: st, IndexDir: filepath.Join(t.TempDir(), "init-index")},
		password, repo.InitOptions{KDF: &crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	secret, err := crypto.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	_, recPub, err := crypto.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return &remoteFixture{
		srv: &memServer{st: st, blobs: map[id.ID][]byte{}, refs: map[id.ID]map[id.ID]bool{}},
		org: crypto.OrgKey{Version: 1, Secret: secret, RecoveryPublic: recPub},
	}
}

// client opens the server as host, with a fresh cache index.
func (f *remoteFixture) client(t *testing.T, host string, hostKey *crypto.HostKey) *testRepo {
	t.Helper()
	opts := repo.Options{Storage: f.srv.st, Remote: f.srv, IndexDir: filepath.Join(t.TempDir(), "cache")}
	r, err := repo.Open(t.Context(), opts, repo.Credentials{Org: &f.org, Host: hostKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	tr := &testRepo{r: r, opts: opts, hostKey: hostKey}
	secret, _ := r.OrgSecret()
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := r.HostKeyFor(t.Context(), host)
	if err != nil {
		t.Fatal(err)
	}
	tr.keyer, tr.hk = crypto.NewChunkKeyer(secret), hk
	tr.backups = agent.BackupOptions{Keyer: tr.keyer, Polynomial: pol, HostKey: hk, Hostname: host, Method: "none", Program: "test"}
	return tr
}

func newHostKey(t *testing.T, host string) *crypto.HostKey {
	t.Helper()
	priv, _, err := crypto.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return &crypto.HostKey{Version: 1, Host: host, Private: priv}
}

// reachable lists every blob a snapshot's trees reach: its trees and the
// chunks of its files.
func reachable(t *testing.T, tr *testRepo, snapID id.ID) map[id.ID]bool {
	t.Helper()
	out := map[id.ID]bool{}
	var walk func(treeID id.ID)
	walk = func(treeID id.ID) {
		out[treeID] = true
		tt, err := tr.r.LoadTree(t.Context(), tr.hk, treeID)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tt.Nodes {
			switch n.Type {
			case tree.Dir:
				walk(n.Subtree)
			case tree.File:
				for _, c := range n.Content {
					out[c.ID] = true
				}
			}
		}
	}
	walk(tr.rootOf(t, snapID))
	return out
}

// checkRefs asserts the server's list for a snapshot names every blob the
// snapshot reaches: a server prunes by these lists, so one missing entry
// would be data lost.
func checkRefs(t *testing.T, f *remoteFixture, tr *testRepo, snapID id.ID) {
	t.Helper()
	f.srv.mu.Lock()
	refs := f.srv.refs[snapID]
	f.srv.mu.Unlock()
	if refs == nil {
		t.Fatalf("server has no reference list for snapshot %s", snapID.Short())
	}
	for b := range reachable(t, tr, snapID) {
		if !refs[b] {
			t.Errorf("snapshot %s reaches blob %s, but its reference list lacks it", snapID.Short(), b.Short())
		}
	}
}

func TestRemoteBackupReferencesEverything(t *testing.T) {
	f := newRemoteFixture(t)
	alpha := f.client(t, "alpha", newHostKey(t, "alpha"))
	src := t.TempDir()
	makeSource(t, src)
	for i := range 50 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("small-%02d", i)), randomBytes(uint64(100+i), 3000+i), 0o644)
	}
	writeFile(t, filepath.Join(src, "large"), randomBytes(7, 6<<20), 0o644)

	first := alpha.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	checkRefs(t, f, alpha, first.SnapshotID)
	if first.Stats.BlobsAdded != uint64(f.srv.uploaded) {
		t.Errorf("backup reports %d blobs added, the server received %d", first.Stats.BlobsAdded, f.srv.uploaded)
	}

	// Restore through the server equals the source.
	target := t.TempDir()
	alpha.restore(t, first.SnapshotID, "", agent.RestoreOptions{Target: target})
	compareTrees(t, src, filepath.Join(target, src))

	// An incremental backup on a new session: with the parent's list
	// loaded, reused files cost no question to the server each.
	writeFile(t, filepath.Join(src, "small-07"), randomBytes(999, 5000), 0o644)
	again := f.client(t, "alpha", alpha.hk2(t))
	if err := again.r.PrepareParent(t.Context(), first.SnapshotID); err != nil {
		t.Fatal(err)
	}
	f.srv.mu.Lock()
	f.srv.singleQ, f.srv.uploaded = 0, 0
	f.srv.mu.Unlock()
	second := again.backup(t, func(o *agent.BackupOptions) {
		o.Paths = []string{src}
		o.Parent = &agent.Parent{ID: first.SnapshotID, Tree: again.rootOf(t, first.SnapshotID)}
	})
	checkRefs(t, f, again, second.SnapshotID)
	if f.srv.singleQ != 0 {
		t.Errorf("incremental backup asked the server about %d single blobs; the parent's list should answer them", f.srv.singleQ)
	}
	if second.Stats.FilesSame == 0 {
		t.Fatalf("incremental backup reused no file: %+v", second.Stats)
	}
	if second.Stats.BlobsAdded != uint64(f.srv.uploaded) || second.Stats.BlobsAdded == 0 {
		t.Errorf("incremental backup reports %d blobs added, the server received %d", second.Stats.BlobsAdded, f.srv.uploaded)
	}
}

// hk2 is the key pair the fixture's host was opened with, for a second
// session of the same host.
func (tr *testRepo) hk2(t *testing.T) *crypto.HostKey {
	t.Helper()
	if tr.hostKey == nil {
		t.Fatal("test repository opened without a host key")
	}
	return tr.hostKey
}

func TestRemoteDedupAcrossHosts(t *testing.T) {
	f := newRemoteFixture(t)
	src := t.TempDir()
	for i := range 20 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), randomBytes(uint64(i), 200<<10), 0o644)
	}
	alpha := f.client(t, "alpha", newHostKey(t, "alpha"))
	a := alpha.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	beta := f.client(t, "beta", newHostKey(t, "beta"))
	b := beta.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	checkRefs(t, f, beta, b.SnapshotID)
	if b.Stats.BytesAdded*100 > a.Stats.BytesAdded {
		t.Errorf("second host added %d bytes for data the first stored in %d: dedup across hosts failed", b.Stats.BytesAdded, a.Stats.BytesAdded)
	}
	// beta seals its trees under its own key: alpha's host key opens none.
	if _, err := alpha.r.LoadTree(t.Context(), alpha.hk, beta.rootOf(t, b.SnapshotID)); err == nil {
		t.Error("alpha's key opened beta's root tree")
	}
}

func TestRemoteCommitRefusedWhenServerLostABlob(t *testing.T) {
	f := newRemoteFixture(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), randomBytes(1, 100<<10), 0o644)
	alpha := f.client(t, "alpha", newHostKey(t, "alpha"))
	first := alpha.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	// The server loses a chunk that this session believes stored.
	node, err := alpha.resolve(t, first.SnapshotID, filepath.Join(src, "a"))
	if err != nil {
		t.Fatal(err)
	}
	f.srv.mu.Lock()
	delete(f.srv.blobs, node.Content[0].ID)
	f.srv.mu.Unlock()
	writeFile(t, filepath.Join(src, "b"), randomBytes(2, 1000), 0o644)
	_, err = agent.Backup(t.Context(), alpha.r, func() agent.BackupOptions { o := alpha.backups; o.Paths = []string{src}; return o }())
	if !errors.Is(err, repo.ErrMissingBlobs) {
		t.Fatalf("backup over a lost blob: err = %v, want ErrMissingBlobs", err)
	}
	// The same session, asked again, sends the blob anew.
	if _, err := agent.Backup(t.Context(), alpha.r, func() agent.BackupOptions { o := alpha.backups; o.Paths = []string{src}; return o }()); err != nil {
		t.Fatalf("backup after the refused commit: %v", err)
	}
	f.srv.mu.Lock()
	_, back := f.srv.blobs[node.Content[0].ID]
	f.srv.mu.Unlock()
	if !back {
		t.Error("the backup after the refused commit did not send the lost blob again")
	}
}

// TestRemoteCheckFindsDamage: check on a server repository passes on
// intact data and, reading data, names the file whose chunk the server
// serves damaged; without reading data it names a chunk the server lost.
func TestRemoteCheckFindsDamage(t *testing.T) {
	f := newRemoteFixture(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), randomBytes(11, 300<<10), 0o644)
	writeFile(t, filepath.Join(src, "b"), randomBytes(12, 300<<10), 0o644)
	alpha := f.client(t, "alpha", newHostKey(t, "alpha"))
	res := alpha.backup(t, func(o *agent.BackupOptions) { o.Paths = []string{src} })
	for _, pct := range []float64{0, 100} {
		rep, err := alpha.r.Check(t.Context(), repo.CheckOptions{ReadDataPercent: pct})
		if err != nil || len(rep.Problems) != 0 || rep.Snapshots != 1 {
			t.Fatalf("check (read %v%%) of intact data: %+v, %v", pct, rep, err)
		}
	}
	a, err := alpha.resolve(t, res.SnapshotID, filepath.Join(src, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := alpha.resolve(t, res.SnapshotID, filepath.Join(src, "b"))
	if err != nil {
		t.Fatal(err)
	}
	f.srv.mu.Lock()
	f.srv.blobs[a.Content[0].ID][40] ^= 1 // damaged in place
	delete(f.srv.blobs, b.Content[0].ID)  // lost
	f.srv.mu.Unlock()

	rep, err := alpha.r.Check(t.Context(), repo.CheckOptions{ReadDataPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Affected, "\n"), filepath.Join(src, "a")) {
		t.Errorf("check --read-data does not name the damaged file: problems %q, affected %q", rep.Problems, rep.Affected)
	}
	rep, err = alpha.r.Check(t.Context(), repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Affected, "\n"), filepath.Join(src, "b")+" (chunk "+b.Content[0].ID.Short()+" is missing") {
		t.Errorf("check does not name the file whose chunk is gone: problems %q, affected %q", rep.Problems, rep.Affected)
	}
}
