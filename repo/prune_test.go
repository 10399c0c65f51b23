package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/mem"
	"github.com/costor/costor/repo/tree"
)

// pruneRepo is a repository with 1 MiB packs and what tests need to write
// snapshots into it directly.
type pruneRepo struct {
	e     *env
	r     *repo.Repository
	keyer *crypto.ChunkKeyer
	rng   *rand.Rand
}

func newPruneRepo(t *testing.T, e *env) *pruneRepo {
	t.Helper()
	r := e.init(t, repo.InitOptions{PackSize: 1 << 20})
	pr := &pruneRepo{e: e, r: r, rng: rand.New(rand.NewPCG(7, 8))}
	pr.setKeyer(t)
	t.Cleanup(func() { pr.r.Close() })
	return pr
}

func (pr *pruneRepo) setKeyer(t *testing.T) {
	t.Helper()
	secret, err := pr.r.OrgSecret()
	if err != nil {
		t.Fatal(err)
	}
	pr.keyer = crypto.NewChunkKeyer(secret)
}

// reopen closes the repository and opens it again: reconcile runs, and the
// host key cache is gone.
func (pr *pruneRepo) reopen(t *testing.T) {
	t.Helper()
	closeRepo(t, pr.r)
	pr.r = pr.e.open(t)
	pr.setKeyer(t)
}

// content is one file's plaintext stored as one chunk.
type content struct {
	data  []byte
	chunk tree.Chunk
}

// savePack stores n random incompressible chunks of size bytes and flushes,
// so they share one pack of their own, which it returns.
func (pr *pruneRepo) savePack(t *testing.T, n, size int) ([]content, id.ID) {
	t.Helper()
	ctx := t.Context()
	out := make([]content, n)
	for i := range out {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(pr.rng.Uint32())
		}
		c, sealed, _ := repo.SealChunk(pr.keyer, data, nil, nil)
		if _, err := pr.r.SaveBlob(ctx, pack.DataBlob, c.ID, sealed, c.Length); err != nil {
			t.Fatal(err)
		}
		out[i] = content{data: data, chunk: c}
	}
	flush(t, pr.r)
	p := packOf(t, pr.r, out[0].chunk.ID).Pack
	for _, c := range out[1:] {
		if got := packOf(t, pr.r, c.chunk.ID).Pack; got != p {
			t.Fatalf("chunks of one flush landed in packs %s and %s", p.Short(), got.Short())
		}
	}
	return out, p
}

// snap stores a snapshot of host whose root lists one file per content,
// named f000, f001, ... in the given order, and a subdirectory "sub"
// holding the first file again (so trees nest).
func (pr *pruneRepo) snap(t *testing.T, host string, when time.Time, files []content) id.ID {
	t.Helper()
	ctx := t.Context()
	hk, err := pr.r.HostKeyFor(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []tree.Node
	var total uint64
	for i, f := range files {
		nodes = append(nodes, tree.Node{Name: fmt.Sprintf("f%03d", i), Type: tree.File, Mode: 0o644,
			Size: uint64(len(f.data)), Content: []tree.Chunk{f.chunk}})
		total += uint64(len(f.data))
	}
	if len(files) > 0 {
		sub, err := pr.r.SaveTree(ctx, hk, &tree.Tree{Nodes: []tree.Node{
			{Name: "again", Type: tree.File, Mode: 0o644, Size: uint64(len(files[0].data)), Content: []tree.Chunk{files[0].chunk}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, tree.Node{Name: "sub", Type: tree.Dir, Mode: 0o755, Subtree: sub})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	root, err := pr.r.SaveTree(ctx, hk, &tree.Tree{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	det := &snapshot.Details{Paths: []string{"/data"}, Tree: root, Hostname: host, Method: "none", Program: "test",
		Stats: snapshot.Stats{Files: uint64(len(files)), Bytes: total}}
	s, err := pr.r.SaveSnapshot(ctx, hk, snapshot.Public{Time: when}, det)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verify reads snapshot s back file by file and fails unless every byte is
// what snap stored.
func (pr *pruneRepo) verify(t *testing.T, s id.ID, files []content) {
	t.Helper()
	ctx := t.Context()
	found, err := pr.r.FindSnapshot(ctx, s.String(), "")
	if err != nil {
		t.Fatalf("snapshot %s: %v", s.Short(), err)
	}
	det, hk, err := pr.r.Details(ctx, found)
	if err != nil {
		t.Fatalf("snapshot %s: %v", s.Short(), err)
	}
	root, err := pr.r.LoadTree(ctx, hk, det.Tree)
	if err != nil {
		t.Fatalf("snapshot %s: root tree: %v", s.Short(), err)
	}
	read := func(n *tree.Node, want []byte, name string) {
		var got []byte
		for _, c := range n.Content {
			if got, err = pr.r.ReadChunk(ctx, c, got); err != nil {
				t.Errorf("snapshot %s: %s: %v", s.Short(), name, err)
				return
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("snapshot %s: %s: %d bytes read differ from the %d stored", s.Short(), name, len(got), len(want))
		}
	}
	seen := 0
	for i := range root.Nodes {
		n := &root.Nodes[i]
		if n.Name == "sub" {
			sub, err := pr.r.LoadTree(ctx, hk, n.Subtree)
			if err != nil || len(sub.Nodes) != 1 {
				t.Fatalf("snapshot %s: subtree: %v", s.Short(), err)
			}
			read(&sub.Nodes[0], files[0].data, "sub/again")
			continue
		}
		var k int
		if _, err := fmt.Sscanf(n.Name, "f%03d", &k); err != nil || k >= len(files) {
			t.Fatalf("snapshot %s: unexpected node %q", s.Short(), n.Name)
		}
		read(n, files[k].data, n.Name)
		seen++
	}
	if seen != len(files) {
		t.Errorf("snapshot %s: %d files, want %d", s.Short(), seen, len(files))
	}
}

func (pr *pruneRepo) check(t *testing.T) {
	t.Helper()
	rep, err := pr.r.Check(t.Context(), repo.CheckOptions{ReadDataPercent: 100})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("check --read-data: %q", rep.Problems)
	}
}

func (pr *pruneRepo) prune(t *testing.T, opts repo.PruneOptions) *repo.PruneReport {
	t.Helper()
	rep, err := pr.r.Prune(t.Context(), opts)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	return rep
}

func (pr *pruneRepo) forget(t *testing.T, s id.ID) {
	t.Helper()
	if err := pr.r.ForgetSnapshot(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

// storedPacks maps every pack file to its size.
func storedPacks(t *testing.T, st storage.Storage) map[id.ID]int64 {
	t.Helper()
	packs := map[id.ID]int64{}
	if err := st.List(t.Context(), storage.KindPacks, func(fi storage.Info) error {
		p, err := id.Parse(fi.Handle.Name)
		if err != nil {
			return err
		}
		packs[p] = fi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return packs
}

func total(packs map[id.ID]int64) int64 {
	var n int64
	for _, s := range packs {
		n += s
	}
	return n
}

// indexDump describes the whole index that prune touches: packs, their
// blob lists, every blob's location, and the snapshots.
func indexDump(t *testing.T, r *repo.Repository) string {
	t.Helper()
	ctx := t.Context()
	x := r.Index()
	var b strings.Builder
	err := x.ForEachPack(ctx, func(p id.ID, size int64, blobs int) error {
		fmt.Fprintf(&b, "pack %s %d %d\n", p, size, blobs)
		entries, err := x.PackBlobs(ctx, p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			loc, ok, err := x.Lookup(ctx, e.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "  %v → %v %+v\n", e, ok, loc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = x.ForEachSnapshot(ctx, func(s id.ID, rec []byte) error {
		fmt.Fprintf(&b, "snapshot %s %x\n", s, id.Hash(rec))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// pruneFixture is the repository most prune tests start from:
//
//	garbage   10 chunks only the forgotten snapshot used: all garbage
//	mostly    10 chunks, 9 kept, 1 garbage (10% unused)
//	sparse    10 chunks, 2 kept, 8 garbage (80% unused)
//
// old (forgotten) uses everything; kept uses 9 of mostly, 2 of sparse and
// shares with old the chunks it keeps. Tree packs: one per SaveSnapshot.
type pruneFixture struct {
	*pruneRepo
	garbage, mostly, sparse id.ID
	old, kept               id.ID
	keptFiles, oldFiles     []content
}

func newPruneFixture(t *testing.T, e *env) *pruneFixture {
	t.Helper()
	f := &pruneFixture{pruneRepo: newPruneRepo(t, e)}
	var g, m, s []content
	g, f.garbage = f.savePack(t, 10, 40<<10)
	m, f.mostly = f.savePack(t, 10, 40<<10)
	s, f.sparse = f.savePack(t, 10, 40<<10)
	f.oldFiles = slices.Concat(g, m, s)
	f.keptFiles = slices.Concat(m[:9], s[:2])
	now := time.Now()
	f.old = f.snap(t, "h", now.Add(-time.Hour), f.oldFiles)
	f.kept = f.snap(t, "h", now, f.keptFiles)
	return f
}

func TestPruneThreshold(t *testing.T) {
	for _, tc := range []struct {
		percent                   float64
		mostlyGoes, sparseGoes    bool
		kept, repacked, rewritten int
	}{
		// 10% unused stays, 80% unused is repacked.
		{percent: 0, sparseGoes: true, kept: 2, repacked: 1, rewritten: 1},
		{percent: 20, sparseGoes: true, kept: 2, repacked: 1, rewritten: 1},
		// Anything above 5% unused is rewritten.
		{percent: 5, mostlyGoes: true, sparseGoes: true, kept: 1, repacked: 2, rewritten: 1},
		// Only packs more than 90% unused: sparse stays too.
		{percent: 90, kept: 3},
	} {
		t.Run(fmt.Sprint(tc.percent), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, e *env) {
				f := newPruneFixture(t, e)
				f.forget(t, f.old)
				before := storedPacks(t, e.st)
				rep := f.prune(t, repo.PruneOptions{RepackPercent: tc.percent})
				after := storedPacks(t, e.st)
				t.Logf("%+v", *rep)

				if _, ok := after[f.garbage]; ok {
					t.Error("the all-garbage pack is still there")
				}
				for _, p := range []struct {
					name string
					id   id.ID
					goes bool
				}{{"mostly", f.mostly, tc.mostlyGoes}, {"sparse", f.sparse, tc.sparseGoes}} {
					if _, ok := after[p.id]; ok == p.goes {
						t.Errorf("pack %s: still there = %v, want %v", p.name, ok, !p.goes)
					}
				}
				// Deleted: the garbage data pack and the old snapshot's tree pack.
				if rep.PacksDeleted != 2 || rep.PacksRepacked != tc.repacked || rep.PacksWritten != tc.rewritten || rep.PacksKept != tc.kept {
					t.Errorf("report %+v: want 2 deleted, %d repacked into %d, %d kept", *rep, tc.repacked, tc.rewritten, tc.kept)
				}
				if got := total(before) - total(after); rep.BytesFreed != got {
					t.Errorf("BytesFreed = %d, storage shrank by %d", rep.BytesFreed, got)
				}
				if rep.Snapshots != 1 || rep.BlobsUsed != 11+2 {
					t.Errorf("report %+v: want 1 snapshot, 13 blobs used (11 chunks, 2 trees)", *rep)
				}
				f.verify(t, f.kept, f.keptFiles)
				f.check(t)
				// Every chunk only the forgotten snapshot used is gone from
				// the index unless its pack stayed.
				for i, c := range f.oldFiles {
					has, err := f.r.HasBlob(t.Context(), c.chunk.ID)
					if err != nil {
						t.Fatal(err)
					}
					shared := (i >= 10 && i < 19) || (i >= 20 && i < 22)
					stays := shared || (i == 19 && !tc.mostlyGoes) || (i >= 22 && !tc.sparseGoes)
					if has != stays {
						t.Errorf("chunk %d of the forgotten snapshot: indexed = %v, want %v", i, has, stays)
					}
				}

				// Nothing left to do; and the result survives a reopen.
				again := f.prune(t, repo.PruneOptions{RepackPercent: tc.percent})
				if again.PacksDeleted != 0 || again.PacksRepacked != 0 || again.BytesFreed != 0 {
					t.Errorf("second prune still works: %+v", *again)
				}
				f.reopen(t)
				f.verify(t, f.kept, f.keptFiles)
				f.check(t)
				if got := storedPacks(t, e.st); len(got) != len(after) {
					t.Errorf("reopen changed the packs: %d → %d", len(after), len(got))
				}
			})
		})
	}
}

// TestPruneNothingForgotten: with every snapshot kept, prune deletes only
// what no snapshot ever referenced.
func TestPruneNothingForgotten(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		f := newPruneFixture(t, e)
		stray, strayPack := f.savePack(t, 3, 1000) // saved, never referenced
		before := storedPacks(t, e.st)
		rep := f.prune(t, repo.PruneOptions{})
		after := storedPacks(t, e.st)
		if rep.PacksDeleted != 1 || rep.PacksRepacked != 0 || rep.BlobsUnused != 3 {
			t.Errorf("report %+v: want only the stray pack deleted", *rep)
		}
		if _, ok := after[strayPack]; ok || len(after) != len(before)-1 {
			t.Errorf("packs %d → %d; stray pack still there: %v", len(before), len(after), ok)
		}
		if has, _ := f.r.HasBlob(t.Context(), stray[0].chunk.ID); has {
			t.Error("stray blob still indexed")
		}
		f.verify(t, f.old, f.oldFiles)
		f.verify(t, f.kept, f.keptFiles)
		f.check(t)
	})
}

func TestPruneDryRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		f := newPruneFixture(t, e)
		f.forget(t, f.old)
		packsBefore := storedPacks(t, e.st)
		indexBefore := indexDump(t, f.r)
		dry := f.prune(t, repo.PruneOptions{DryRun: true})
		if got := storedPacks(t, e.st); !mapsEqual(got, packsBefore) {
			t.Errorf("dry run changed the pack files: %v → %v", packsBefore, got)
		}
		if got := indexDump(t, f.r); got != indexBefore {
			t.Errorf("dry run changed the index:\nbefore:\n%s\nafter:\n%s", indexBefore, got)
		}
		if dry.BytesFreed != 0 || dry.PacksWritten != 0 || dry.BytesUnused <= 0 {
			t.Errorf("dry run report %+v: want nothing freed or written, unused bytes counted", *dry)
		}
		real := f.prune(t, repo.PruneOptions{})
		if dry.PacksDeleted != real.PacksDeleted || dry.PacksRepacked != real.PacksRepacked ||
			dry.PacksKept != real.PacksKept || dry.BlobsUnused != real.BlobsUnused || dry.BytesUnused != real.BytesUnused {
			t.Errorf("dry run planned %+v, the real prune did %+v", *dry, *real)
		}
		f.verify(t, f.kept, f.keptFiles)
	})
}

func mapsEqual(a, b map[id.ID]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPruneSharedBlobsSurvive: snapshots of two hosts share chunks; forget
// one host's snapshot and the other's data, including the shared chunks,
// stays whole.
func TestPruneSharedBlobsSurvive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		pr := newPruneRepo(t, e)
		a, _ := pr.savePack(t, 6, 30<<10)
		b, _ := pr.savePack(t, 6, 30<<10)
		now := time.Now()
		files1 := slices.Concat(a, b[:3])
		files2 := slices.Concat(b, a[:2])
		s1 := pr.snap(t, "alpha", now, files1)
		s2 := pr.snap(t, "beta", now.Add(time.Second), files2)
		pr.forget(t, s1)
		pr.prune(t, repo.PruneOptions{RepackPercent: 1})
		pr.reopen(t)
		pr.verify(t, s2, files2)
		pr.check(t)
		for _, c := range a[2:] {
			if has, _ := pr.r.HasBlob(t.Context(), c.chunk.ID); has {
				t.Errorf("chunk only the forgotten snapshot used is still indexed")
			}
		}
	})
}

// TestPruneDuplicates: a blob stored in two packs (left by a killed prune,
// or a pack that reappeared) counts once; the copy the index does not
// point at is garbage.
func TestPruneDuplicates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		pr := newPruneRepo(t, e)
		x, packA := pr.savePack(t, 1, 5000)
		sealedX, err := pr.r.LoadBlob(ctx, x[0].chunk.ID)
		if err != nil {
			t.Fatal(err)
		}
		dataA := loadAll(t, e.st, packHandle(packA))
		// Pack A vanishes; x is saved again, into pack B with z.
		if err := e.st.Remove(ctx, packHandle(packA)); err != nil {
			t.Fatal(err)
		}
		pr.reopen(t)
		if _, err := pr.r.SaveBlob(ctx, pack.DataBlob, x[0].chunk.ID, sealedX, x[0].chunk.Length); err != nil {
			t.Fatal(err)
		}
		z, packB := pr.savePack(t, 1, 5000)
		if got := packOf(t, pr.r, x[0].chunk.ID).Pack; got != packB {
			t.Fatalf("x was saved into %s, want %s with z", got.Short(), packB.Short())
		}
		// Pack A comes back: the next open indexes it, and x is in both.
		if err := e.st.Save(ctx, packHandle(packA), bytes.NewReader(dataA), int64(len(dataA))); err != nil {
			t.Fatal(err)
		}
		pr.reopen(t)
		holders := packsHolding(t, pr.r, x[0].chunk.ID)
		if len(holders) != 2 {
			t.Fatalf("x is listed in %d packs, want 2 (a duplicate)", len(holders))
		}
		files := []content{x[0], z[0]}
		s := pr.snap(t, "h", time.Now(), files)
		rep := pr.prune(t, repo.PruneOptions{})
		if rep.BlobsUnused != 1 || rep.PacksDeleted != 1 {
			t.Errorf("report %+v: want the duplicate counted as the one unused blob, its pack deleted", *rep)
		}
		if got := packsHolding(t, pr.r, x[0].chunk.ID); len(got) != 1 || got[0] != packB {
			t.Errorf("after prune x is in packs %v, want only %s", got, packB.Short())
		}
		if _, ok := storedPacks(t, e.st)[packA]; ok {
			t.Error("the pack with the duplicate copy is still stored")
		}
		pr.reopen(t)
		pr.verify(t, s, files)
		pr.check(t)
	})
}

// TestPruneUnindexedCopy: a used blob whose indexed pack vanished while
// another pack still holds a copy is not indexed, and check reports it
// missing; prune must not delete that last copy, and `repair index` (a
// rebuild) finds it again.
func TestPruneUnindexedCopy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		pr := newPruneRepo(t, e)
		x, packA := pr.savePack(t, 1, 5000)
		s := pr.snap(t, "h", time.Now(), x)
		sealedX, err := pr.r.LoadBlob(ctx, x[0].chunk.ID)
		if err != nil {
			t.Fatal(err)
		}
		// A second copy of x, in pack B, which the index points at: save
		// it while A is away, then bring A back.
		dataA := loadAll(t, e.st, packHandle(packA))
		if err := e.st.Remove(ctx, packHandle(packA)); err != nil {
			t.Fatal(err)
		}
		pr.reopen(t)
		if _, err := pr.r.SaveBlob(ctx, pack.DataBlob, x[0].chunk.ID, sealedX, x[0].chunk.Length); err != nil {
			t.Fatal(err)
		}
		flush(t, pr.r)
		packB := packOf(t, pr.r, x[0].chunk.ID).Pack
		if err := e.st.Save(ctx, packHandle(packA), bytes.NewReader(dataA), int64(len(dataA))); err != nil {
			t.Fatal(err)
		}
		pr.reopen(t)
		if got := packsHolding(t, pr.r, x[0].chunk.ID); len(got) != 2 {
			t.Fatalf("x listed in %d packs, want 2", len(got))
		}
		// Now B vanishes: the index forgets x's location, A still lists x.
		if err := e.st.Remove(ctx, packHandle(packB)); err != nil {
			t.Fatal(err)
		}
		pr.reopen(t)
		if got := packsHolding(t, pr.r, x[0].chunk.ID); len(got) != 1 || got[0] != packA {
			t.Fatalf("x listed in %v, want only pack A %s", got, packA.Short())
		}
		_, err = pr.r.Prune(ctx, repo.PruneOptions{})
		if !errors.Is(err, repo.ErrPruneUnsafe) || !strings.Contains(err.Error(), "repair index") {
			t.Errorf("prune: %v, want ErrPruneUnsafe pointing at `costor repair index`", err)
		}
		if _, ok := storedPacks(t, e.st)[packA]; !ok {
			t.Fatal("prune deleted the last copy of a used blob")
		}
		closeRepo(t, pr.r)
		opts := e.opts()
		opts.RebuildIndex = true
		if pr.r, err = repo.Open(ctx, opts, repo.Credentials{Password: password}); err != nil {
			t.Fatal(err)
		}
		pr.prune(t, repo.PruneOptions{})
		pr.verify(t, s, x)
		pr.check(t)
	})
}

func loadAll(t *testing.T, st storage.Storage, h storage.Handle) []byte {
	t.Helper()
	var data []byte
	if err := st.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return data
}

// packsHolding lists the packs whose blob list names b.
func packsHolding(t *testing.T, r *repo.Repository, b id.ID) []id.ID {
	t.Helper()
	ctx := t.Context()
	var holders []id.ID
	if err := r.Index().ForEachPack(ctx, func(p id.ID, _ int64, _ int) error {
		entries, err := r.Index().PackBlobs(ctx, p)
		for _, e := range entries {
			if e.ID == b {
				holders = append(holders, p)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return holders
}

// TestPruneUnsafe: whatever stops prune from proving a blob unused stops it
// before it deletes anything.
func TestPruneUnsafe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *pruneFixture)
		// rebuild the index after the damage (as `costor repair index`
		// would), so the index forgets what it cached.
		rebuild bool
	}{
		{"host key of a snapshot gone", func(t *testing.T, f *pruneFixture) {
			found, err := f.r.FindSnapshot(t.Context(), f.kept.String(), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.e.st.Remove(t.Context(), storage.Handle{Kind: storage.KindHostKeys, Name: found.HostKey}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"tree of a snapshot gone", func(t *testing.T, f *pruneFixture) {
			// The kept snapshot's tree pack holds only its trees.
			found, err := f.r.FindSnapshot(t.Context(), f.kept.String(), "")
			if err != nil {
				t.Fatal(err)
			}
			det, _, err := f.r.Details(t.Context(), found)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.e.st.Remove(t.Context(), packHandle(packOf(t, f.r, det.Tree).Pack)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"snapshot record damaged", func(t *testing.T, f *pruneFixture) {
			flipByte(t, f.e.st, storage.Handle{Kind: storage.KindSnapshots, Name: f.kept.String()}, 10)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, e *env) {
				f := newPruneFixture(t, e)
				f.forget(t, f.old)
				tc.damage(t, f)
				f.reopen(t)
				if tc.rebuild {
					closeRepo(t, f.r)
					opts := e.opts()
					opts.RebuildIndex = true
					r, err := repo.Open(t.Context(), opts, repo.Credentials{Password: password})
					if err != nil {
						t.Fatal(err)
					}
					f.r = r
				}
				before := storedPacks(t, e.st)
				_, err := f.r.Prune(t.Context(), repo.PruneOptions{})
				if !errors.Is(err, repo.ErrPruneUnsafe) {
					t.Fatalf("prune: %v, want ErrPruneUnsafe", err)
				}
				t.Logf("prune: %v", err)
				if after := storedPacks(t, e.st); !mapsEqual(before, after) {
					t.Errorf("an unsafe prune changed the packs: %d → %d", len(before), len(after))
				}
			})
		})
	}
}

// TestPruneDamagedBlobStopsRepack: a used blob that does not hash to its ID
// is never copied into a new pack as if it were good, and nothing is deleted.
func TestPruneDamagedBlobStopsRepack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		f := newPruneFixture(t, e)
		f.forget(t, f.old)
		loc := packOf(t, f.r, f.keptFiles[9].chunk.ID) // the first kept chunk of sparse
		if loc.Pack != f.sparse {
			t.Fatal("fixture: chunk not in sparse")
		}
		flipByte(t, e.st, packHandle(f.sparse), int64(loc.Offset)+7)
		before := storedPacks(t, e.st)
		_, err := f.r.Prune(t.Context(), repo.PruneOptions{})
		if !errors.Is(err, repo.ErrPruneUnsafe) || !strings.Contains(err.Error(), f.keptFiles[9].chunk.ID.Short()) {
			t.Fatalf("prune: %v, want ErrPruneUnsafe naming blob %s", err, f.keptFiles[9].chunk.ID.Short())
		}
		after := storedPacks(t, e.st)
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("pack %s deleted by a prune that failed", p.Short())
			}
		}
	})
}

// TestPruneRandom: many snapshots sharing chunks at random, a random subset
// forgotten, a random threshold; every kept snapshot reads back and check
// passes, and a second prune finds nothing more.
func TestPruneRandom(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			e := &env{st: mem.New(), indexDir: filepath.Join(t.TempDir(), "index")}
			pr := newPruneRepo(t, e)
			rng := rand.New(rand.NewPCG(seed, 99))
			pr.rng = rng
			var pool []content
			for range 8 {
				c, _ := pr.savePack(t, 5+rng.IntN(15), 1000+rng.IntN(50<<10))
				pool = append(pool, c...)
			}
			type kept struct {
				id    id.ID
				files []content
			}
			var snaps []kept
			now := time.Now()
			for i := range 10 {
				var files []content
				for _, c := range pool {
					if rng.IntN(3) == 0 {
						files = append(files, c)
					}
				}
				if len(files) == 0 {
					files = pool[:1]
				}
				snaps = append(snaps, kept{pr.snap(t, fmt.Sprintf("h%d", i%3), now.Add(time.Duration(i)*time.Minute), files), files})
			}
			var keep []kept
			for _, s := range snaps {
				if rng.IntN(2) == 0 {
					pr.forget(t, s.id)
				} else {
					keep = append(keep, s)
				}
			}
			before := total(storedPacks(t, e.st))
			opts := repo.PruneOptions{RepackPercent: float64(1 + rng.IntN(60))}
			rep := pr.prune(t, opts)
			t.Logf("kept %d of %d snapshots: %+v", len(keep), len(snaps), *rep)
			if got := before - total(storedPacks(t, e.st)); got != rep.BytesFreed {
				t.Errorf("BytesFreed = %d, storage shrank by %d", rep.BytesFreed, got)
			}
			for _, s := range keep {
				pr.verify(t, s.id, s.files)
			}
			pr.check(t)
			again := pr.prune(t, opts)
			if again.PacksDeleted != 0 || again.PacksRepacked != 0 || again.BytesFreed != 0 {
				t.Errorf("second prune with the same threshold: %+v, want nothing to do", *again)
			}
			// The smallest threshold rewrites every pack with any garbage;
			// afterwards there is none.
			pr.prune(t, repo.PruneOptions{RepackPercent: 1e-9})
			if dry := pr.prune(t, repo.PruneOptions{RepackPercent: 1e-9, DryRun: true}); dry.BlobsUnused != 0 || dry.BytesUnused != 0 {
				t.Errorf("after a prune with the smallest threshold: %+v, want nothing unused", *dry)
			}
			pr.check(t)
			pr.reopen(t)
			for _, s := range keep {
				pr.verify(t, s.id, s.files)
			}
		})
	}
}

// crashStorage fails pack writes and deletions after a budget of them, as
// if the process died there. With after set, the failing Save stores the
// pack first (death just after the write).
type crashStorage struct {
	storage.Storage
	mu      sync.Mutex
	limited bool
	budget  int
	after   bool
	ops     int
}

var errCrash = errors.New("simulated crash")

func (c *crashStorage) arm(budget int, after bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limited, c.budget, c.after, c.ops = true, budget, after, 0
}

func (c *crashStorage) disarm() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limited = false
	return c.ops
}

// spend reports whether the operation may go ahead.
func (c *crashStorage) spend() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops++
	if !c.limited {
		return true
	}
	c.budget--
	return c.budget >= 0
}

func (c *crashStorage) Save(ctx context.Context, h storage.Handle, data io.ReaderAt, size int64) error {
	if h.Kind != storage.KindPacks || c.spend() {
		return c.Storage.Save(ctx, h, data, size)
	}
	if c.after {
		if err := c.Storage.Save(ctx, h, data, size); err != nil {
			return err
		}
	}
	return errCrash
}

func (c *crashStorage) Remove(ctx context.Context, h storage.Handle) error {
	if h.Kind != storage.KindPacks || c.spend() {
		return c.Storage.Remove(ctx, h)
	}
	return errCrash
}

// TestPruneCrashAtEveryStep stops a prune at each of its pack writes and
// deletions in turn (before and just after a write); after each the
// reopened repository passes check with every kept snapshot whole, and a
// new prune finishes the job.
func TestPruneCrashAtEveryStep(t *testing.T) {
	setup := func(t *testing.T) (*pruneFixture, *crashStorage) {
		cs := &crashStorage{Storage: mem.New()}
		e := &env{st: cs, indexDir: filepath.Join(t.TempDir(), "index")}
		f := newPruneFixture(t, e)
		f.forget(t, f.old)
		return f, cs
	}
	f, cs := setup(t)
	cs.arm(1<<30, false)
	clean := f.prune(t, repo.PruneOptions{RepackPercent: 5})
	steps := cs.disarm()
	if steps < 4 {
		t.Fatalf("a clean prune made %d pack writes and deletions, want several (%+v)", steps, *clean)
	}
	wantPacks := len(storedPacks(t, f.e.st))
	for step := range steps {
		for _, after := range []bool{false, true} {
			t.Run(fmt.Sprintf("step%d-after%v", step, after), func(t *testing.T) {
				f, cs := setup(t)
				cs.arm(step, after)
				if _, err := f.r.Prune(t.Context(), repo.PruneOptions{RepackPercent: 5}); !errors.Is(err, errCrash) {
					t.Fatalf("prune: %v, want the simulated crash", err)
				}
				cs.disarm()
				f.reopen(t)
				f.verify(t, f.kept, f.keptFiles)
				f.check(t)
				f.prune(t, repo.PruneOptions{RepackPercent: 5})
				f.verify(t, f.kept, f.keptFiles)
				f.check(t)
				if got := len(storedPacks(t, f.e.st)); got != wantPacks {
					t.Errorf("after the crash and a second prune: %d packs, a clean prune leaves %d", got, wantPacks)
				}
			})
		}
	}
}
