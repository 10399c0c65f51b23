package api

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

func seedBatch() []byte {
	data := []byte("sealed bytes of a blob")
	b := AppendBatchBlob(nil, BatchBlob{Type: pack.DataBlob, ID: id.Hash(data), RawLength: 5, Data: data})
	tree := []byte("a tree")
	return AppendBatchBlob(b, BatchBlob{Type: pack.TreeBlob, ID: id.Hash(tree), RawLength: 6, Data: tree})
}

func FuzzDecodeIDs(f *testing.F) {
	f.Add([]byte{}, 4)
	f.Add(AppendIDs(nil, []id.ID{id.Hash([]byte("a")), id.Hash([]byte("b"))}), 2)
	f.Add(make([]byte, 33), 10)
	f.Add(make([]byte, 64), 1)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max = max % (MaxIDs + 1)
		ids, err := DecodeIDs(data, max)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(ids) > max {
			t.Fatalf("%d IDs decoded with a limit of %d", len(ids), max)
		}
		if !bytes.Equal(AppendIDs(nil, ids), data) {
			t.Fatal("decoded IDs do not encode to the input")
		}
		// The streaming reader agrees.
		var streamed []id.ID
		if err := ReadIDs(bytes.NewReader(data), func(b id.ID) error { streamed = append(streamed, b); return nil }); err != nil {
			t.Fatalf("ReadIDs rejects what DecodeIDs accepts: %v", err)
		}
		if len(streamed) != len(ids) {
			t.Fatalf("ReadIDs read %d IDs, DecodeIDs %d", len(streamed), len(ids))
		}
	})
}

func FuzzBatchReader(f *testing.F) {
	f.Add(seedBatch())
	f.Add(seedBatch()[:40])
	f.Add([]byte{})
	f.Add(append([]byte{2}, seedBatch()[1:]...))
	huge := seedBatch()[:batchHeaderLen]
	huge[batchHeaderLen-1], huge[batchHeaderLen-2] = 0xff, 0xff
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		br := NewBatchReader(bytes.NewReader(data))
		var re []byte
		var buf []byte
		for {
			b, err := br.Next(buf)
			if err == io.EOF {
				if !bytes.Equal(re, data) {
					t.Fatal("decoded batch does not encode to the input")
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				if !bytes.HasPrefix(data, re) {
					t.Fatal("blobs decoded before the error are not a prefix of the input")
				}
				return
			}
			if b.Type != pack.DataBlob && b.Type != pack.TreeBlob {
				t.Fatalf("blob type %d accepted", b.Type)
			}
			if len(b.Data) > MaxBlobSize {
				t.Fatalf("blob of %d bytes accepted", len(b.Data))
			}
			re = AppendBatchBlob(re, b)
			buf = b.Data[:0]
		}
	})
}

func FuzzReadCommitHeader(f *testing.F) {
	rec := []byte(`{"version":1,"host":"pc"}`)
	f.Add(AppendIDs(AppendCommitHeader(nil, rec), []id.ID{id.Hash(rec)}))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		got, err := ReadCommitHeader(r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(got) == 0 || len(got) > MaxRecordSize {
			t.Fatalf("record of %d bytes accepted", len(got))
		}
		head := AppendCommitHeader(nil, got)
		if !bytes.HasPrefix(data, head) || r.Len() != len(data)-len(head) {
			t.Fatal("ReadCommitHeader consumed something other than its header")
		}
	})
}
