//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBackupCreatesNamedHostKey: a --host-key FILE that does not exist is
// created by the backup (0600), bound to --host; the next backup reuses it.
func TestBackupCreatesNamedHostKey(t *testing.T) {
	newViewFixture(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "keys", "db1.key")
	args := []string{"costor", "-q", "--host-key", keyFile, "backup", "--host", "db1", src}
	if err := Run(t.Context(), args); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	hk, err := readHostKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if hk.Host != "db1" {
		t.Errorf("host key bound to %q, want db1", hk.Host)
	}
	if err := Run(t.Context(), args); err != nil {
		t.Fatal(err)
	}
	again, err := readHostKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if again.Private != hk.Private {
		t.Error("the second backup replaced the host key")
	}
}
