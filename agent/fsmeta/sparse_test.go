package fsmeta

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// sparseContents are contents whose zero runs sit at every interesting
// place relative to block boundaries.
func sparseContents() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(255) + 1)
		}
		return b
	}
	zeros := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return map[string][]byte{
		"empty":                 nil,
		"tiny":                  []byte("abc"),
		"only zeros":            zeros(3*sparseBlock + 17),
		"one zero byte":         zeros(1),
		"leading zeros":         cat(zeros(2*sparseBlock), data(100)),
		"misaligned zeros":      cat(data(100), zeros(3*sparseBlock), data(100)),
		"trailing zeros":        cat(data(sparseBlock), zeros(5*sparseBlock+1)),
		"zero tail in block":    cat(data(sparseBlock+10), zeros(20)),
		"zero byte at end":      cat(data(2*sparseBlock), zeros(1)),
		"alternating blocks":    cat(data(sparseBlock), zeros(sparseBlock), data(sparseBlock), zeros(sparseBlock), data(1)),
		"no zeros, many blocks": data(10*sparseBlock + 5),
	}
}

func TestSparseWriterContent(t *testing.T) {
	chunkSizes := []int{1, 7, sparseBlock - 1, sparseBlock, sparseBlock + 1, 3*sparseBlock + 5, 1 << 20}
	dir := t.TempDir()
	for name, content := range sparseContents() {
		for _, chunk := range chunkSizes {
			t.Run(name+"/"+strconv.Itoa(chunk), func(t *testing.T) {
				path := filepath.Join(dir, "f")
				f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				w := NewSparseWriter(f)
				for p := content; len(p) > 0; {
					n := min(chunk, len(p))
					if got, err := w.Write(p[:n]); err != nil || got != n {
						t.Fatalf("Write(%d bytes) = %d, %v", n, got, err)
					}
					p = p[n:]
				}
				if w.Size() != int64(len(content)) {
					t.Errorf("Size = %d, want %d", w.Size(), len(content))
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, content) {
					t.Fatalf("content differs: got %d bytes, want %d", len(got), len(content))
				}
			})
		}
	}
}
