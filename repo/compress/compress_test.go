package compress

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	random := make([]byte, 64<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		data    []byte
		wantRaw bool
	}{
		{"empty", nil, true},
		{"text", bytes.Repeat([]byte("costor backs up files. "), 4000), false},
		{"random", random, true},
		{"zeros", make([]byte, 1<<20), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			framed := Encode(nil, c.data)
			if gotRaw := framed[0] == flagRaw; gotRaw != c.wantRaw {
				t.Fatalf("raw = %v, want %v (framed %d bytes of %d)", gotRaw, c.wantRaw, len(framed), len(c.data))
			}
			if len(framed) > len(c.data)+1 {
				t.Fatalf("framed %d bytes exceeds input %d + 1", len(framed), len(c.data))
			}
			got, err := Decode(nil, framed, len(c.data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.data) {
				t.Fatal("round trip changed the data")
			}
			if len(c.data) > 0 {
				if _, err := Decode(nil, framed, len(c.data)-1); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decode with too small bound: err = %v, want ErrCorrupt", err)
				}
			}
		})
	}
}

func TestDecodeAppends(t *testing.T) {
	framed := Encode([]byte("prefix"), []byte("hello hello hello hello"))
	got, err := Decode([]byte("x"), framed[len("prefix"):], 100)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "xhello hello hello hello" {
		t.Fatalf("got %q", got)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, bytes.Repeat([]byte("ab"), 100)), 200)
	f.Add(Encode(nil, []byte("raw")), 3)
	f.Add([]byte{7, 1, 2}, 10)
	f.Fuzz(func(t *testing.T, data []byte, maxLen int) {
		if maxLen < 0 || maxLen > 1<<20 {
			return
		}
		out, err := Decode(nil, data, maxLen)
		if err == nil && len(out) > maxLen {
			t.Fatalf("decoded %d bytes, bound %d", len(out), maxLen)
		}
	})
}
