package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/storagetest"
)

func TestSuite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		s, err := Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func newStorage(t *testing.T) (*Storage, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestCreateLayout(t *testing.T) {
	s, dir := newStorage(t)
	for _, k := range storage.Kinds {
		fi, err := os.Stat(filepath.Join(dir, string(k)))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want directory 0700", k, fi.Mode())
		}
	}
	subdirs, err := os.ReadDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(subdirs) != 256 || subdirs[0].Name() != "00" || subdirs[255].Name() != "ff" {
		t.Errorf("packs has %d subdirectories, want 00…ff", len(subdirs))
	}

	packID := id.Hash([]byte("pack"))
	h := storage.Handle{Kind: storage.KindPacks, Name: packID.String()}
	if err := s.Save(context.Background(), h, bytes.NewReader([]byte("p")), 1); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "packs", packID.String()[:2], packID.String())
	fi, err := os.Stat(want)
	if err != nil {
		t.Fatalf("pack not at %s: %v", want, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("pack mode %v is readable by others", fi.Mode())
	}
	if err := s.Save(context.Background(), storage.Handle{Kind: storage.KindKeys, Name: "k1"}, bytes.NewReader([]byte("k")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "k1")); err != nil {
		t.Errorf("key not in keys/: %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	_, dir := newStorage(t)
	if _, err := Create(dir); !errors.Is(err, storage.ErrExist) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Create over a repository = %v, want ErrExist naming %s", err, dir)
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "thesis.tex"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(full); err == nil || !strings.Contains(err.Error(), full) {
		t.Errorf("Create in a non-empty directory = %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(full, "packs")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create in a non-empty directory left a layout behind")
	}
}

func TestOpen(t *testing.T) {
	s, dir := newStorage(t)
	h := storage.Handle{Kind: storage.KindConfig, Name: "config"}
	if err := s.Save(context.Background(), h, bytes.NewReader([]byte("cfg")), 3); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	if info, err := s2.Stat(context.Background(), h); err != nil || info.Size != 3 {
		t.Errorf("Stat after Open = %+v, %v", info, err)
	}

	notRepo := t.TempDir()
	if err := os.Mkdir(filepath.Join(notRepo, "packs"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(notRepo, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir     string
		wantErr error
	}{
		{notRepo, ErrNotRepository},
		{file, ErrNotRepository},
		{filepath.Join(notRepo, "missing"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		_, err := Open(tt.dir)
		if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.dir) {
			t.Errorf("Open(%s) = %v, want %v naming the directory", tt.dir, err, tt.wantErr)
		}
	}
}

func TestListSkipsStrays(t *testing.T) {
	s, dir := newStorage(t)
	ctx := context.Background()
	packName := id.Hash([]byte("x")).String()
	if err := s.Save(ctx, storage.Handle{Kind: storage.KindPacks, Name: packName}, bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	strays := []string{
		filepath.Join(dir, "packs", packName[:2], ".tmp-"+packName+"-123"), // killed Save
		filepath.Join(dir, "packs", "00", "ff"+packName[2:]),               // wrong fan-out directory
		filepath.Join(dir, "packs", "README"),                              // file beside the fan-out directories
		filepath.Join(dir, "keys", ".tmp-k-1"),
	}
	for _, p := range strays {
		if err := os.WriteFile(p, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "keys", "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range storage.Kinds {
		var names []string
		err := s.List(ctx, k, func(info storage.Info) error {
			names = append(names, info.Handle.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if k == storage.KindPacks {
			want = 1
		}
		if len(names) != want {
			t.Errorf("List(%s) = %v, want %d objects", k, names, want)
		}
	}
}

func TestSaveRecreatesMissingFanOutDir(t *testing.T) {
	s, dir := newStorage(t)
	name := id.Hash([]byte("y")).String()
	if err := os.Remove(filepath.Join(dir, "packs", name[:2])); err != nil {
		t.Fatal(err)
	}
	h := storage.Handle{Kind: storage.KindPacks, Name: name}
	if err := s.Save(context.Background(), h, bytes.NewReader([]byte("y")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}

func TestFailedSaveLeavesNoTempFile(t *testing.T) {
	s, dir := newStorage(t)
	name := id.Hash([]byte("z")).String()
	h := storage.Handle{Kind: storage.KindPacks, Name: name}
	if err := s.Save(context.Background(), h, bytes.NewReader([]byte("short")), 100); err == nil {
		t.Fatal("Save with a short reader succeeded")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "packs", name[:2]))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("fan-out directory holds %v after a failed Save", entries[0].Name())
	}
}

func TestShortPackNameRejected(t *testing.T) {
	s, _ := newStorage(t)
	h := storage.Handle{Kind: storage.KindPacks, Name: "a"}
	if err := s.Save(context.Background(), h, bytes.NewReader(nil), 0); !errors.Is(err, storage.ErrInvalidHandle) {
		t.Errorf("Save(%s) = %v, want ErrInvalidHandle", h, err)
	}
}

func TestCleanTemp(t *testing.T) {
	s, dir := newStorage(t)
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)
	files := []struct {
		path    string
		old     bool
		removed bool
	}{
		{filepath.Join(dir, "packs", "ab", ".tmp-ab12-1"), true, true},
		{filepath.Join(dir, "snapshots", ".tmp-s-2"), true, true},
		{filepath.Join(dir, "packs", "cd", ".tmp-cd34-3"), false, false}, // maybe still being written
		{filepath.Join(dir, "keys", "k"), true, false},                   // an object, however old
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if f.old {
			if err := os.Chtimes(f.path, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CleanTemp(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		_, err := os.Stat(f.path)
		if gone := errors.Is(err, fs.ErrNotExist); gone != f.removed {
			t.Errorf("%s: removed = %v, want %v", f.path, gone, f.removed)
		}
	}
	if info, err := s.Stat(ctx, storage.Handle{Kind: storage.KindKeys, Name: "k"}); err != nil || info.Size != 1 {
		t.Errorf("object after CleanTemp: %+v, %v", info, err)
	}
}

func TestLoadHonoursCancelMidRead(t *testing.T) {
	s, _ := newStorage(t)
	h := storage.Handle{Kind: storage.KindLocks, Name: "l"}
	data := make([]byte, 1<<20)
	if err := s.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.Load(ctx, h, 0, 0, func(r io.Reader) error {
		if _, err := r.Read(make([]byte, 10)); err != nil {
			return err
		}
		cancel()
		_, err := io.ReadAll(r)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Load = %v, want context.Canceled", err)
	}
}

func BenchmarkSave(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "repo")
	s, err := Create(dir)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		h := storage.Handle{Kind: storage.KindPacks, Name: id.Hash([]byte{byte(i), byte(i >> 8)}).String()}
		if err := s.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStreamFiles checks what a pending object leaves on disk: a temporary
// file in the kind's directory while it is written, the object in its
// fan-out directory (recreated if lost) after Publish, nothing after Abort,
// and, after a crash, a file CleanTemp removes.
func TestStreamFiles(t *testing.T) {
	s, dir := newStorage(t)
	ctx := context.Background()
	packs := filepath.Join(dir, "packs")
	temps := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(packs, ".tmp-*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	p, err := s.Create(ctx, storage.KindPacks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("pack bytes")); err != nil {
		t.Fatal(err)
	}
	if got := temps(); len(got) != 1 {
		t.Fatalf("temporary files while writing = %v, want one", got)
	}
	name := id.Hash([]byte("pack bytes")).String()
	if err := os.Remove(filepath.Join(packs, name[:2])); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(packs, name[:2], name)); err != nil || string(got) != "pack bytes" {
		t.Fatalf("published file = %q, %v", got, err)
	}
	if got := temps(); len(got) != 0 {
		t.Fatalf("temporary files after Publish = %v", got)
	}

	p, err = s.Create(ctx, storage.KindPacks)
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if got := temps(); len(got) != 0 {
		t.Fatalf("temporary files after Abort = %v", got)
	}

	// A crash: neither Publish nor Abort.
	p, err = s.Create(ctx, storage.KindPacks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	left := temps()
	if len(left) != 1 {
		t.Fatalf("temporary files = %v, want one", left)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(left[0], old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanTemp(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := temps(); len(got) != 0 {
		t.Fatalf("temporary files after CleanTemp = %v", got)
	}
	p.Abort()
}
