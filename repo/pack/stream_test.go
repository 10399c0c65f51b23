package pack

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack/packtest"
)

// TestStreamWriterSamePack writes the same blobs through an in-memory and
// a stream writer: the sink must receive exactly the in-memory pack, with
// the same ID and entries, for blobs below, around and above the stream
// buffer, and for a second pack after ResetTo.
func TestStreamWriterSamePack(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 100, 5000, streamBuffer - 20, 30, streamBuffer, streamBuffer + 1, 3 * streamBuffer, 7, 700_000, 700_000}
	var blobs [][]byte
	for _, n := range sizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		blobs = append(blobs, b)
	}
	mem := NewWriter(packtest.IdentitySealer{})
	var sink bytes.Buffer
	str := NewStreamWriter(packtest.IdentitySealer{}, &sink)
	for round := range 2 {
		for i, b := range blobs {
			blobID := id.Hash(b)
			em, err := mem.Add(DataBlob, blobID, b, uint32(i))
			if err != nil {
				t.Fatal(err)
			}
			es, err := str.Add(DataBlob, blobID, b, uint32(i))
			if err != nil {
				t.Fatal(err)
			}
			if em != es {
				t.Fatalf("round %d blob %d: entry %+v, in memory %+v", round, i, es, em)
			}
			if mem.Size() != str.Size() {
				t.Fatalf("round %d blob %d: Size %d, in memory %d", round, i, str.Size(), mem.Size())
			}
		}
		want, wantEntries, wantID, err := mem.Finish()
		if err != nil {
			t.Fatal(err)
		}
		got, gotEntries, gotID, err := str.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			t.Fatalf("stream Finish returned %d bytes, want none", len(got))
		}
		if !bytes.Equal(sink.Bytes(), want) || gotID != wantID || !slices.Equal(gotEntries, wantEntries) {
			t.Fatalf("round %d: stream pack %d bytes %s, in memory %d bytes %s", round, sink.Len(), gotID.Short(), len(want), wantID.Short())
		}
		if str.Size() != len(want) {
			t.Fatalf("round %d: Size after Finish %d, pack is %d", round, str.Size(), len(want))
		}
		if id.Hash(want) != wantID {
			t.Fatal("pack ID is not the hash of the pack")
		}
		mem.Reset()
		sink.Reset()
		str.ResetTo(&sink)
		blobs = blobs[3:]
	}
}

type failingSink struct{ left int }

var errSink = errors.New("disk full")

func (f *failingSink) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, errSink
	}
	f.left -= len(p)
	return len(p), nil
}

// TestStreamWriterSinkError: once a write fails the pack is lost, and every
// later Add and Finish says so instead of producing a pack with a hole.
func TestStreamWriterSinkError(t *testing.T) {
	w := NewStreamWriter(packtest.IdentitySealer{}, &failingSink{left: streamBuffer / 2})
	big := bytes.Repeat([]byte{1}, 2*streamBuffer)
	if _, err := w.Add(DataBlob, id.Hash(big), big, 1); !errors.Is(err, errSink) {
		t.Fatalf("Add past the failing write = %v, want %v", err, errSink)
	}
	small := []byte("small")
	if _, err := w.Add(DataBlob, id.Hash(small), small, 1); !errors.Is(err, errSink) {
		t.Fatalf("Add after a failed write = %v, want %v", err, errSink)
	}
	if _, _, _, err := w.Finish(); err == nil {
		t.Fatal("Finish after a failed write succeeded")
	}
	if !w.Failed() {
		t.Fatal("Failed = false after a failed write")
	}
	w.ResetTo(&bytes.Buffer{})
	if w.Failed() {
		t.Fatal("Failed = true after ResetTo a new sink")
	}
}
