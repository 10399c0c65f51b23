//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecoveryKeyReadsRepository: a repository made with the organisation's
// keys can be read by the admin with the recovery key alone, even after its
// own key file is gone; the recovery key cannot write.
func TestRecoveryKeyReadsRepository(t *testing.T) {
	s := newSandbox(t)
	org, rec := s.path("org.key"), s.path("recovery.key")
	s.mustCostor("key", "init", "--org-out", org, "--recovery-out", rec)
	for _, f := range []string{org, rec} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if _, stderr, code := s.costor("key", "init", "--org-out", org, "--recovery-out", rec); code == 0 {
		t.Fatal("key init overwrote existing key files")
	} else if !strings.Contains(stderr, "exists") {
		t.Errorf("key init over existing files: stderr %q does not say they exist", stderr)
	}
	s.mustCostor("init", "--org-key", org, "--recovery-key", rec)
	src := s.path("src")
	writeFile(t, filepath.Join(src, "notes.txt"), "the admin can read this\n")
	id := s.backup(src)

	// Without the repository's key file, the password opens nothing…
	if err := os.RemoveAll(filepath.Join(s.repo, "keys")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.repo, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, code := s.costor("snapshots"); code == 0 {
		t.Fatal("snapshots succeeded without any key file")
	}
	// …but the recovery key still restores.
	target := s.path("restored")
	s.mustCostor("--recovery-key", rec, "restore", id+":"+filepath.Join(src, "notes.txt"), "--target", target)
	if got := readFile(t, filepath.Join(target, "notes.txt")); got != "the admin can read this\n" {
		t.Fatalf("restored with the recovery key: %q", got)
	}
	if _, stderr, code := s.costor("--recovery-key", rec, "backup", src); code != 1 || !strings.Contains(stderr, "read-only") {
		t.Errorf("backup with the recovery key: exit %d, stderr %q; want exit 1 saying read-only", code, stderr)
	}
}

// TestRestoreSelections: a subtree, a single file, --include and --verify.
func TestRestoreSelections(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "a", "one.txt"), "one\n")
	writeFile(t, filepath.Join(src, "a", "two.log"), "two\n")
	writeFile(t, filepath.Join(src, "b", "three.txt"), "three\n")
	id := s.backup(src)

	sub := s.path("sub")
	s.mustCostor("restore", id[:10]+":"+filepath.Join(src, "a"), "--target", sub)
	if readFile(t, filepath.Join(sub, "one.txt")) != "one\n" || readFile(t, filepath.Join(sub, "two.log")) != "two\n" {
		t.Error("subtree restore: contents of a/ not in the target")
	}
	if exists(filepath.Join(sub, "three.txt")) || exists(filepath.Join(sub, "b")) {
		t.Error("subtree restore wrote more than the subtree")
	}

	inc := s.path("inc")
	s.mustCostor("restore", "latest", "--target", inc, "--include", "*.txt")
	if !exists(filepath.Join(inc, src, "a", "one.txt")) || !exists(filepath.Join(inc, src, "b", "three.txt")) {
		t.Error("--include *.txt: matching files missing")
	}
	if exists(filepath.Join(inc, src, "a", "two.log")) {
		t.Error("--include *.txt restored two.log")
	}

	ver := s.path("ver")
	_, stderr, code := s.costor("restore", "latest", "--target", ver, "--verify")
	if code != 0 || !strings.Contains(stderr, "verified 3 files") {
		t.Errorf("--verify: exit %d, stderr %q; want it to report 3 verified files", code, stderr)
	}

	if _, stderr, code := s.costor("restore", "latest:/no/such/path", "--target", s.path("none")); code != 1 || !strings.Contains(stderr, "/no/such/path") {
		t.Errorf("restore of a missing path: exit %d, stderr %q", code, stderr)
	}
}
