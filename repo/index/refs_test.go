package index

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/costor/costor/repo/id"
)

func TestRefPrefixesDistinct(t *testing.T) {
	others := []byte{prefixBlob, prefixPack, prefixPackBlob, prefixSnapshot, prefixVersion, prefixMeta,
		prefixHistoryName, prefixVersionDone, prefixMark,
		'k', // known.go's prefixStored, named by value so this test does not depend on that file
	}
	for _, p := range []byte{prefixRef, prefixSnapRef, prefixRefHost} {
		if slices.Contains(others, p) {
			t.Fatalf("reference prefix %q is already used by another key", p)
		}
	}
}

func refIDs(first, n int) []id.ID {
	out := make([]id.ID, n)
	for i := range out {
		out[i] = testID("blob", first+i)
	}
	return out
}

func TestAddRefsAndReads(t *testing.T) {
	ctx := context.Background()
	x := openMem(t)
	mustAdd(t, x, testID("pack", 1), 1000, testEntries(0, 10))
	snapA, snapB := testID("snap", 1), testID("snap", 2)

	// Repeats within a call and across calls count once; unindexed blobs are missing.
	list := append(refIDs(0, 5), refIDs(0, 2)...)
	list = append(list, testID("blob", 99))
	added, missing, err := x.AddRefs(ctx, snapA, "pc-01", list)
	if err != nil {
		t.Fatal(err)
	}
	if added != 5 || len(missing) != 1 || missing[0] != testID("blob", 99) {
		t.Fatalf("AddRefs = %d added, missing %v; want 5, [blob 99]", added, missing)
	}
	added, _, err = x.AddRefs(ctx, snapA, "pc-01", refIDs(3, 4))
	if err != nil || added != 2 {
		t.Fatalf("second AddRefs = %d, %v; want 2 new", added, err)
	}
	if n, err := x.CountRefs(ctx, snapA); err != nil || n != 7 {
		t.Fatalf("CountRefs = %d, %v; want 7", n, err)
	}
	if _, _, err := x.AddRefs(ctx, snapA, "pc-02", refIDs(0, 1)); err == nil {
		t.Fatal("AddRefs for another host of the same snapshot succeeded")
	}
	if _, _, err := x.AddRefs(ctx, snapB, "pc-0", refIDs(8, 2)); err != nil {
		t.Fatal(err)
	}

	var got []id.ID
	if err := x.ForEachRef(ctx, snapA, func(b id.ID) error { got = append(got, b); return nil }); err != nil {
		t.Fatal(err)
	}
	want := refIDs(0, 7)
	slices.SortFunc(want, func(a, b id.ID) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(got, want) {
		t.Fatalf("ForEachRef = %d blobs, want %d sorted", len(got), len(want))
	}

	for _, c := range []struct {
		blob id.ID
		host string
		want bool
	}{
		{testID("blob", 0), "pc-01", true},
		{testID("blob", 0), "pc-0", false}, // a prefix of pc-01 must not match
		{testID("blob", 8), "pc-0", true},
		{testID("blob", 8), "pc-01", false},
		{testID("blob", 9), "pc-01", false},
	} {
		got, err := x.HostReferences(ctx, c.blob, c.host)
		if err != nil || got != c.want {
			t.Errorf("HostReferences(%s, %q) = %v, %v; want %v", c.blob.Short(), c.host, got, err, c.want)
		}
	}
	if ok, _ := x.Referenced(ctx, testID("blob", 7)); ok {
		t.Error("blob 7 referenced by nobody reported referenced")
	}
	if ok, _ := x.Referenced(ctx, testID("blob", 6)); !ok {
		t.Error("blob 6 not reported referenced")
	}
	if host, ok, err := x.RefsHost(ctx, snapB); err != nil || !ok || host != "pc-0" {
		t.Fatalf("RefsHost = %q, %v, %v", host, ok, err)
	}

	if err := x.DropRefs(ctx, snapA); err != nil {
		t.Fatal(err)
	}
	if ok, _ := x.Referenced(ctx, testID("blob", 0)); ok {
		t.Error("blob 0 still referenced after DropRefs")
	}
	if _, ok, _ := x.RefsHost(ctx, snapA); ok {
		t.Error("host record of snapA survived DropRefs")
	}
	var snaps []id.ID
	if err := x.ForEachRefSnapshot(ctx, func(s id.ID, host string) error { snaps = append(snaps, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 || snaps[0] != snapB {
		t.Fatalf("ForEachRefSnapshot = %v, want only snapB", snaps)
	}
}

// TestRefsManyPages writes more refs than one page and one transaction
// hold, and reads and drops them page by page.
func TestRefsManyPages(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	x := openTemp(t, t.TempDir())
	defer x.Close()
	const n = 3*refsPage + 17
	for first := 0; first < n; first += 5000 {
		mustAdd(t, x, testID("pack", first), 1<<20, testEntries(first, min(5000, n-first)))
	}
	snap := testID("snap", 1)
	total := 0
	for first := 0; first < n; first += 4096 {
		added, missing, err := x.AddRefs(ctx, snap, "host", refIDs(first, min(4096, n-first)))
		if err != nil || len(missing) != 0 {
			t.Fatalf("AddRefs: %v, missing %d", err, len(missing))
		}
		total += added
	}
	if total != n {
		t.Fatalf("added %d, want %d", total, n)
	}
	count := 0
	if err := x.ForEachRef(ctx, snap, func(id.ID) error { count++; return nil }); err != nil || count != n {
		t.Fatalf("ForEachRef saw %d, %v; want %d", count, err, n)
	}
	if err := x.DropRefs(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if c, _ := x.CountRefs(ctx, snap); c != 0 {
		t.Fatalf("%d refs survive DropRefs", c)
	}
}

func TestRefsRejectBadHost(t *testing.T) {
	x := openMem(t)
	for _, h := range []string{"", "a\x00b", string(make([]byte, 256))} {
		if _, _, err := x.AddRefs(context.Background(), testID("snap", 1), h, nil); !errors.Is(err, ErrBadRefHost) {
			t.Errorf("AddRefs with host %q: %v, want ErrBadRefHost", h, err)
		}
	}
}

func TestForEachRefStopsOnCancel(t *testing.T) {
	x := openMem(t)
	mustAdd(t, x, testID("pack", 1), 1000, testEntries(0, 10))
	if _, _, err := x.AddRefs(context.Background(), testID("snap", 1), "h", refIDs(0, 10)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := x.ForEachRef(ctx, testID("snap", 1), func(id.ID) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ForEachRef on a cancelled ctx: %v", err)
	}
}
