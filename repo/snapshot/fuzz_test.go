package snapshot

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func FuzzDecodePublic(f *testing.F) {
	valid, err := EncodePublic(goldenPublic())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"version":1,"host":"h","time":"2024-01-01T00:00:00Z","sealed":"AA=="}`))
	f.Add([]byte(`{"version":1,"host":"h","time":"2024-01-01T00:00:00Z","sealed":"AA==","parent":null,"tags":null}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePublic(data)
		if err != nil {
			return
		}
		enc, err := EncodePublic(p)
		if err != nil {
			t.Fatalf("EncodePublic of a decoded record: %v", err)
		}
		p2, err := DecodePublic(enc)
		if err != nil {
			t.Fatalf("DecodePublic of a re-encoding: %v", err)
		}
		if !equalPublic(p, p2) {
			t.Fatalf("round trip differs: %+v vs %+v", p, p2)
		}
	})
}

func FuzzDecodeDetails(f *testing.F) {
	valid, err := EncodeDetails(goldenDetails())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	minimal, err := EncodeDetails(&Details{Paths: []string{"/"}, Tree: goldenDetails().Tree})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(minimal)
	f.Add([]byte{DetailsVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDetails(data)
		if err != nil {
			return
		}
		// Canonical: whatever decodes re-encodes to the same bytes.
		enc, err := EncodeDetails(d)
		if err != nil {
			t.Fatalf("EncodeDetails of decoded details: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs\nin  %x\nout %x", data, enc)
		}
		d2, err := DecodeDetails(enc)
		if err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("decode of re-encoding: %v", err)
		}
	})
}
