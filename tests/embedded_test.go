//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedDefault: with no repository and no password configured, the
// first backup creates the user's own repository and key, and later runs
// find them again.
func TestEmbeddedDefault(t *testing.T) {
	for _, tc := range []struct {
		name      string
		unset     []string
		data, cfg func(s *sandbox) string
	}{
		{
			name: "XDG directories",
			data: func(s *sandbox) string { return filepath.Join(s.vars["XDG_DATA_HOME"], "costor") },
			cfg:  func(s *sandbox) string { return filepath.Join(s.vars["XDG_CONFIG_HOME"], "costor") },
		},
		{
			name:  "HOME fallback",
			unset: []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"},
			data:  func(s *sandbox) string { return filepath.Join(s.vars["HOME"], ".local/share/costor") },
			cfg:   func(s *sandbox) string { return filepath.Join(s.vars["HOME"], ".config/costor") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			for _, k := range append(tc.unset, "COSTOR_REPO", "COSTOR_PASSWORD") {
				delete(s.vars, k)
			}
			src := s.path("src")
			writeFile(t, filepath.Join(src, "doc.txt"), "my document")
			writeFile(t, filepath.Join(src, "sub/notes.txt"), "notes")

			first := s.backup(src)
			entries, err := os.ReadDir(tc.data(s))
			if err != nil || len(entries) == 0 {
				t.Fatalf("no repository at %s after the first backup (%v)", tc.data(s), err)
			}
			checkPrivateDir(t, tc.cfg(s))
			if exists(s.repo) {
				t.Errorf("%s created although no --repo was given", s.repo)
			}

			writeFile(t, filepath.Join(src, "doc.txt"), "my document, edited")
			second := s.backup(src)
			snaps := s.snapshots()
			if len(snaps) != 2 {
				t.Fatalf("want 2 snapshots in the default repository, got %d", len(snaps))
			}
			if snaps[0].ID == snaps[1].ID || first == second {
				t.Errorf("the two backups share a snapshot ID")
			}
			target := s.path("restore")
			s.mustCostor("restore", "--target", target, first)
			if got := readFile(t, filepath.Join(target, src, "doc.txt")); got != "my document" {
				t.Errorf("restored doc.txt from the first snapshot: %q", got)
			}
			s.mustCostor("check", "--read-data")
		})
	}
}

// checkPrivateDir fails unless dir holds at least one file and nothing in
// it is readable by group or others: it holds the generated password/key.
func checkPrivateDir(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			files++
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: the key must not be readable by others", p, info.Mode())
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Errorf("no key file under %s (%v)", dir, err)
	}
}

func TestPasswordSources(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	s.backup(src)

	pwFile := s.path("password")
	writeFile(t, pwFile, testPassword)
	pwFileNL := s.path("password-newline")
	writeFile(t, pwFileNL, testPassword+"\n") // as `echo pw > file` writes it
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"COSTOR_PASSWORD", nil, nil},
		{"COSTOR_PASSWORD_FILE", []string{"COSTOR_PASSWORD", "COSTOR_PASSWORD_FILE=" + pwFile}, nil},
		{"password file ending in newline", []string{"COSTOR_PASSWORD", "COSTOR_PASSWORD_FILE=" + pwFileNL}, nil},
		{"--password-file", []string{"COSTOR_PASSWORD"}, []string{"--password-file", pwFile}},
		{"--repo", []string{"COSTOR_REPO"}, []string{"--repo", s.repo}},
		{"-r", []string{"COSTOR_REPO"}, []string{"-r", s.repo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), "--json", "snapshots")
			stdout, stderr, code := run(t, s.env(tc.env...), args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if snaps := parseSnapshots(t, stdout); len(snaps) != 1 {
				t.Errorf("%d snapshots, want 1", len(snaps))
			}
		})
	}
}

func TestUserErrors(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	s.backup(src)

	t.Run("wrong password", func(t *testing.T) {
		for _, cmd := range [][]string{{"snapshots"}, {"backup", src}, {"restore", "--target", s.path("r"), "latest"}} {
			_, stderr, code := run(t, s.env("COSTOR_PASSWORD=wrong"), cmd...)
			msg := oneLine(t, "wrong password", stderr)
			if code != 1 || !strings.Contains(strings.ToLower(msg), "password") {
				t.Errorf("%q with a wrong password: exit %d, stderr %q; want 1 and a message about the password", cmd, code, msg)
			}
		}
		if exists(s.path("r")) {
			t.Error("restore with a wrong password created its target")
		}
		if snaps := s.snapshots(); len(snaps) != 1 {
			t.Errorf("a backup with the wrong password changed the snapshot list: %d snapshots", len(snaps))
		}
	})
	t.Run("no password", func(t *testing.T) {
		_, stderr, code := run(t, s.env("COSTOR_PASSWORD"), "snapshots")
		if code != 1 || !strings.Contains(strings.ToLower(stderr), "password") {
			t.Errorf("no password and no terminal: exit %d, stderr %q; want 1 and a message about the password", code, stderr)
		}
	})
	t.Run("missing repository", func(t *testing.T) {
		missing := s.path("no", "such", "repo")
		for _, cmd := range [][]string{{"snapshots"}, {"check"}, {"restore", "--target", s.path("r2"), "latest"}} {
			_, stderr, code := run(t, s.env("COSTOR_REPO="+missing), cmd...)
			msg := oneLine(t, "missing repository", stderr)
			if code != 1 || !strings.Contains(msg, missing) {
				t.Errorf("%q on a missing repository: exit %d, stderr %q; want 1 and the path", cmd, code, msg)
			}
		}
		if exists(s.path("no")) {
			t.Errorf("reading a missing repository created %s", s.path("no"))
		}
	})
	t.Run("init twice", func(t *testing.T) {
		_, stderr, code := s.costor("init")
		if code != 1 {
			t.Errorf("init of an existing repository: exit %d, want 1", code)
		}
		oneLine(t, "init twice", stderr)
		if snaps := s.snapshots(); len(snaps) != 1 {
			t.Errorf("init over an existing repository lost snapshots: %d left", len(snaps))
		}
	})
	t.Run("unknown path in snapshot", func(t *testing.T) {
		_, stderr, code := s.costor("dump", "latest:"+filepath.Join(src, "nope.txt"))
		if code != 1 {
			t.Errorf("dump of a path not in the snapshot: exit %d, want 1", code)
		}
		oneLine(t, "dump of a missing path", stderr)
	})
}
