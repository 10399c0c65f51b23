package tree

import (
	"encoding/binary"
	"math/bits"

	"github.com/costor/costor/repo/id"
)

// FormatVersion is the first byte of every encoded tree.
const FormatVersion = 1

// Encode appends the canonical encoding of t to dst and returns the
// extended slice. t must be sorted (see Sort) with unique names, and every
// node must be valid; otherwise Encode returns dst unchanged and an error
// wrapping ErrInvalid that names the entry.
func (t *Tree) Encode(dst []byte) ([]byte, error) {
	size := 1 + uvarintLen(uint64(len(t.Nodes)))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		reason := nodeProblem(n)
		if reason == "" && i > 0 {
			reason = orderProblem(t.Nodes[i-1].Name, n.Name)
		}
		if reason != "" {
			return dst, &invalidError{entry: i, name: n.Name, reason: reason}
		}
		size += nodeLen(n)
	}

	// One exact allocation: a 100,000-entry directory must not regrow.
	out := dst
	if cap(dst)-len(dst) < size {
		out = make([]byte, len(dst), len(dst)+size)
		copy(out, dst)
	}
	out = append(out, FormatVersion)
	out = binary.AppendUvarint(out, uint64(len(t.Nodes)))
	for i := range t.Nodes {
		out = appendNode(out, &t.Nodes[i])
	}
	return out, nil
}

func appendNode(b []byte, n *Node) []byte {
	b = appendString(b, n.Name)
	b = append(b, byte(n.Type))
	b = binary.AppendUvarint(b, uint64(n.Mode))
	b = binary.AppendUvarint(b, uint64(n.UID))
	b = binary.AppendUvarint(b, uint64(n.GID))
	b = appendString(b, n.User)
	b = appendString(b, n.Group)
	b = binary.AppendUvarint(b, n.Size)
	b = binary.AppendVarint(b, n.MTime)
	b = binary.AppendVarint(b, n.ATime)
	b = binary.AppendVarint(b, n.CTime)
	b = binary.AppendUvarint(b, n.Inode)
	b = binary.AppendUvarint(b, n.Device)
	b = binary.AppendUvarint(b, n.Links)
	b = binary.AppendUvarint(b, uint64(len(n.Xattrs)))
	for _, x := range n.Xattrs {
		b = appendString(b, x.Name)
		b = binary.AppendUvarint(b, uint64(len(x.Value)))
		b = append(b, x.Value...)
	}
	switch n.Type {
	case File:
		b = binary.AppendUvarint(b, uint64(len(n.Content)))
		for i := range n.Content {
			c := &n.Content[i]
			b = append(b, c.ID[:]...)
			b = append(b, c.Key[:]...)
			b = binary.AppendUvarint(b, uint64(c.Length))
		}
	case Dir:
		b = append(b, n.Subtree[:]...)
	case Symlink:
		b = appendString(b, n.LinkTarget)
	case CharDev, BlockDev:
		b = binary.AppendUvarint(b, n.Rdev)
	}
	return b
}

// nodeLen is the exact length appendNode will produce.
func nodeLen(n *Node) int {
	l := stringLen(n.Name) + 1 +
		uvarintLen(uint64(n.Mode)) + uvarintLen(uint64(n.UID)) + uvarintLen(uint64(n.GID)) +
		stringLen(n.User) + stringLen(n.Group) +
		uvarintLen(n.Size) +
		varintLen(n.MTime) + varintLen(n.ATime) + varintLen(n.CTime) +
		uvarintLen(n.Inode) + uvarintLen(n.Device) + uvarintLen(n.Links) +
		uvarintLen(uint64(len(n.Xattrs)))
	for _, x := range n.Xattrs {
		l += stringLen(x.Name) + uvarintLen(uint64(len(x.Value))) + len(x.Value)
	}
	switch n.Type {
	case File:
		l += uvarintLen(uint64(len(n.Content)))
		for i := range n.Content {
			l += 2*id.Size + uvarintLen(uint64(n.Content[i].Length))
		}
	case Dir:
		l += id.Size
	case Symlink:
		l += stringLen(n.LinkTarget)
	case CharDev, BlockDev:
		l += uvarintLen(n.Rdev)
	}
	return l
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(uint64(x<<1) ^ uint64(x>>63)) }
