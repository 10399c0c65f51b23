package fsmeta

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSparseWriterHoles(t *testing.T) {
	const mib = 1 << 20
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, mib)
	for i := range data {
		data[i] = byte(rng.IntN(255) + 1)
	}
	tests := []struct {
		name      string
		parts     [][]byte // written in order; nil entries are zero runs of zeroLen
		zeroLen   int
		chunk     int
		wantHoles bool
	}{
		{"data+64MiB zeros+1 byte, odd chunks", [][]byte{data, nil, {1}}, 64 * mib, mib + 3, true},
		{"data+64MiB zeros+1 byte, 4097 chunks", [][]byte{data, nil, {1}}, 64 * mib, 4097, true},
		{"data+64MiB zeros+1 byte, whole", [][]byte{data, nil, {1}}, 64 * mib, 66 * mib, true},
		{"trailing 64MiB zeros", [][]byte{data, nil}, 64 * mib, 64 * 1024, true},
		{"leading 8MiB zeros", [][]byte{nil, data}, 8 * mib, 1000, true},
		{"no zeros", [][]byte{data}, 0, 4096, false},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []byte
			for _, p := range tt.parts {
				if p == nil {
					p = make([]byte, tt.zeroLen)
				}
				want = append(want, p...)
			}
			path := filepath.Join(dir, "sparse")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w := NewSparseWriter(f)
			for p := want; len(p) > 0; {
				n := min(tt.chunk, len(p))
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			holes, err := HasHoles(f)
			if err != nil {
				t.Fatal(err)
			}
			if holes != tt.wantHoles {
				t.Errorf("HasHoles = %v, want %v", holes, tt.wantHoles)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(len(want)) {
				t.Errorf("size = %d, want %d", st.Size, len(want))
			}
			allocated := st.Blocks * 512
			if tt.wantHoles && allocated > 2*mib {
				t.Errorf("allocated %d bytes for %d bytes with %d zeros: holes were written", allocated, len(want), tt.zeroLen)
			}
			got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("content differs (%d vs %d bytes)", len(got), len(want))
			}
		})
	}
}

func TestHasHolesKeepsPosition(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if holes, err := HasHoles(f); err != nil || holes {
		t.Fatalf("empty file: HasHoles = %v, %v", holes, err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	if holes, err := HasHoles(f); err != nil || !holes {
		t.Fatalf("truncated-up file: HasHoles = %v, %v", holes, err)
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 5 {
		t.Errorf("position after HasHoles = %d, want 5", pos)
	}
}
