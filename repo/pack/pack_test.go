package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack/packtest"
)

func randomBlob(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// countingReader counts ReadAt calls, which are requests on remote storage.
type countingReader struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

func TestWriteRead(t *testing.T) {
	tests := []struct {
		name      string
		sizes     []int
		wantReads int
	}{
		{"one small blob", []int{1}, 1},
		{"small pack read at once", []int{100, 2000, 5000}, 1},
		{"large blobs", []int{1 << 20, 3 << 20, 17}, 2},
		{"header larger than first read", repeat(700, 1000), 3},
	}
	sealers := map[string]HeaderSealer{"aes-gcm": packtest.NewSealer(), "identity": packtest.IdentitySealer{}}
	for _, tt := range tests {
		for sealerName, sealer := range sealers {
			t.Run(tt.name+"/"+sealerName, func(t *testing.T) {
				w := NewWriter(sealer)
				var blobs [][]byte
				for i, size := range tt.sizes {
					data := randomBlob(uint64(i), size)
					blobs = append(blobs, data)
					typ := BlobType(i % 2)
					e, err := w.Add(typ, id.Hash(data), data, uint32(size*2))
					if err != nil {
						t.Fatal(err)
					}
					if e.Type != typ || e.Length != uint32(size) || e.RawLength != uint32(size*2) {
						t.Fatalf("Add returned %+v", e)
					}
				}
				if w.Count() != len(tt.sizes) {
					t.Errorf("Count() = %d, want %d", w.Count(), len(tt.sizes))
				}
				sizeBefore := w.Size()
				packBytes, entries, packID, err := w.Finish()
				if err != nil {
					t.Fatal(err)
				}
				if packID != id.Hash(packBytes) {
					t.Errorf("pack ID is not the hash of the pack")
				}
				if len(packBytes) <= sizeBefore {
					t.Errorf("Finish added no header: %d bytes, Size() was %d", len(packBytes), sizeBefore)
				}
				r := &countingReader{r: bytes.NewReader(packBytes)}
				got, err := ReadHeader(r, int64(len(packBytes)), sealer)
				if err != nil {
					t.Fatal(err)
				}
				if r.reads != tt.wantReads {
					t.Errorf("ReadHeader made %d reads, want %d", r.reads, tt.wantReads)
				}
				if fmt.Sprint(got) != fmt.Sprint(entries) {
					t.Fatalf("ReadHeader entries differ from Finish entries")
				}
				for i, e := range got {
					data := packBytes[e.Offset : e.Offset+e.Length]
					if !bytes.Equal(data, blobs[i]) {
						t.Fatalf("entry %d does not locate blob %d", i, i)
					}
					if err := VerifyBlob(e, data); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

func repeat(size, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func TestWriterReset(t *testing.T) {
	w := NewWriter(packtest.NewSealer())
	for round := range 3 {
		for i := range 4 {
			data := randomBlob(uint64(round*10+i), 1000+round)
			if _, err := w.Add(TreeBlob, id.Hash(data), data, 10); err != nil {
				t.Fatal(err)
			}
		}
		if round == 1 {
			w.Grow(1 << 20) // a regrown buffer keeps the running hash right
		}
		packBytes, entries, packID, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		// The ID is hashed as the pack grows; across Resets and a Grow it
		// must still be the SHA-256 of the whole file.
		if packID != id.Hash(packBytes) {
			t.Fatalf("round %d: pack ID %s is not the SHA-256 of the pack", round, packID.Short())
		}
		if _, err := w.Add(DataBlob, id.ID{}, []byte("x"), 1); err == nil {
			t.Fatal("Add after Finish succeeded")
		}
		if _, _, _, err := w.Finish(); err == nil {
			t.Fatal("second Finish succeeded")
		}
		got, err := ReadHeader(bytes.NewReader(packBytes), int64(len(packBytes)), packtest.NewSealer())
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(got) != 4 || len(entries) != 4 || got[0].Offset != preambleSize {
			t.Fatalf("round %d: entries %+v", round, got)
		}
		w.Reset()
		if w.Count() != 0 || w.Size() != preambleSize {
			t.Fatalf("after Reset: Count %d Size %d", w.Count(), w.Size())
		}
	}
}

type failingSealer struct{ packtest.IdentitySealer }

func (failingSealer) Seal([]byte) ([]byte, error) { return nil, errors.New("no key") }

func TestWriterErrors(t *testing.T) {
	w := NewWriter(packtest.IdentitySealer{})
	if _, _, _, err := w.Finish(); err == nil {
		t.Error("Finish of an empty pack succeeded")
	}
	if _, err := w.Add(2, id.ID{}, []byte("x"), 1); err == nil {
		t.Error("Add with an unknown type succeeded")
	}
	if _, err := w.Add(DataBlob, id.ID{}, nil, 0); err == nil {
		t.Error("Add of an empty blob succeeded")
	}
	if w.Count() != 0 || w.Size() != preambleSize {
		t.Errorf("failed Adds changed the writer: Count %d Size %d", w.Count(), w.Size())
	}

	w = NewWriter(failingSealer{})
	if _, err := w.Add(DataBlob, id.ID{}, []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := w.Finish(); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("Finish with a failing sealer = %v", err)
	}
}

func TestWriterFull(t *testing.T) {
	w := NewWriter(packtest.IdentitySealer{})
	w.entries = make([]Entry, MaxEntries) // as if MaxEntries blobs were added
	if _, err := w.Add(DataBlob, id.ID{}, []byte("x"), 1); !errors.Is(err, ErrFull) {
		t.Errorf("Add beyond MaxEntries = %v, want ErrFull", err)
	}
}

// assemble builds a pack around a plaintext header, for the identity sealer.
func assemble(blobs, header []byte) []byte {
	b := appendPreamble(nil)
	b = append(b, blobs...)
	b = append(b, header...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(header)))
	return append(b, magic[:]...)
}

func TestReadHeaderCorrupt(t *testing.T) {
	blobs := []byte("aaaabbbbbbcc") // three blobs: 4, 6 and 2 bytes
	good := []Entry{
		{Type: DataBlob, ID: id.Hash(blobs[0:4]), Offset: 8, Length: 4, RawLength: 4},
		{Type: TreeBlob, ID: id.Hash(blobs[4:10]), Offset: 12, Length: 6, RawLength: 9},
		{Type: DataBlob, ID: id.Hash(blobs[10:12]), Offset: 18, Length: 2, RawLength: 2},
	}
	withEntries := func(edit func(e []Entry) []Entry) []byte {
		e := edit(append([]Entry(nil), good...))
		return assemble(blobs, appendHeader(nil, e))
	}
	validPack := withEntries(func(e []Entry) []Entry { return e })
	if _, err := ReadHeader(bytes.NewReader(validPack), int64(len(validPack)), packtest.IdentitySealer{}); err != nil {
		t.Fatalf("the valid pack is rejected: %v", err)
	}
	patch := func(at int, b ...byte) []byte {
		p := bytes.Clone(validPack)
		if at < 0 {
			at += len(p)
		}
		copy(p[at:], b)
		return p
	}
	rawHeader := func(h ...byte) []byte { return assemble(blobs, h) }
	entryBytes := func(typ byte, offset, length, raw []byte) []byte {
		b := append([]byte{typ}, make([]byte, id.Size)...)
		b = append(b, offset...)
		b = append(b, length...)
		return append(b, raw...)
	}

	tests := []struct {
		name string
		pack []byte
		want string
	}{
		{"empty file", nil, "too small"},
		{"only preamble and trailer", assemble(nil, nil)[:16], "too small"},
		{"bad trailer magic", patch(-1, 'X'), "pack trailer: bad magic"},
		{"zero header length", patch(-8, 0, 0, 0, 0), "header length 0"},
		{"header length past start", patch(-8, 0xff, 0, 0, 0), "header length 255 does not fit"},
		{"huge header length", patch(-8, 0xff, 0xff, 0xff, 0xff), "does not fit"},
		{"bad preamble magic", patch(0, 'Z'), "pack preamble: bad magic"},
		{"future version", patch(4, 2), "unsupported format version 2"},
		{"reserved bytes", patch(6, 1), "reserved bytes"},
		{"header version", rawHeader(2, 1), "pack header: unsupported version 2"},
		{"header too short", rawHeader(1), "too short"},
		{"no entries", rawHeader(1, 0), "no entries"},
		{"count beyond header size", rawHeader(append([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 100)...)...), "cannot fit"},
		{"bad count varint", rawHeader(1, 0x80), "bad entry count"},
		{"non-canonical count", rawHeader(append([]byte{1, 0x81, 0x00}, entryBytes(0, []byte{8}, []byte{12}, []byte{1})...)...), "bad entry count"},
		{"non-canonical offset", rawHeader(append([]byte{1, 1}, entryBytes(0, []byte{0x88, 0x00}, []byte{12}, []byte{1})...)...), "entry 0 has a bad offset"},
		{"length beyond uint32", rawHeader(append([]byte{1, 1}, entryBytes(0, []byte{8}, []byte{0x80, 0x80, 0x80, 0x80, 0x10}, []byte{1})...)...), "entry 0 has a bad length"},
		{"truncated entry", rawHeader(append([]byte{1, 1}, entryBytes(0, []byte{0xc8, 0x01}, []byte{12}, nil)...)...), "entry 0 has a bad raw length"},
		{"truncated ID", rawHeader(append([]byte{1, 1, 0}, make([]byte, 34)...)...), "cannot fit"},
		{"unknown type", withEntries(func(e []Entry) []Entry { e[1].Type = 7; return e }), "entry 1 has unknown blob type 7"},
		{"empty entry", withEntries(func(e []Entry) []Entry { e[2].Length = 0; return e }), "entry 2 is empty"},
		{"overlap", withEntries(func(e []Entry) []Entry { e[1].Offset = 11; e[1].Length = 7; return e }), "entry 1 at offset 11 overlaps"},
		{"overlaps preamble", withEntries(func(e []Entry) []Entry { e[0].Offset = 4; e[0].Length = 8; return e }), "entry 0 at offset 4 overlaps"},
		{"gap", withEntries(func(e []Entry) []Entry { e[0].Length = 3; return e }), "entry 1 at offset 12 leaves a gap after offset 11"},
		{"unsorted", withEntries(func(e []Entry) []Entry { e[0], e[1] = e[1], e[0]; return e }), "entry 0 at offset 12 leaves a gap"},
		{"past blob region", withEntries(func(e []Entry) []Entry { e[2].Length = 3; return e }), "entry 2 extends past blob region"},
		{"region not covered", withEntries(func(e []Entry) []Entry { return e[:2] }), "entries end at 18 but the blob region ends at 20"},
		{"trailing bytes", rawHeader(append(appendHeader(nil, good), 0)...), "1 bytes after the last entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ReadHeader(bytes.NewReader(tt.pack), int64(len(tt.pack)), packtest.IdentitySealer{})
			if err == nil {
				t.Fatalf("ReadHeader accepted it: %+v", entries)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadHeader = %q, want ErrCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}

func TestReadHeaderTampered(t *testing.T) {
	sealer := packtest.NewSealer()
	w := NewWriter(sealer)
	if _, err := w.Add(DataBlob, id.Hash([]byte("blob")), []byte("blob"), 4); err != nil {
		t.Fatal(err)
	}
	packBytes, _, _, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	packBytes[len(packBytes)-trailerSize-1] ^= 1 // last byte of the tag
	_, err = ReadHeader(bytes.NewReader(packBytes), int64(len(packBytes)), sealer)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cannot open") {
		t.Fatalf("ReadHeader of a tampered header = %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) ReadAt([]byte, int64) (int, error) { return 0, e.err }

func TestReadHeaderIOErrors(t *testing.T) {
	w := NewWriter(packtest.IdentitySealer{})
	big := randomBlob(1, 64<<10)
	if _, err := w.Add(DataBlob, id.Hash(big), big, 1); err != nil {
		t.Fatal(err)
	}
	packBytes, _, _, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name string
		r    io.ReaderAt
		size int64
		want error
	}{
		{"reader fails", errReader{errDisk}, int64(len(packBytes)), errDisk},
		{"size larger than the pack", bytes.NewReader(packBytes), int64(len(packBytes)) + 100, io.ErrUnexpectedEOF},
		{"size far beyond the pack", bytes.NewReader(packBytes), 1 << 40, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(tt.r, tt.size, packtest.IdentitySealer{})
			if !errors.Is(err, tt.want) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadHeader = %v, want %v and not ErrCorrupt", err, tt.want)
			}
		})
	}
	// A size smaller than the pack cuts the trailer off: that is corruption.
	if _, err := ReadHeader(bytes.NewReader(packBytes), int64(len(packBytes))-1, packtest.IdentitySealer{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadHeader of a truncated pack = %v, want ErrCorrupt", err)
	}
}

func TestVerifyBlob(t *testing.T) {
	data := []byte("sealed blob bytes")
	e := Entry{Type: DataBlob, ID: id.Hash(data), Length: uint32(len(data))}
	tests := []struct {
		name string
		e    Entry
		data []byte
		ok   bool
	}{
		{"match", e, data, true},
		{"flipped byte", e, append([]byte("Sealed"), data[6:]...), false},
		{"short", e, data[1:], false},
		{"wrong length in entry", Entry{ID: e.ID, Length: e.Length + 1}, data, false},
		{"wrong ID", Entry{ID: id.Hash([]byte("other")), Length: e.Length}, data, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyBlob(tt.e, tt.data)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("VerifyBlob = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
