package compress

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
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

// singleState returns an encoder with the shared encoders' options but one
// state: what the output must equal.
func singleState(t *testing.T, level zstd.EncoderLevel) *zstd.Encoder {
	t.Helper()
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(windowSize),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEncodeSameAsSingleState pins that the shared encoder, which holds one
// state per CPU, frames exactly as a single-state encoder does, also when
// called concurrently: identical chunks must keep sealing to identical
// blobs, whichever worker compresses them.
func TestEncodeSameAsSingleState(t *testing.T) {
	singles := map[zstd.EncoderLevel]*zstd.Encoder{
		smallLevel: singleState(t, smallLevel),
		largeLevel: singleState(t, largeLevel),
	}
	// Sizes on both sides of smallInput, so both encoders are pinned.
	var inputs [][]byte
	for i, size := range []int{1 << 10, 20 << 10, smallInput - 1, smallInput, 300 << 10, 900 << 10, 1500 << 10, 2400 << 10} {
		var buf bytes.Buffer
		for j := 0; buf.Len() < size; j++ {
			fmt.Fprintf(&buf, "line %d of input %d: costor backs up files\n", j*j%977, i)
		}
		inputs = append(inputs, buf.Bytes()[:size])
	}
	want := make([][]byte, len(inputs))
	for i, in := range inputs {
		want[i] = append([]byte{flagZstd}, singles[levelFor(len(in))].EncodeAll(in, nil)...)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4*len(inputs))
	for range 4 {
		wg.Go(func() {
			for i, in := range inputs {
				if got := Encode(nil, in); !bytes.Equal(got, want[i]) {
					errs <- fmt.Sprintf("input %d: %d bytes, single-state encoder %d", i, len(got), len(want[i]))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestDecodeOwned(t *testing.T) {
	random := make([]byte, 10000)
	rand.Read(random)
	text := bytes.Repeat([]byte("costor "), 2000)
	for _, plain := range [][]byte{random, text} {
		for _, dst := range [][]byte{nil, make([]byte, 0, len(plain)), []byte("prefix")} {
			framed := Encode(nil, plain)
			want := append(append([]byte(nil), dst...), plain...)
			got, err := DecodeOwned(dst, framed, len(plain))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("DecodeOwned(%d-byte dst) = %d bytes, %v", len(dst), len(got), err)
			}
			if _, err := DecodeOwned(dst, Encode(nil, plain), len(plain)-1); !errors.Is(err, ErrCorrupt) {
				t.Errorf("too long for maxLen: err %v", err)
			}
		}
	}
}

// TestEncodeTree pins that trees compress at the large-input level whatever
// their size (a tree's ID depends on its compressed bytes), and that they
// decode back.
func TestEncodeTree(t *testing.T) {
	single := singleState(t, largeLevel)
	for _, size := range []int{600, 6000, smallInput - 1, smallInput + 1} {
		var buf bytes.Buffer
		for j := 0; buf.Len() < size; j++ {
			fmt.Fprintf(&buf, "entry %d mode 0644 uid 1000 user alice size %d\n", j, j*j%4099)
		}
		in := buf.Bytes()[:size]
		got := EncodeTree(nil, in)
		if want := append([]byte{flagZstd}, single.EncodeAll(in, nil)...); !bytes.Equal(got, want) {
			t.Errorf("%d bytes: EncodeTree gave %d bytes, a level-%v encoder %d", size, len(got), largeLevel, len(want))
		}
		out, err := Decode(nil, got, len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("%d bytes: Decode = %d bytes, %v", size, len(out), err)
		}
	}
}
