package pack

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack/packtest"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// goldenBlobs are the blobs of testdata/pack-v1.golden. Real blobs are
// ciphertext; plain bytes keep the golden file readable in a hex dump.
var goldenBlobs = []struct {
	typ       BlobType
	data      []byte
	rawLength uint32
}{
	{DataBlob, []byte("first data blob"), 15},
	{TreeBlob, []byte(`{"nodes":[{"name":"a.txt","type":"file"}]}`), 300},
	{DataBlob, bytes.Repeat([]byte("0123456789abcdef"), 20), 1 << 20},
}

func TestGolden(t *testing.T) {
	sealer := packtest.NewSealer()
	w := NewWriter(sealer)
	for _, b := range goldenBlobs {
		if _, err := w.Add(b.typ, id.Hash(b.data), b.data, b.rawLength); err != nil {
			t.Fatal(err)
		}
	}
	packBytes, entries, packID, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "pack-v1.golden")
	if *update {
		if err := os.WriteFile(path, packBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(packBytes, golden) {
		t.Fatalf("the writer's output differs from %s: the pack format changed; if on purpose, bump Version, document it in docs/pack-format.md and run go test -update", path)
	}
	if packID != id.Hash(golden) {
		t.Errorf("pack ID %s is not the hash of the golden file", packID)
	}

	got, err := ReadHeader(bytes.NewReader(golden), int64(len(golden)), sealer)
	if err != nil {
		t.Fatalf("ReadHeader(%s): %v", path, err)
	}
	if len(got) != len(goldenBlobs) {
		t.Fatalf("ReadHeader found %d entries, want %d", len(got), len(goldenBlobs))
	}
	offset := uint32(preambleSize)
	for i, e := range got {
		b := goldenBlobs[i]
		want := Entry{Type: b.typ, ID: id.Hash(b.data), Offset: offset, Length: uint32(len(b.data)), RawLength: b.rawLength}
		if e != want || e != entries[i] {
			t.Errorf("entry %d = %+v, want %+v", i, e, want)
		}
		if err := VerifyBlob(e, golden[e.Offset:e.Offset+e.Length]); err != nil {
			t.Error(err)
		}
		offset += e.Length
	}
}
