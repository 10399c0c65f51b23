package fsmeta

import (
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkLstat(b *testing.B) {
	path := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Lstat(path, "f"); err != nil {
			b.Fatal(err)
		}
	}
}
