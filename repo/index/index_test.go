package index

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// testID returns a distinct, deterministic ID for (kind, n).
func testID(kind string, n int) id.ID {
	return id.Hash(binary.BigEndian.AppendUint64([]byte(kind), uint64(n)))
}

// testEntries returns n entries for blobs first..first+n-1.
func testEntries(first, n int) []pack.Entry {
	es := make([]pack.Entry, n)
	for i := range es {
		b := first + i
		es[i] = pack.Entry{
			Type:      pack.BlobType(b % 2),
			ID:        testID("blob", b),
			Offset:    uint32(i * 100),
			Length:    uint32(100),
			RawLength: uint32(150 + b%7),
		}
	}
	return es
}

func openTemp(t testing.TB, dir string) *Index {
	t.Helper()
	x, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return x
}

func openMem(t testing.TB) *Index {
	t.Helper()
	x, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatalf("Open in memory: %v", err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

func mustAdd(t testing.TB, x *Index, packID id.ID, size int64, es []pack.Entry) {
	t.Helper()
	if err := x.AddPack(context.Background(), packID, size, es); err != nil {
		t.Fatalf("AddPack %s: %v", packID.Short(), err)
	}
}

func wantLocation(t *testing.T, x *Index, e pack.Entry, packID id.ID) {
	t.Helper()
	loc, ok, err := x.Lookup(context.Background(), e.ID)
	if err != nil || !ok {
		t.Fatalf("Lookup %s = %v, %v; want found", e.ID.Short(), ok, err)
	}
	want := Location{Pack: packID, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLength: e.RawLength}
	if loc != want {
		t.Fatalf("Lookup %s = %+v, want %+v", e.ID.Short(), loc, want)
	}
}

func wantAbsent(t *testing.T, x *Index, blob id.ID) {
	t.Helper()
	_, ok, err := x.Lookup(context.Background(), blob)
	if err != nil || ok {
		t.Fatalf("Lookup %s = %v, %v; want absent", blob.Short(), ok, err)
	}
	has, err := x.Has(context.Background(), blob)
	if err != nil || has {
		t.Fatalf("Has %s = %v, %v; want false", blob.Short(), has, err)
	}
}

func TestAddPackLookup(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		entries []pack.Entry
	}{
		{"empty pack", nil},
		{"one blob", testEntries(0, 1)},
		{"data and tree blobs", testEntries(10, 57)},
		{"max field values", []pack.Entry{{Type: pack.TreeBlob, ID: testID("max", 0), Offset: ^uint32(0), Length: ^uint32(0), RawLength: ^uint32(0)}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := openMem(t)
			packID := testID("pack", i)
			if has, err := x.HasPack(ctx, packID); err != nil || has {
				t.Fatalf("HasPack before AddPack = %v, %v", has, err)
			}
			mustAdd(t, x, packID, 1<<40+int64(i), tt.entries)
			if has, err := x.HasPack(ctx, packID); err != nil || !has {
				t.Fatalf("HasPack after AddPack = %v, %v", has, err)
			}
			for _, e := range tt.entries {
				wantLocation(t, x, e, packID)
				if has, err := x.Has(ctx, e.ID); err != nil || !has {
					t.Fatalf("Has %s = %v, %v", e.ID.Short(), has, err)
				}
			}
			wantAbsent(t, x, testID("other", 0))

			var packs int
			err := x.ForEachPack(ctx, func(p id.ID, size int64, blobs int) error {
				packs++
				if p != packID || size != 1<<40+int64(i) || blobs != len(tt.entries) {
					t.Errorf("ForEachPack got %s %d %d", p.Short(), size, blobs)
				}
				return nil
			})
			if err != nil || packs != 1 {
				t.Fatalf("ForEachPack: %d packs, %v", packs, err)
			}
			got := map[id.ID]Location{}
			if err := x.ForEachBlob(ctx, func(b id.ID, loc Location) error { got[b] = loc; return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.entries) {
				t.Fatalf("ForEachBlob saw %d blobs, want %d", len(got), len(tt.entries))
			}
			for _, e := range tt.entries {
				if got[e.ID].Pack != packID || got[e.ID].Offset != e.Offset {
					t.Fatalf("ForEachBlob %s = %+v", e.ID.Short(), got[e.ID])
				}
			}
			list, err := x.PackBlobs(ctx, packID)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tt.entries)
			slices.SortFunc(want, func(a, b pack.Entry) int { return strings.Compare(string(a.ID[:]), string(b.ID[:])) })
			if !slices.Equal(list, want) {
				t.Fatalf("PackBlobs = %v, want %v", list, want)
			}
		})
	}
}

func TestAddPackRejectsBadInput(t *testing.T) {
	x := openMem(t)
	bad := testEntries(0, 3)
	bad[2].Type = 7
	if err := x.AddPack(context.Background(), testID("pack", 0), 10, bad); err == nil {
		t.Fatal("AddPack accepted blob type 7")
	}
	if err := x.AddPack(context.Background(), testID("pack", 0), -1, nil); err == nil {
		t.Fatal("AddPack accepted a negative size")
	}
	if _, blobs, _, _ := x.Stats(context.Background()); blobs != 0 {
		t.Fatalf("rejected AddPack left %d blobs", blobs)
	}
}

func TestMissing(t *testing.T) {
	ctx := context.Background()
	x := openMem(t)
	mustAdd(t, x, testID("pack", 0), 1000, testEntries(0, 100))
	tests := []struct {
		name  string
		query []int // blob numbers; >= 100 are not indexed
		want  []int
	}{
		{"none asked", nil, nil},
		{"all present", []int{0, 5, 99}, nil},
		{"all missing", []int{100, 200}, []int{100, 200}},
		{"mixed keeps order", []int{300, 1, 150, 2, 100}, []int{300, 150, 100}},
		{"repeated", []int{101, 101, 3}, []int{101, 101}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q, want []id.ID
			for _, n := range tt.query {
				q = append(q, testID("blob", n))
			}
			for _, n := range tt.want {
				want = append(want, testID("blob", n))
			}
			got, err := x.Missing(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Missing = %v, want %v", got, want)
			}
		})
	}
}

func TestRemovePack(t *testing.T) {
	ctx := context.Background()
	x := openMem(t)
	a, b := testID("pack", 1), testID("pack", 2)
	ea, eb := testEntries(0, 50), testEntries(50, 50)
	mustAdd(t, x, a, 100, ea)
	mustAdd(t, x, b, 200, eb)
	if err := x.RemovePack(ctx, a); err != nil {
		t.Fatal(err)
	}
	if has, _ := x.HasPack(ctx, a); has {
		t.Fatal("removed pack still indexed")
	}
	for _, e := range ea {
		wantAbsent(t, x, e.ID)
	}
	for _, e := range eb {
		wantLocation(t, x, e, b)
	}
	if list, err := x.PackBlobs(ctx, a); err != nil || len(list) != 0 {
		t.Fatalf("PackBlobs of removed pack = %d entries, %v", len(list), err)
	}
	packs, blobs, _, err := x.Stats(ctx)
	if err != nil || packs != 1 || blobs != 50 {
		t.Fatalf("Stats = %d packs, %d blobs, %v; want 1, 50", packs, blobs, err)
	}
	// Removing an unknown pack is harmless.
	if err := x.RemovePack(ctx, testID("pack", 99)); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicatesAcrossPacks(t *testing.T) {
	ctx := context.Background()
	a, b, c := testID("pack", 1), testID("pack", 2), testID("pack", 3)
	shared := testEntries(0, 10)
	inB := slices.Clone(shared)
	for i := range inB {
		inB[i].Offset += 5000 // the same blob at another place
	}

	t.Run("first pack wins", func(t *testing.T) {
		x := openMem(t)
		mustAdd(t, x, a, 1, shared)
		mustAdd(t, x, b, 2, append(slices.Clone(inB), testEntries(10, 5)...))
		for _, e := range shared {
			wantLocation(t, x, e, a)
		}
		for _, e := range testEntries(10, 5) {
			wantLocation(t, x, e, b)
		}
		// B still lists what it holds.
		list, err := x.PackBlobs(ctx, b)
		if err != nil || len(list) != 15 {
			t.Fatalf("PackBlobs(b) = %d entries, %v; want 15", len(list), err)
		}
		// Removing B must not take A's locations with it.
		if err := x.RemovePack(ctx, b); err != nil {
			t.Fatal(err)
		}
		for _, e := range shared {
			wantLocation(t, x, e, a)
		}
		for _, e := range testEntries(10, 5) {
			wantAbsent(t, x, e.ID)
		}
	})

	t.Run("removed pack loses its locations and a new copy takes over", func(t *testing.T) {
		x := openMem(t)
		mustAdd(t, x, a, 1, shared)
		mustAdd(t, x, b, 2, inB)
		if err := x.RemovePack(ctx, a); err != nil {
			t.Fatal(err)
		}
		for _, e := range shared {
			wantAbsent(t, x, e.ID) // B's copy is not promoted: see RemovePack
		}
		mustAdd(t, x, c, 3, shared)
		for _, e := range shared {
			wantLocation(t, x, e, c)
		}
	})

	t.Run("location in a pack without record is replaced", func(t *testing.T) {
		x := openMem(t)
		// What a crash between the split transactions of a huge pack leaves.
		err := x.db.Update(func(txn *badger.Txn) error {
			k := idKey(prefixBlob, shared[0].ID)
			return txn.Set(k[:], appendLocation(nil, Location{Pack: a, Offset: 1, Length: 2}))
		})
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, x, b, 2, inB)
		wantLocation(t, x, inB[0], b)
	})

	t.Run("re-adding the same pack is idempotent", func(t *testing.T) {
		x := openMem(t)
		mustAdd(t, x, a, 1, shared)
		mustAdd(t, x, a, 1, shared)
		for _, e := range shared {
			wantLocation(t, x, e, a)
		}
		packs, blobs, _, err := x.Stats(ctx)
		if err != nil || packs != 1 || blobs != len(shared) {
			t.Fatalf("Stats = %d, %d, %v", packs, blobs, err)
		}
	})
}

func TestHugePackSplitsTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	x := openMem(t)
	// More writes than one transaction of a 32 MiB memtable takes.
	n := int(x.db.MaxBatchCount()) + 1000 // two keys per blob: at least two transactions
	es := testEntries(0, n)
	p := testID("pack", 0)
	before := splitCount.Load()
	mustAdd(t, x, p, 1, es)
	if splitCount.Load() == before {
		t.Fatalf("AddPack of %d blobs did not split its transaction; the test tests nothing", n)
	}
	packs, blobs, _, err := x.Stats(ctx)
	if err != nil || packs != 1 || blobs != n {
		t.Fatalf("Stats = %d packs, %d blobs, %v; want 1, %d", packs, blobs, err, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		wantLocation(t, x, es[i], p)
	}
	if err := x.RemovePack(ctx, p); err != nil {
		t.Fatal(err)
	}
	if packs, blobs, _, _ := x.Stats(ctx); packs != 0 || blobs != 0 {
		t.Fatalf("after RemovePack: %d packs, %d blobs", packs, blobs)
	}
}

func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	x := openMem(t)
	s1, s2, s3 := testID("snap", 1), testID("snap", 2), testID("snap", 3)
	rec := []byte("record one")
	for _, s := range []struct {
		id  id.ID
		rec []byte
	}{{s1, rec}, {s2, []byte{}}, {s3, []byte("three")}} {
		if err := x.PutSnapshot(ctx, s.id, s.rec); err != nil {
			t.Fatal(err)
		}
	}
	rec[0] = 'X' // the index must have copied it
	if err := x.PutSnapshot(ctx, s3, []byte("three, replaced")); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteSnapshot(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteSnapshot(ctx, testID("snap", 9)); err != nil {
		t.Fatalf("deleting an unknown snapshot: %v", err)
	}
	got := map[id.ID]string{}
	var kept [][]byte
	err := x.ForEachSnapshot(ctx, func(s id.ID, r []byte) error {
		got[s] = string(r)
		kept = append(kept, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[id.ID]string{s1: "record one", s3: "three, replaced"}
	if len(got) != len(want) || got[s1] != want[s1] || got[s3] != want[s3] {
		t.Fatalf("ForEachSnapshot = %q, want %q", got, want)
	}
	if r, ok, err := x.Snapshot(ctx, s1); err != nil || !ok || string(r) != "record one" {
		t.Fatalf("Snapshot(s1) = %q, %v, %v", r, ok, err)
	}
	if _, ok, err := x.Snapshot(ctx, s2); err != nil || ok {
		t.Fatalf("Snapshot(deleted) = %v, %v", ok, err)
	}
	if _, _, snaps, err := x.Stats(ctx); err != nil || snaps != 2 {
		t.Fatalf("Stats snapshots = %d, %v", snaps, err)
	}
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "idx") // Open creates it
	x := openTemp(t, dir)
	es := testEntries(0, 300)
	mustAdd(t, x, testID("pack", 0), 4096, es)
	if err := x.PutSnapshot(ctx, testID("snap", 0), []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		x, err := Open(dir, Options{ReadOnly: readOnly})
		if err != nil {
			t.Fatalf("reopen (read-only %v): %v", readOnly, err)
		}
		for _, e := range es {
			wantLocation(t, x, e, testID("pack", 0))
		}
		packs, blobs, snaps, err := x.Stats(ctx)
		if err != nil || packs != 1 || blobs != 300 || snaps != 1 {
			t.Fatalf("Stats after reopen = %d, %d, %d, %v", packs, blobs, snaps, err)
		}
		if readOnly {
			if err := x.AddPack(ctx, testID("pack", 1), 1, nil); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("AddPack on read-only index: %v, want ErrReadOnly", err)
			}
			if err := x.PutSnapshot(ctx, testID("snap", 1), nil); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("PutSnapshot on read-only index: %v, want ErrReadOnly", err)
			}
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadOnlyNeedsExistingIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-only Open of a missing dir: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("read-only Open created the directory")
	}
}

func TestDropAll(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	x := openTemp(t, dir)
	mustAdd(t, x, testID("pack", 0), 1, testEntries(0, 10))
	if err := x.PutSnapshot(ctx, testID("snap", 0), []byte("r")); err != nil {
		t.Fatal(err)
	}
	if err := x.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	if p, b, s, err := x.Stats(ctx); err != nil || p+b+s != 0 {
		t.Fatalf("after DropAll: %d %d %d %v", p, b, s, err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openTemp(t, dir) // the format version was rewritten: not "damaged"
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestScanStopsOnCancel(t *testing.T) {
	x := openMem(t)
	mustAdd(t, x, testID("pack", 0), 1, testEntries(0, 1000))
	for i := range 20 {
		if err := x.PutSnapshot(context.Background(), testID("snap", i), []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	scans := map[string]func(context.Context, func()) error{
		"ForEachBlob": func(ctx context.Context, tick func()) error {
			return x.ForEachBlob(ctx, func(id.ID, Location) error { tick(); return nil })
		},
		"ForEachSnapshot": func(ctx context.Context, tick func()) error {
			return x.ForEachSnapshot(ctx, func(id.ID, []byte) error { tick(); return nil })
		},
		"PackBlobs": func(ctx context.Context, tick func()) error {
			_, err := x.PackBlobs(ctx, testID("pack", 0))
			return err
		},
		"Missing": func(ctx context.Context, tick func()) error {
			_, err := x.Missing(ctx, []id.ID{testID("blob", 1)})
			return err
		},
	}
	for name, scan := range scans {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			calls := 0
			if name == "PackBlobs" || name == "Missing" {
				cancel()
			}
			err := scan(ctx, func() {
				calls++
				if calls == 3 {
					cancel()
				}
			})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if calls > 3 {
				t.Fatalf("fn called %d times after cancel at 3", calls)
			}
		})
	}
}

func TestFnErrorReturnedAsIs(t *testing.T) {
	x := openMem(t)
	mustAdd(t, x, testID("pack", 0), 1, testEntries(0, 10))
	stop := errors.New("stop")
	if err := x.ForEachBlob(context.Background(), func(id.ID, Location) error { return stop }); err != stop {
		t.Fatalf("ForEachBlob = %v, want the callback's error unchanged", err)
	}
	if err := x.ForEachPack(context.Background(), func(id.ID, int64, int) error { return stop }); err != stop {
		t.Fatalf("ForEachPack = %v, want the callback's error unchanged", err)
	}
}

func TestPrefixesDistinct(t *testing.T) {
	all := []byte{prefixBlob, prefixPack, prefixPackBlob, prefixSnapshot, prefixVersion, prefixMeta,
		prefixHistoryName, prefixVersionDone, prefixMark, prefixStored,
		prefixRef, prefixSnapRef, prefixRefHost, prefixTold}
	seen := map[byte]bool{}
	for _, p := range all {
		if seen[p] {
			t.Fatalf("prefix %q used twice", p)
		}
		seen[p] = true
	}
}

func TestLoggerGetsNoChatter(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	for range 2 { // the second Open replays and reports tables at info level
		x, err := Open(dir, Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, x, testID("pack", 0), 1, testEntries(0, 10))
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("Badger's routine messages reached the logger:\n%s", buf.String())
	}
	// Warnings and errors do get through.
	slogAdapter{log}.Warningf("disk %s\n", "slow")
	if !strings.Contains(buf.String(), `level=WARN msg="badger: disk slow"`) {
		t.Fatalf("warning not forwarded: %q", buf.String())
	}
}
