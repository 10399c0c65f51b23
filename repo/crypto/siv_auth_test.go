package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// OpenAuthenticated skips only the synthetic-nonce re-check: every flipped
// bit must still fail, and what Seal made must open to the same plaintext.
func TestOpenAuthenticated(t *testing.T) {
	k := NewSIVKey(Key{7})
	plain := []byte("the read path trusts the GCM tag")
	sealed := k.Seal(nil, plain)
	got, err := k.OpenAuthenticated(nil, sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenAuthenticated = %q, %v", got, err)
	}
	for i := range len(sealed) * 8 {
		bad := bytes.Clone(sealed)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := k.OpenAuthenticated(nil, bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("bit %d flipped: err = %v, want ErrAuth", i, err)
		}
	}
	if _, err := NewSIVKey(Key{8}).OpenAuthenticated(nil, sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: err = %v, want ErrAuth", err)
	}
	if _, err := k.OpenAuthenticated(nil, sealed[:Overhead-1]); !errors.Is(err, ErrAuth) {
		t.Fatalf("short input: err = %v, want ErrAuth", err)
	}
}
