//go:build windows

package vss

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestSupportedTempDir(t *testing.T) {
	if _, err := Supported(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// TestTakeReal makes a real shadow copy; it needs an elevated process, so it
// runs only when COSTOR_TEST_VSS=1 (a Windows CI runner as Administrator).
func TestTakeReal(t *testing.T) {
	if os.Getenv("COSTOR_TEST_VSS") != "1" {
		t.Skip("set COSTOR_TEST_VSS=1 in an elevated shell to make a real shadow copy")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := Take(ctx, []string{dir}, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release(ctx)
	if err := os.WriteFile(file, []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := v.Path(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "before" {
		t.Fatalf("shadow copy of %s = %q, %v; want %q", p, got, err, "before")
	}
	if err := v.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
