package tree

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzDecode(f *testing.F) {
	seeds := []*Tree{
		{},
		goldenTree(),
		{Nodes: []Node{{Name: "x", Type: Dir, Subtree: subtree(3)}}},
		{Nodes: []Node{{Name: "\n", Type: Symlink, LinkTarget: "/"}, {Name: "\xff", Type: BlockDev, Rdev: 1}}},
	}
	for _, tr := range seeds {
		f.Add(mustEncode(f, tr))
	}
	f.Add(craft(Node{Name: "..", Type: Fifo}))
	f.Add(craft(Node{Name: "b", Type: Fifo}, Node{Name: "a", Type: Fifo}))
	f.Add([]byte{FormatVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Decode(data)
		var each []Node
		eachErr := DecodeEach(data, func(n *Node) error { each = append(each, *n); return nil })
		if (err == nil) != (eachErr == nil) {
			t.Fatalf("Decode err %v but DecodeEach err %v", err, eachErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(each, tr.Nodes) {
			t.Fatal("DecodeEach and Decode disagree")
		}
		// The encoding is canonical: whatever Decode accepts is exactly
		// what Encode produces for the result.
		enc, err := tr.Encode(nil)
		if err != nil {
			t.Fatalf("Encode of a decoded tree: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs\nin  %x\nout %x", data, enc)
		}
		tr2, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(tr, tr2) {
			t.Fatalf("decode of re-encoding: %v", err)
		}
	})
}
