package pack

import (
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack/packtest"
)

// BenchmarkWriter measures Add+Finish of whole packs, writer reused, for
// file-chunk-sized and tree-sized blobs. Finish hashes the whole pack, so
// SHA-256 speed bounds the result.
func BenchmarkWriter(b *testing.B) {
	for _, bc := range []struct {
		name     string
		blobSize int
		perPack  int
	}{
		{"1MiB-blobs-16MiB-pack", 1 << 20, 16},
		{"4KiB-blobs-4MiB-pack", 4 << 10, 1024},
	} {
		b.Run(bc.name, func(b *testing.B) {
			blobs := make([][]byte, bc.perPack)
			ids := make([]id.ID, bc.perPack)
			for i := range blobs {
				blobs[i] = randomBlob(uint64(i), bc.blobSize)
				ids[i] = id.Hash(blobs[i])
			}
			w := NewWriter(packtest.NewSealer())
			b.SetBytes(int64(bc.blobSize * bc.perPack))
			b.ReportAllocs()
			for b.Loop() {
				w.Reset()
				for i, data := range blobs {
					if _, err := w.Add(DataBlob, ids[i], data, uint32(len(data))); err != nil {
						b.Fatal(err)
					}
				}
				if _, _, _, err := w.Finish(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadHeader measures parsing the header of a pack of small blobs.
func BenchmarkReadHeader(b *testing.B) {
	w := NewWriter(packtest.NewSealer())
	for i := range 1024 {
		data := randomBlob(uint64(i), 64)
		if _, err := w.Add(TreeBlob, id.Hash(data), data, 64); err != nil {
			b.Fatal(err)
		}
	}
	packBytes, _, _, err := w.Finish()
	if err != nil {
		b.Fatal(err)
	}
	sealer := packtest.NewSealer()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadHeader(bytesReaderAt(packBytes), int64(len(packBytes)), sealer); err != nil {
			b.Fatal(err)
		}
	}
}

type bytesReaderAt []byte

func (p bytesReaderAt) ReadAt(b []byte, off int64) (int, error) {
	return copy(b, p[off:]), nil
}
