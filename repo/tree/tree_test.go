package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/costor/costor/repo/id"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func chunk(seed byte, length uint32) Chunk {
	var c Chunk
	for i := range c.ID {
		c.ID[i] = seed
		c.Key[i] = ^seed
	}
	c.Length = length
	return c
}

func subtree(seed byte) id.ID { return id.Hash([]byte{seed}) }

// goldenTree holds one of everything the format can express.
func goldenTree() *Tree {
	t := &Tree{Nodes: []Node{
		{Name: "a\nnewline", Type: File, Mode: 0o644, UID: 1000, GID: 1000, User: "alice", Group: "staff",
			Size: 0, MTime: 1700000000123456789, ATime: 1700000001000000000, CTime: 1700000002000000000,
			Inode: 42, Device: 0x803, Links: 1},
		{Name: "big.iso", Type: File, Mode: 0o6755, UID: 0, GID: 0, User: "root", Group: "root",
			Size: 1<<32 - 1 + 3, MTime: -86400_000000000, Inode: math.MaxUint64, Device: 1, Links: 3,
			Xattrs: []Xattr{
				{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")},
				{Name: "user.empty"},
				{Name: "user.mime", Value: []byte{0xff, 0x00, 0xfe}},
			},
			Content: []Chunk{chunk(1, 1<<32-1), chunk(2, 1), chunk(3, 2)}},
		{Name: "bin", Type: Dir, Mode: 0o1777, Subtree: subtree(1), MTime: -1, Inode: 7, Device: 0x803, Links: 2},
		{Name: "fifo", Type: Fifo, Mode: 0o600, UID: math.MaxUint32, GID: math.MaxUint32},
		{Name: "link", Type: Symlink, Mode: 0o777, Size: 11, LinkTarget: "../etc/\xffpasswd"},
		{Name: "null", Type: CharDev, Mode: 0o666, Rdev: 0x103},
		{Name: "sda", Type: BlockDev, Mode: 0o660, Group: "disk", Rdev: 0x800},
		{Name: "sock", Type: Socket, Mode: 0o2755},
		{Name: "\xc3\x28 not utf-8 \xff", Type: File, Mode: 0o400, Size: 5, Content: []Chunk{chunk(9, 5)}},
	}}
	return t
}

func mustEncode(t testing.TB, tr *Tree) []byte {
	t.Helper()
	b, err := tr.Encode(nil)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

// craft encodes nodes without any validation, to build hostile input.
func craft(nodes ...Node) []byte {
	b := []byte{FormatVersion}
	b = binary.AppendUvarint(b, uint64(len(nodes)))
	for i := range nodes {
		b = appendNode(b, &nodes[i])
	}
	return b
}

func TestGolden(t *testing.T) {
	tr := goldenTree()
	got := mustEncode(t, tr)
	path := filepath.Join("testdata", "tree-v1.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoding differs from %s (run go test -update if the format change is intended)\ngot  %x\nwant %x", path, got, want)
	}
	dec, err := Decode(want)
	if err != nil {
		t.Fatalf("Decode golden: %v", err)
	}
	if !reflect.DeepEqual(dec, tr) {
		t.Errorf("decoded golden differs:\ngot  %+v\nwant %+v", dec, tr)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := map[string]*Tree{
		"empty":   {},
		"golden":  goldenTree(),
		"one dir": {Nodes: []Node{{Name: "x", Type: Dir, Subtree: subtree(3)}}},
		"negative times": {Nodes: []Node{{Name: "old", Type: Fifo,
			MTime: math.MinInt64, ATime: math.MaxInt64, CTime: -1}}},
		"max values": {Nodes: []Node{{Name: strings.Repeat("n", 300), Type: CharDev, Mode: modeBits,
			UID: math.MaxUint32, GID: math.MaxUint32, Size: math.MaxUint64, Inode: math.MaxUint64,
			Device: math.MaxUint64, Links: math.MaxUint64, Rdev: math.MaxUint64}}},
	}
	for name, tr := range cases {
		t.Run(name, func(t *testing.T) {
			b := mustEncode(t, tr)
			dec, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(dec, tr) {
				t.Fatalf("round trip differs:\ngot  %+v\nwant %+v", dec, tr)
			}
			// Encode appends and is deterministic.
			prefix := []byte("prefix")
			b2, err := dec.Encode(prefix)
			if err != nil || !bytes.Equal(b2[:len(prefix)], prefix) || !bytes.Equal(b2[len(prefix):], b) {
				t.Fatalf("re-encode with prefix: %v, %x", err, b2)
			}
		})
	}
}

func TestErrorMessageNamesEntry(t *testing.T) {
	tr := &Tree{Nodes: []Node{
		{Name: "a", Type: Fifo}, {Name: "b", Type: Fifo}, {Name: "c", Type: Fifo}, {Name: "d", Type: Fifo},
		{Name: "..", Type: Fifo},
	}}
	_, err := tr.Encode(nil)
	want := `tree entry 4 (".."): invalid name: "." and ".." are reserved`
	if err == nil || err.Error() != want {
		t.Errorf("Encode error = %v, want %q", err, want)
	}
	_, err = Decode(craft(tr.Nodes...))
	if err == nil || err.Error() != want || !errors.Is(err, ErrInvalid) {
		t.Errorf("Decode error = %v, want %q wrapping ErrInvalid", err, want)
	}
}

// invalidNodes are rejected by Encode and, crafted, by Decode, with an error
// naming the entry and mentioning want.
var invalidNodes = []struct {
	name  string
	nodes []Node
	want  string
}{
	{"dotdot", []Node{{Name: "..", Type: Fifo}}, "reserved"},
	{"dot", []Node{{Name: ".", Type: Fifo}}, "reserved"},
	{"slash", []Node{{Name: "a/b", Type: Fifo}}, "'/'"},
	{"empty name", []Node{{Name: "", Type: Fifo}}, "empty"},
	{"nul", []Node{{Name: "a\x00b", Type: Fifo}}, "NUL"},
	{"unsorted", []Node{{Name: "b", Type: Fifo}, {Name: "a", Type: Fifo}}, "not sorted"},
	{"duplicate", []Node{{Name: "a", Type: Fifo}, {Name: "a", Type: Fifo}}, "duplicate"},
	{"type zero", []Node{{Name: "a"}}, "unknown type"},
	{"type eight", []Node{{Name: "a", Type: 8}}, "unknown type"},
	{"mode with S_IFREG", []Node{{Name: "a", Type: Fifo, Mode: 0o100644}}, "mode"},
	{"dir without subtree", []Node{{Name: "a", Type: Dir}}, "subtree"},
	{"file size mismatch", []Node{{Name: "a", Type: File, Size: 4, Content: []Chunk{chunk(1, 3)}}}, "size"},
	{"file size without chunks", []Node{{Name: "a", Type: File, Size: 1}}, "size"},
	{"zero-length chunk", []Node{{Name: "a", Type: File, Size: 1, Content: []Chunk{chunk(1, 0), chunk(2, 1)}}}, "zero length"},
	{"xattr unsorted", []Node{{Name: "a", Type: Fifo, Xattrs: []Xattr{{Name: "b"}, {Name: "a"}}}}, "xattr 1"},
	{"xattr duplicate", []Node{{Name: "a", Type: Fifo, Xattrs: []Xattr{{Name: "a"}, {Name: "a"}}}}, "xattr 1"},
	{"xattr empty name", []Node{{Name: "a", Type: Fifo, Xattrs: []Xattr{{Name: ""}}}}, "xattr 0"},
	{"xattr nul", []Node{{Name: "a", Type: Fifo, Xattrs: []Xattr{{Name: "a\x00"}}}}, "NUL"},
}

// Fields the encoding omits for the node's type: Encode must refuse rather
// than silently drop them. (Decode cannot see them by construction.)
var encodeOnlyInvalid = []struct {
	name string
	node Node
	want string
}{
	{"file with subtree", Node{Name: "a", Type: File, Subtree: subtree(1)}, "has a subtree"},
	{"dir with content", Node{Name: "a", Type: Dir, Subtree: subtree(1), Content: []Chunk{chunk(1, 1)}}, "content"},
	{"file with link target", Node{Name: "a", Type: File, LinkTarget: "x"}, "link target"},
	{"symlink with rdev", Node{Name: "a", Type: Symlink, Rdev: 1}, "device number"},
}

func TestEncodeRejects(t *testing.T) {
	for _, tc := range invalidNodes {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Tree{Nodes: tc.nodes}
			out, err := tr.Encode([]byte("keep"))
			checkInvalid(t, err, len(tc.nodes)-1, tc.want)
			if string(out) != "keep" {
				t.Errorf("Encode changed dst on error: %q", out)
			}
		})
	}
	for _, tc := range encodeOnlyInvalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Tree{Nodes: []Node{tc.node}}).Encode(nil)
			checkInvalid(t, err, 0, tc.want)
		})
	}
}

func TestDecodeRejectsCrafted(t *testing.T) {
	for _, tc := range invalidNodes {
		t.Run(tc.name, func(t *testing.T) {
			data := craft(tc.nodes...)
			_, err := Decode(data)
			checkInvalid(t, err, len(tc.nodes)-1, tc.want)
			err = DecodeEach(data, func(*Node) error { return nil })
			checkInvalid(t, err, len(tc.nodes)-1, tc.want)
		})
	}
}

func checkInvalid(t *testing.T, err error, entry int, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted an invalid tree")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	if prefix := fmt.Sprintf("tree entry %d", entry); !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q does not start with %q", err, prefix)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	valid := craft(Node{Name: "a", Type: Fifo})
	hdr := func(count uint64) []byte { return binary.AppendUvarint([]byte{FormatVersion}, count) }
	// A Fifo node "a" up to (not including) its xattr count.
	fifoPrefix := craft(Node{Name: "a", Type: Fifo})
	fifoPrefix = fifoPrefix[:len(fifoPrefix)-1]
	filePrefix := craft(Node{Name: "a", Type: File})
	filePrefix = filePrefix[:len(filePrefix)-1] // drop chunk count

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"version 0", []byte{0, 0}, "unknown format version 0"},
		{"version 2", []byte{2, 0}, "unknown format version 2"},
		{"no count", []byte{FormatVersion}, "entry count: truncated"},
		{"huge entry count", hdr(math.MaxUint64), "entry count: declares"},
		{"entry count beyond input", append(hdr(2), valid[2:]...), "entry count: declares"},
		{"varint overflow", append([]byte{FormatVersion}, bytes.Repeat([]byte{0xff}, 11)...), "overflows"},
		{"non-minimal count", []byte{FormatVersion, 0x80, 0x00}, "non-minimal"},
		{"trailing byte", append(append([]byte{}, valid...), 0), "1 trailing bytes"},
		{"huge name length", append(hdr(1), append(binary.AppendUvarint(nil, 1<<40), make([]byte, 20)...)...), "name: truncated"},
		{"huge xattr count", append(append(append([]byte{}, fifoPrefix...), binary.AppendUvarint(nil, 1<<62)...), make([]byte, 8)...), "xattr count: declares"},
		{"huge chunk count", append(append(append([]byte{}, filePrefix...), binary.AppendUvarint(nil, 1<<62)...), make([]byte, 8)...), "chunk count: declares"},
		{"uid over 32 bits", func() []byte {
			b := hdr(1)
			b = appendString(b, "a")
			b = append(b, byte(Fifo), 0)
			b = binary.AppendUvarint(b, 1<<32)
			return append(b, make([]byte, 20)...)
		}(), "uid: 4294967296 exceeds 32 bits"},
		{"chunk length over 32 bits", func() []byte {
			b := append([]byte{}, filePrefix...)
			b = append(b, 1)
			b = append(b, make([]byte, 64)...)
			return binary.AppendUvarint(b, 1<<32)
		}(), "chunk length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode = %v, want an ErrInvalid mentioning %q", err, tc.want)
			}
			if err2 := DecodeEach(tc.data, func(*Node) error { return nil }); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("DecodeEach = %v, want the same error as Decode (%v)", err2, err)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	data := mustEncode(t, goldenTree())
	for i := range len(data) {
		if _, err := Decode(data[:i]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Decode of the first %d of %d bytes: %v, want ErrInvalid", i, len(data), err)
		}
	}
}

func TestDecodeEach(t *testing.T) {
	tr := goldenTree()
	data := mustEncode(t, tr)
	var got []Node
	if err := DecodeEach(data, func(n *Node) error { got = append(got, *n); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tr.Nodes) {
		t.Errorf("DecodeEach nodes differ:\ngot  %+v\nwant %+v", got, tr.Nodes)
	}

	stop := errors.New("stop")
	calls := 0
	err := DecodeEach(data, func(*Node) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("DecodeEach with failing fn: err=%v calls=%d, want stop after 1", err, calls)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "a\nb", "\xff\xfe", " ", "...", ".hidden", strings.Repeat("x", 1000)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/", "a\x00"} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSortAndFind(t *testing.T) {
	tr := &Tree{Nodes: []Node{
		{Name: "b", Type: Fifo, Xattrs: []Xattr{{Name: "z"}, {Name: "a"}}},
		{Name: "\xff", Type: Fifo},
		{Name: "B", Type: Fifo},
		{Name: "a", Type: Fifo},
	}}
	tr.Sort()
	var names []string
	for _, n := range tr.Nodes {
		names = append(names, n.Name)
	}
	if want := []string{"B", "a", "b", "\xff"}; !reflect.DeepEqual(names, want) {
		t.Errorf("sorted names = %q, want %q", names, want)
	}
	if x := tr.Nodes[2].Xattrs; x[0].Name != "a" || x[1].Name != "z" {
		t.Errorf("xattrs not sorted: %+v", x)
	}
	if _, err := tr.Encode(nil); err != nil {
		t.Errorf("Encode after Sort: %v", err)
	}
	for _, name := range names {
		if n, ok := tr.Find(name); !ok || n.Name != name {
			t.Errorf("Find(%q) = %v, %v", name, n, ok)
		}
	}
	if n, ok := tr.Find("c"); ok {
		t.Errorf("Find(c) = %v, want not found", n)
	}
	n, _ := tr.Find("a")
	n.Mode = 0o700
	if tr.Nodes[1].Mode != 0o700 {
		t.Error("Find does not return a pointer into the tree")
	}
}

// The decoded chunk lists share a slab; appending to one must not clobber
// the next file's chunks.
func TestChunkSlabIsolation(t *testing.T) {
	tr := &Tree{Nodes: []Node{
		{Name: "a", Type: File, Size: 1, Content: []Chunk{chunk(1, 1)}},
		{Name: "b", Type: File, Size: 2, Content: []Chunk{chunk(2, 2)}},
	}}
	dec, err := Decode(mustEncode(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(dec.Nodes[0].Content, chunk(7, 7))
	if !reflect.DeepEqual(dec.Nodes[1].Content, tr.Nodes[1].Content) {
		t.Error("appending to one node's Content changed another's")
	}
}
