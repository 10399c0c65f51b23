package index

import (
	"context"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
)

func TestToldMarks(t *testing.T) {
	x := openMem(t)
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b, c := id.Hash([]byte("a")), id.Hash([]byte("b")), id.Hash([]byte("c"))
	if err := x.MarkTold(ctx, []id.ID{a}, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := x.MarkTold(ctx, []id.ID{b}, now); err != nil {
		t.Fatal(err)
	}
	cutoff := now.Add(-time.Hour)
	for _, c := range []struct {
		blob id.ID
		want bool
	}{{a, false}, {b, true}, {c, false}} {
		if got, err := x.ToldSince(ctx, c.blob, cutoff); err != nil || got != c.want {
			t.Errorf("ToldSince(%s) = %v, %v; want %v", c.blob.Short(), got, err, c.want)
		}
	}
	if n, err := x.DropToldBefore(ctx, cutoff); err != nil || n != 1 {
		t.Fatalf("DropToldBefore = %d, %v; want 1 (the old mark only)", n, err)
	}
	if got, _ := x.ToldSince(ctx, a, time.Time{}); got {
		t.Error("the old mark survived DropToldBefore")
	}
	if got, _ := x.ToldSince(ctx, b, cutoff); !got {
		t.Error("DropToldBefore dropped a recent mark")
	}
}
