package tree

import (
	"fmt"
	"testing"
)

// bigTree is a 100,000-entry directory of the usual mix: mostly small
// one-chunk files, some larger ones, some subdirectories.
func bigTree(b *testing.B) *Tree {
	b.Helper()
	tr := &Tree{Nodes: make([]Node, 100_000)}
	for i := range tr.Nodes {
		n := Node{
			Name: fmt.Sprintf("file-%07d.dat", i), Type: File, Mode: 0o644,
			UID: 1000, GID: 1000, User: "alice", Group: "alice",
			MTime: 1700000000000000000 + int64(i), ATime: 1700000000000000000, CTime: 1700000000000000000,
			Inode: uint64(1e6 + i), Device: 0x803, Links: 1,
		}
		switch {
		case i%10 == 0:
			n.Type, n.Mode, n.Subtree = Dir, 0o755, subtree(byte(i))
		case i%10 == 1:
			n.Content = []Chunk{chunk(1, 1<<20), chunk(2, 1<<20), chunk(3, 500)}
		default:
			n.Content = []Chunk{chunk(byte(i), uint32(i%4000+1))}
		}
		for _, c := range n.Content {
			n.Size += uint64(c.Length)
		}
		tr.Nodes[i] = n
	}
	tr.Sort()
	return tr
}

func BenchmarkEncode100k(b *testing.B) {
	tr := bigTree(b)
	buf, err := tr.Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if buf, err = tr.Encode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(tr.Nodes)), "ns/entry")
}

func BenchmarkDecode100k(b *testing.B) {
	data, err := bigTree(b).Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/entry")
}

func BenchmarkDecodeEach100k(b *testing.B) {
	data, err := bigTree(b).Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := DecodeEach(data, func(*Node) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/entry")
}
