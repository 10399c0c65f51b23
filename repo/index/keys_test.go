package index

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/costor/costor/repo/pack"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestFormatGolden pins the on-disk encoding of keys and values: a change
// here breaks every existing index and needs a new formatVersion.
func TestFormatGolden(t *testing.T) {
	blob, packID, snap := testID("blob", 1), testID("pack", 1), testID("snap", 1)
	e := pack.Entry{Type: pack.TreeBlob, ID: blob, Offset: 0x01020304, Length: 0x0a0b0c0d, RawLength: 0xfffffffe}
	bk, pk, sk, pbk := idKey(prefixBlob, blob), idKey(prefixPack, packID), idKey(prefixSnapshot, snap), packBlobKey(packID, blob)
	var out bytes.Buffer
	for _, kv := range []struct {
		name     string
		key, val []byte
	}{
		{"blob", bk[:], appendLocation(nil, Location{Pack: packID, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLength: e.RawLength})},
		{"pack", pk[:], appendPackRecord(nil, 12345678901, 4242)},
		{"pack blob", pbk[:], appendPackEntry(nil, e)},
		{"snapshot", sk[:], []byte("opaque")},
		{"format", metaFormatKey, []byte{0, 0, 0, byte(formatVersion)}},
	} {
		fmt.Fprintf(&out, "%s\nkey %s\nval %s\n", kv.name, hex.EncodeToString(kv.key), hex.EncodeToString(kv.val))
	}
	golden := filepath.Join("testdata", "format.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("encoding changed:\n%s\nwant:\n%s", out.Bytes(), want)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := appendLocation(nil, Location{Type: pack.DataBlob})
	badType := bytes.Clone(good)
	badType[len(badType)-1] = 2
	tests := []struct {
		name string
		dec  func([]byte) error
		in   []byte
	}{
		{"location empty", func(b []byte) error { _, err := decodeLocation(b); return err }, nil},
		{"location short", func(b []byte) error { _, err := decodeLocation(b); return err }, good[:len(good)-1]},
		{"location long", func(b []byte) error { _, err := decodeLocation(b); return err }, append(bytes.Clone(good), 0)},
		{"location bad type", func(b []byte) error { _, err := decodeLocation(b); return err }, badType},
		{"pack record short", func(b []byte) error { _, _, err := decodePackRecord(b); return err }, make([]byte, packRecordLen-1)},
		{"pack record huge size", func(b []byte) error { _, _, err := decodePackRecord(b); return err }, bytes.Repeat([]byte{0xff}, packRecordLen)},
		{"pack entry short", func(b []byte) error { var e pack.Entry; return decodePackEntry(b, &e) }, make([]byte, packEntryLen-1)},
		{"pack entry bad type", func(b []byte) error { var e pack.Entry; return decodePackEntry(b, &e) }, append([]byte{9}, make([]byte, packEntryLen-1)...)},
		{"key wrong length", func(b []byte) error { _, err := keyID(b, 0); return err }, make([]byte, idKeyLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.dec(tt.in); err == nil {
				t.Fatalf("accepted %x", tt.in)
			}
		})
	}
}

func FuzzDecodeLocation(f *testing.F) {
	f.Add(appendLocation(nil, Location{Pack: testID("pack", 0), Type: pack.TreeBlob, Offset: 1, Length: 2, RawLength: 3}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		loc, err := decodeLocation(b)
		if err != nil {
			return
		}
		if again := appendLocation(nil, loc); !bytes.Equal(again, b) {
			t.Fatalf("round trip %x → %+v → %x", b, loc, again)
		}
	})
}

func FuzzDecodePackRecord(f *testing.F) {
	f.Add(appendPackRecord(nil, 1<<30, 1000))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		size, blobs, err := decodePackRecord(b)
		if err != nil {
			return
		}
		if size < 0 || blobs < 0 {
			t.Fatalf("decoded negative size %d or count %d", size, blobs)
		}
		if again := appendPackRecord(nil, size, blobs); !bytes.Equal(again, b) {
			t.Fatalf("round trip %x → %d,%d → %x", b, size, blobs, again)
		}
	})
}

func FuzzDecodePackEntry(f *testing.F) {
	f.Add(appendPackEntry(nil, pack.Entry{Type: pack.DataBlob, Offset: 7, Length: 8, RawLength: 9}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e pack.Entry
		if err := decodePackEntry(b, &e); err != nil {
			return
		}
		if again := appendPackEntry(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("round trip %x → %+v → %x", b, e, again)
		}
	})
}

func FuzzKeyID(f *testing.F) {
	k := packBlobKey(testID("pack", 0), testID("blob", 0))
	f.Add(k[:], 32)
	f.Add([]byte{'b'}, 0)
	f.Fuzz(func(t *testing.T, key []byte, skip int) {
		if skip < 0 || skip > 64 {
			return
		}
		got, err := keyID(key, skip)
		if err != nil {
			return
		}
		if !bytes.Equal(got[:], key[1+skip:]) {
			t.Fatalf("keyID(%x, %d) = %x", key, skip, got)
		}
	})
}
