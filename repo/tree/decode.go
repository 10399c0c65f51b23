package tree

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/costor/costor/repo/id"
)

// Smallest possible encodings (even of entries that are then rejected, so
// that the error names the real problem), used to reject declared counts
// that the remaining input could not hold before allocating for them.
const (
	minNodeLen  = 15 // 15 one-byte fields: see docs/tree-format.md
	minXattrLen = 2  // two one-byte lengths
	minChunkLen = 2*id.Size + 1
)

// Decode parses an encoded tree, validating it exactly as Encode would.
// Errors wrap ErrInvalid and name the offending entry. The strings in the
// result share one copy of data, made once; data itself is not retained.
func Decode(data []byte) (*Tree, error) {
	d := newDecoder(data)
	count, err := d.header()
	if err != nil {
		return nil, err
	}
	t := &Tree{}
	if count > 0 {
		t.Nodes = make([]Node, count)
	}
	prev := ""
	for i := range t.Nodes {
		if err := d.node(i, &t.Nodes[i], prev); err != nil {
			return nil, err
		}
		prev = t.Nodes[i].Name
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return t, nil
}

// DecodeEach decodes and validates data one node at a time and calls fn for
// each, in order, without building the whole slice: for huge directories.
// The *Node is reused between calls, so fn must copy *n to keep it (the
// copy stays valid: its strings and slices are never reused). fn may have
// been called for leading entries before a later entry turns out invalid;
// use Decode when nothing may be acted on until the whole tree is known
// good. An error returned by fn stops decoding and is returned unchanged.
func DecodeEach(data []byte, fn func(*Node) error) error {
	d := newDecoder(data)
	count, err := d.header()
	if err != nil {
		return err
	}
	var n Node
	prev := ""
	for i := range count {
		n = Node{}
		if err := d.node(i, &n, prev); err != nil {
			return err
		}
		if err := fn(&n); err != nil {
			return err
		}
		prev = n.Name
	}
	return d.end()
}

// decoder reads fields with a sticky error: after the first failure every
// read returns a zero value, so each node is checked once, at its end.
type decoder struct {
	buf  []byte
	str  string // string(buf): decoded strings are substrings, not allocations
	pos  int
	err  string
	slab []Chunk // chunk lists are carved from here to save one alloc per file
}

func newDecoder(data []byte) *decoder {
	return &decoder{buf: data, str: string(data)}
}

func (d *decoder) header() (int, error) {
	if len(d.buf) == 0 {
		return 0, &invalidError{entry: -1, reason: "empty input"}
	}
	if v := d.buf[0]; v != FormatVersion {
		return 0, &invalidError{entry: -1, reason: fmt.Sprintf("unknown format version %d (this costor reads %d)", v, FormatVersion)}
	}
	d.pos = 1
	count := d.count("entry count", minNodeLen)
	if d.err != "" {
		return 0, &invalidError{entry: -1, reason: d.err}
	}
	return count, nil
}

func (d *decoder) end() error {
	if rest := len(d.buf) - d.pos; rest != 0 {
		return &invalidError{entry: -1, reason: fmt.Sprintf("%d trailing bytes after the last entry", rest)}
	}
	return nil
}

// node decodes entry i into n, which must be zero, and checks it against
// the previous entry's name.
func (d *decoder) node(i int, n *Node, prev string) error {
	n.Name = d.string("name")
	if d.err == "" {
		if d.pos >= len(d.buf) {
			d.fail("type", "truncated")
		} else {
			n.Type = NodeType(d.buf[d.pos])
			d.pos++
		}
	}
	n.Mode = d.uint32("mode")
	n.UID = d.uint32("uid")
	n.GID = d.uint32("gid")
	n.User = d.string("user")
	n.Group = d.string("group")
	n.Size = d.uvarint("size")
	n.MTime = d.varint("mtime")
	n.ATime = d.varint("atime")
	n.CTime = d.varint("ctime")
	n.Inode = d.uvarint("inode")
	n.Device = d.uvarint("device")
	n.Links = d.uvarint("links")
	n.Xattrs = d.xattrs()
	switch n.Type {
	case File:
		n.Content = d.chunks()
	case Dir:
		n.Subtree = d.id("subtree")
	case Symlink:
		n.LinkTarget = d.string("link target")
	case CharDev, BlockDev:
		n.Rdev = d.uvarint("rdev")
	}

	reason := d.err
	if reason == "" {
		reason = nodeProblem(n)
	}
	if reason == "" && i > 0 {
		reason = orderProblem(prev, n.Name)
	}
	if reason != "" {
		return &invalidError{entry: i, name: n.Name, reason: reason}
	}
	return nil
}

func (d *decoder) fail(field, reason string) {
	if d.err == "" {
		d.err = field + ": " + reason
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != "" {
		return 0
	}
	if d.pos < len(d.buf) && d.buf[d.pos] < 0x80 {
		// Most fields fit one byte; skip the general loop for them.
		d.pos++
		return uint64(d.buf[d.pos-1])
	}
	v, n := binary.Uvarint(d.buf[d.pos:])
	switch {
	case n == 0:
		d.fail(field, "truncated")
		return 0
	case n < 0:
		d.fail(field, "varint overflows 64 bits")
		return 0
	case n > 1 && d.buf[d.pos+n-1] == 0:
		// Only minimal varints are accepted, so that a decoded tree
		// re-encodes to exactly the bytes it came from.
		d.fail(field, "non-minimal varint")
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) varint(field string) int64 {
	u := d.uvarint(field)
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) uint32(field string) uint32 {
	v := d.uvarint(field)
	if v > math.MaxUint32 {
		d.fail(field, fmt.Sprintf("%d exceeds 32 bits", v))
		return 0
	}
	return uint32(v)
}

// count reads a declared number of items, each at least min bytes long.
func (d *decoder) count(field string, min int) int {
	v := d.uvarint(field)
	if rest := uint64(len(d.buf) - d.pos); v > rest/uint64(min) {
		d.fail(field, fmt.Sprintf("declares %d, more than the remaining %d bytes can hold", v, rest))
		return 0
	}
	return int(v)
}

func (d *decoder) length(field string) int {
	v := d.uvarint(field)
	if v > uint64(len(d.buf)-d.pos) {
		d.fail(field, "truncated")
		return 0
	}
	return int(v)
}

func (d *decoder) string(field string) string {
	l := d.length(field)
	s := d.str[d.pos : d.pos+l]
	d.pos += l
	return s
}

func (d *decoder) id(field string) id.ID {
	var v id.ID
	if d.err != "" {
		return v
	}
	if len(d.buf)-d.pos < len(v) {
		d.fail(field, "truncated")
		return v
	}
	d.pos += copy(v[:], d.buf[d.pos:])
	return v
}

func (d *decoder) xattrs() []Xattr {
	count := d.count("xattr count", minXattrLen)
	if count == 0 {
		return nil
	}
	xs := make([]Xattr, count)
	for i := range xs {
		xs[i].Name = d.string("xattr name")
		if l := d.length("xattr value"); l > 0 {
			xs[i].Value = append([]byte(nil), d.buf[d.pos:d.pos+l]...)
			d.pos += l
		}
	}
	return xs
}

func (d *decoder) chunks() []Chunk {
	count := d.count("chunk count", minChunkLen)
	if count == 0 {
		return nil
	}
	if cap(d.slab)-len(d.slab) < count {
		// count fits the remaining input, so this stays O(len(input)).
		size := max(count, min(256, (len(d.buf)-d.pos)/minChunkLen))
		d.slab = make([]Chunk, 0, size)
	}
	start := len(d.slab)
	d.slab = d.slab[:start+count]
	cs := d.slab[start : start+count : start+count]
	for i := range cs {
		cs[i].ID = d.id("chunk id")
		k := d.id("chunk key")
		cs[i].Key = k
		cs[i].Length = d.uint32("chunk length")
	}
	return cs
}
