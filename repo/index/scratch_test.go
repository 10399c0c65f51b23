package index

import (
	"testing"

	"github.com/costor/costor/repo/id"
)

// TestScratchSetsAreSeparate: prune's marks and a server client's stored
// set share one mechanism but never each other's keys; clearing one leaves
// the other and the blob index alone.
func TestScratchSetsAreSeparate(t *testing.T) {
	x, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ctx := t.Context()
	marked, stored := id.Hash([]byte("marked")), id.Hash([]byte("stored"))
	if err := x.Mark(ctx, []id.ID{marked}); err != nil {
		t.Fatal(err)
	}
	if err := x.MarkStored(ctx, []id.ID{stored}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantMarked, wantStored bool) {
		t.Helper()
		for _, c := range []struct {
			name string
			fn   func() (bool, error)
			want bool
		}{
			{"Marked(marked)", func() (bool, error) { return x.Marked(ctx, marked) }, wantMarked},
			{"KnownStored(stored)", func() (bool, error) { return x.KnownStored(ctx, stored) }, wantStored},
			{"Marked(stored)", func() (bool, error) { return x.Marked(ctx, stored) }, false},
			{"KnownStored(marked)", func() (bool, error) { return x.KnownStored(ctx, marked) }, false},
			{"Has(stored)", func() (bool, error) { return x.Has(ctx, stored) }, false},
		} {
			got, err := c.fn()
			if err != nil || got != c.want {
				t.Errorf("%s: %s = %v, %v; want %v", when, c.name, got, err, c.want)
			}
		}
	}
	check("after adding", true, true)
	if err := x.ClearStored(ctx); err != nil {
		t.Fatal(err)
	}
	check("after ClearStored", true, false)
	if err := x.MarkStored(ctx, []id.ID{stored}); err != nil {
		t.Fatal(err)
	}
	if err := x.ClearMarks(ctx); err != nil {
		t.Fatal(err)
	}
	check("after ClearMarks", false, true)
}
