package index

import (
	"context"
	"sync"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// TestLookupsSeeEveryFinishedWrite pins the pooled read transactions'
// promise: a lookup sees every write that returned before it began, even
// when lookups from before that write left transactions in the pool.
func TestLookupsSeeEveryFinishedWrite(t *testing.T) {
	ctx := context.Background()
	x := openTemp(t, t.TempDir())
	entries := testEntries(0, 3)
	packA, packB := testID("pack", 1), testID("pack", 2)
	ids := []id.ID{entries[0].ID, entries[1].ID, entries[2].ID}
	// Pool transactions from many goroutines at once, so that several are
	// idle in the pool when the next write comes.
	fillPool := func() {
		var wg sync.WaitGroup
		for range 2 * viewPoolSize {
			wg.Go(func() {
				for _, b := range ids {
					if _, err := x.Has(ctx, b); err != nil {
						t.Error(err)
					}
					if _, err := x.KnownStored(ctx, b); err != nil {
						t.Error(err)
					}
				}
				if _, err := x.HasPack(ctx, packB); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}

	fillPool()
	mustAdd(t, x, packA, 1000, entries)
	for _, e := range entries {
		wantLocation(t, x, e, packA)
		if has, err := x.Has(ctx, e.ID); err != nil || !has {
			t.Fatalf("Has %s after AddPack = %v, %v", e.ID.Short(), has, err)
		}
	}

	fillPool()
	moved := make([]pack.Entry, len(entries))
	copy(moved, entries)
	for i := range moved {
		moved[i].Offset += 7
	}
	mustAdd(t, x, packB, 1000, nil)
	if has, err := x.HasPack(ctx, packB); err != nil || !has {
		t.Fatalf("HasPack after AddPack = %v, %v", has, err)
	}
	fillPool()
	if err := x.Relocate(ctx, packB, moved); err != nil {
		t.Fatal(err)
	}
	for _, e := range moved {
		wantLocation(t, x, e, packB)
	}

	fillPool()
	if err := x.RemovePack(ctx, packB); err != nil {
		t.Fatal(err)
	}
	if has, err := x.HasPack(ctx, packB); err != nil || has {
		t.Fatalf("HasPack after RemovePack = %v, %v", has, err)
	}

	fillPool()
	if err := x.MarkStored(ctx, ids[:1]); err != nil {
		t.Fatal(err)
	}
	if ok, err := x.KnownStored(ctx, ids[0]); err != nil || !ok {
		t.Fatalf("KnownStored after MarkStored = %v, %v", ok, err)
	}
	fillPool()
	if err := x.ClearStored(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := x.KnownStored(ctx, ids[0]); err != nil || ok {
		t.Fatalf("KnownStored after ClearStored = %v, %v", ok, err)
	}

	mustAdd(t, x, packA, 1000, entries)
	fillPool()
	if err := x.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range ids {
		if has, err := x.Has(ctx, b); err != nil || has {
			t.Fatalf("Has %s after DropAll = %v, %v", b.Short(), has, err)
		}
	}
}

// TestLookupAfterClose: a lookup on a closed index is an error, not a
// panic inside Badger.
func TestLookupAfterClose(t *testing.T) {
	x, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := testID("blob", 1)
	if _, err := x.Has(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Has(context.Background(), b); err == nil {
		t.Fatal("Has on a closed index succeeded")
	}
	if _, _, err := x.Lookup(context.Background(), b); err == nil {
		t.Fatal("Lookup on a closed index succeeded")
	}
}
