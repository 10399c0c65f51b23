package pack

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack/packtest"
)

// FuzzReadHeader feeds arbitrary bytes to ReadHeader. With the identity
// sealer the fuzzer controls the plaintext header, so it reaches every check
// of the parser. Whatever it accepts must be a header the writer could have
// written: entries tiling the blob region, and the same bytes when encoded
// again.
func FuzzReadHeader(f *testing.F) {
	w := NewWriter(packtest.IdentitySealer{})
	for _, sizes := range [][]int{{1}, {3, 5, 7}, {100, 1, 2, 3}} {
		w.Reset()
		for i, size := range sizes {
			data := bytes.Repeat([]byte{byte(i)}, size)
			if _, err := w.Add(BlobType(i%2), id.Hash(data), data, uint32(size)); err != nil {
				f.Fatal(err)
			}
		}
		packBytes, _, _, err := w.Finish()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Clone(packBytes))
	}
	if golden, err := os.ReadFile(filepath.Join("testdata", "pack-v1.golden")); err == nil {
		f.Add(golden)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ReadHeader(bytes.NewReader(data), int64(len(data)), packtest.IdentitySealer{})
		if err != nil {
			return
		}
		sealedLen := int(data[len(data)-8]) | int(data[len(data)-7])<<8 | int(data[len(data)-6])<<16 | int(data[len(data)-5])<<24
		headerStart := len(data) - trailerSize - sealedLen
		next := uint32(preambleSize)
		for i, e := range entries {
			if e.Offset != next || e.Length == 0 || (e.Type != DataBlob && e.Type != TreeBlob) {
				t.Fatalf("accepted entry %d: %+v", i, e)
			}
			next += e.Length
		}
		if int(next) != headerStart {
			t.Fatalf("accepted entries ending at %d, header starts at %d", next, headerStart)
		}
		if reencoded := appendHeader(nil, entries); !bytes.Equal(reencoded, data[headerStart:len(data)-trailerSize]) {
			t.Fatalf("accepted a header that does not re-encode to itself")
		}
	})
}

// FuzzReadHeaderSealed runs the parser behind a real AEAD, as in production:
// arbitrary bytes must be rejected without panicking.
func FuzzReadHeaderSealed(f *testing.F) {
	if golden, err := os.ReadFile(filepath.Join("testdata", "pack-v1.golden")); err == nil {
		f.Add(golden)
	}
	sealer := packtest.NewSealer()
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadHeader(bytes.NewReader(data), int64(len(data)), sealer)
	})
}
