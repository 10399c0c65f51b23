package tree

import (
	"bytes"
	"testing"
)

// TestDocExample keeps the worked example in docs/tree-format.md true.
func TestDocExample(t *testing.T) {
	got := mustEncode(t, &Tree{Nodes: []Node{{Name: "p", Type: Fifo, Mode: 0o644}}})
	want := []byte{0x01, 0x01, 0x01, 'p', 0x04, 0xa4, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
	if empty := mustEncode(t, &Tree{}); !bytes.Equal(empty, []byte{1, 0}) {
		t.Errorf("empty tree = % x, want 01 00", empty)
	}
	// Without the name byte and the second mode byte, this node is as
	// small as a node can be.
	if nodeLen := len(want) - 2; nodeLen-2 != minNodeLen {
		t.Errorf("minNodeLen %d disagrees with the example node of %d bytes", minNodeLen, nodeLen)
	}
}
