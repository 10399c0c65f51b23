package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelope(t *testing.T) {
	hostPriv, hostPub, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	recPriv, recPub, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, _, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if hostPriv.Public() != hostPub {
		t.Fatal("Public disagrees with GenerateKeyPair")
	}
	plain := []byte("host data key and more")
	sealed, err := SealTo(plain, hostPub, recPub)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 2*stanzaSize + Overhead + len(plain); len(sealed) != want {
		t.Fatalf("envelope is %d bytes, want %d", len(sealed), want)
	}
	for name, priv := range map[string]PrivateKey{"host": hostPriv, "recovery": recPriv} {
		got, err := OpenWith(priv, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: OpenWith = %q, %v", name, got, err)
		}
	}
	if _, err := OpenWith(otherPriv, sealed); !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("other key: got %v, want ErrNotRecipient", err)
	}
	// Tampering with any byte after the version and count must fail closed.
	for i := 2; i < len(sealed); i++ {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x40
		_, err := OpenWith(hostPriv, tampered)
		if err == nil {
			t.Fatalf("byte %d flipped: envelope still opens", i)
		}
		// Flipping the host stanza's recipient hides it: not-recipient is right.
		if !errors.Is(err, ErrAuth) && !(i < 2+32 && errors.Is(err, ErrNotRecipient)) {
			t.Fatalf("byte %d flipped: got %v, want ErrAuth", i, err)
		}
	}
	if _, err := SealTo(plain); err == nil {
		t.Fatal("SealTo with no recipients succeeded")
	}
	if _, err := SealTo(plain, PublicKey{}); err == nil {
		t.Fatal("SealTo a low-order public key succeeded")
	}
}

func TestOpenWithMalformed(t *testing.T) {
	priv, pub, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealTo([]byte("x"), pub)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{2}, sealed[1:]...),
		"no stanzas":  append([]byte{1, 0}, sealed[2:]...),
		"more count":  append([]byte{1, 2}, sealed[2:]...),
		"truncated":   sealed[:len(sealed)-Overhead-2],
		"header only": sealed[:2],
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := OpenWith(priv, data); err == nil {
				t.Fatal("malformed envelope opened")
			}
		})
	}
}

func TestPublicKeyText(t *testing.T) {
	_, pub, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	text, _ := pub.MarshalText()
	var back PublicKey
	if err := back.UnmarshalText(text); err != nil || back != pub {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "AAAA", pub.String() + "AAAA", "!" + pub.String()[1:]} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Fatalf("UnmarshalText(%q) succeeded", bad)
		}
	}
}
