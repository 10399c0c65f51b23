package index

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// filledDir returns the directory of a closed index holding some data in
// table files.
func filledDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	x := openTemp(t, dir)
	mustAdd(t, x, testID("pack", 0), 1, testEntries(0, 2000))
	if err := x.Close(); err != nil { // flushes the memtable into a table file
		t.Fatal(err)
	}
	return dir
}

func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenLockedInSameProcess(t *testing.T) {
	dir := t.TempDir()
	x := openTemp(t, dir)
	defer x.Close()
	for _, readOnly := range []bool{false, true} {
		y, err := Open(dir, Options{ReadOnly: readOnly})
		if err == nil {
			_ = y.Close()
			t.Fatalf("second Open (read-only %v) succeeded", readOnly)
		}
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("second Open (read-only %v): %v; want ErrLocked naming %s", readOnly, err, dir)
		}
	}
	if err := Reset(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Reset of an open index: %v, want ErrLocked", err)
	}
}

// TestOpenLockedByOtherProcess runs this test binary a second time to hold
// the index: Badger's flock is what another costor process would meet.
func TestOpenLockedByOtherProcess(t *testing.T) {
	if dir := os.Getenv("COSTOR_INDEX_HOLD"); dir != "" {
		x, err := Open(dir, Options{})
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("ready\n")
		buf := make([]byte, 1)
		_, _ = os.Stdin.Read(buf) // hold until the parent closes stdin
		_ = x.Close()
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenLockedByOtherProcess$")
	cmd.Env = append(os.Environ(), "COSTOR_INDEX_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("child did not open the index: %q, %v", buf, err)
	}
	x, err := Open(dir, Options{})
	if err == nil {
		_ = x.Close()
		t.Fatal("Open succeeded while another process holds the index")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open: %v, want ErrLocked", err)
	}
	t.Log(err)
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	x = openTemp(t, dir) // free again once the other process is gone
	_ = x.Close()
}

func TestOpenDamaged(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"MANIFEST deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
		}},
		{"MANIFEST garbled", func(t *testing.T, dir string) {
			garble(t, filepath.Join(dir, "MANIFEST"), 0)
		}},
		{"MANIFEST truncated", func(t *testing.T, dir string) {
			truncateHalf(t, filepath.Join(dir, "MANIFEST"))
		}},
		{"table file deleted", func(t *testing.T, dir string) {
			for _, f := range filesWithSuffix(t, dir, ".sst") {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"table file truncated", func(t *testing.T, dir string) {
			for _, f := range filesWithSuffix(t, dir, ".sst") {
				truncateHalf(t, f)
			}
		}},
		{"table file garbled at its end", func(t *testing.T, dir string) {
			for _, f := range filesWithSuffix(t, dir, ".sst") {
				garble(t, f, -64)
			}
		}},
		{"format version changed", func(t *testing.T, dir string) {
			x := openTemp(t, dir)
			defer x.Close()
			if err := x.db.Update(func(txn *badger.Txn) error { return txn.Set(metaFormatKey, []byte{0, 0, 0, 99}) }); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filledDir(t)
			if len(filesWithSuffix(t, dir, ".sst")) == 0 {
				t.Fatal("no table file was written; the test would test nothing")
			}
			tt.damage(t, dir)
			x, err := Open(dir, Options{})
			if err == nil {
				// Some damage only shows when the data is read.
				_, _, _, err = x.Stats(context.Background())
				_ = x.Close()
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open after damage: %v, want ErrDamaged", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), "costor repair index") {
				t.Fatalf("error does not say how to fix it: %v", err)
			}
			if err := Reset(dir); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			x = openTemp(t, dir)
			defer x.Close()
			if p, b, s, err := x.Stats(context.Background()); err != nil || p+b+s != 0 {
				t.Fatalf("after Reset: %d %d %d %v, want an empty index", p, b, s, err)
			}
		})
	}
}

// garble overwrites 32 bytes at off (from the end if negative).
func garble(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off < 0 {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		off += fi.Size()
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 32)), off); err != nil {
		t.Fatal(err)
	}
}

func truncateHalf(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// A process killed right after Badger created a memtable log, before it
// sized the file, leaves a log of no bytes. The index must open as it was,
// not be reported damaged; while another process holds the index, the
// file is left alone (it may be the one that process is creating).
func TestOpenAfterKillWhileCreatingMemtable(t *testing.T) {
	dir := filledDir(t)
	empty := filepath.Join(dir, "00001.mem") // Badger's name for the first log
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	x, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open with an empty memtable log: %v", err)
	}
	for _, e := range testEntries(0, 2000) {
		wantLocation(t, x, e, testID("pack", 0))
	}
	// Badger reuses the name for its own log, sized and with a header.
	if fi, err := os.Stat(empty); err == nil && fi.Size() == 0 {
		t.Errorf("%s is still empty after the open", empty)
	}

	// x holds the directory now: an empty log appearing is another
	// process's to finish, and a second open is refused as in use.
	other := filepath.Join(dir, "00007.mem")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("second open while held: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("an empty memtable log was removed while another open held the index: %v", err)
	}
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}
