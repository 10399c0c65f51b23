package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func testKey(seed byte) Key {
	var k Key
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func TestSealDeterministicRoundTrip(t *testing.T) {
	key := testKey(1)
	for _, size := range []int{0, 1, 15, 16, 17, 4096, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			plain := bytes.Repeat([]byte{0xa5}, size)
			prefix := []byte("prefix")
			sealed := SealDeterministic(key, prefix, plain)
			if !bytes.HasPrefix(sealed, []byte("prefix")) || len(sealed) != len(prefix)+size+Overhead {
				t.Fatalf("sealed has length %d, want prefix + %d", len(sealed), size+Overhead)
			}
			if size >= 16 && bytes.Contains(sealed, plain) {
				t.Fatal("sealed bytes contain the plaintext")
			}
			got, err := OpenDeterministic(key, []byte("x"), sealed[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("x"), plain...)) {
				t.Fatal("round trip changed the plaintext")
			}
		})
	}
}

func TestSealDeterministicDeterminism(t *testing.T) {
	key := testKey(2)
	siv := NewSIVKey(key)
	a1 := siv.Seal(nil, []byte("chunk compressed by zstd 1.5.5"))
	a2 := SealDeterministic(key, nil, []byte("chunk compressed by zstd 1.5.5"))
	if !bytes.Equal(a1, a2) {
		t.Fatal("same key and plaintext sealed to different bytes")
	}
	b := siv.Seal(nil, []byte("chunk compressed by zstd 1.5.6"))
	if bytes.Equal(a1[:NonceSize], b[:NonceSize]) {
		t.Fatal("two plaintexts under one key share a nonce")
	}
	c := SealDeterministic(testKey(3), nil, []byte("chunk compressed by zstd 1.5.5"))
	if bytes.Equal(a1[NonceSize:], c[NonceSize:]) {
		t.Fatal("two keys produced the same ciphertext")
	}
}

func TestOpenDeterministicRejects(t *testing.T) {
	key := testKey(4)
	plain := []byte("a tree blob, or a chunk")
	sealed := SealDeterministic(key, nil, plain)
	for i := range len(sealed) * 8 {
		tampered := bytes.Clone(sealed)
		tampered[i/8] ^= 1 << (i % 8)
		if _, err := OpenDeterministic(key, nil, tampered); !errors.Is(err, ErrAuth) {
			t.Fatalf("bit %d flipped: got %v, want ErrAuth", i, err)
		}
	}
	if _, err := OpenDeterministic(testKey(5), nil, sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: got %v, want ErrAuth", err)
	}
	for _, n := range []int{0, 1, Overhead - 1} {
		if _, err := OpenDeterministic(key, nil, sealed[:n]); !errors.Is(err, ErrAuth) {
			t.Fatalf("truncated to %d: got %v, want ErrAuth", n, err)
		}
	}
}

// A ciphertext that is valid GCM under the derived key but whose nonce is not
// the synthetic one must be refused: Open accepts only what Seal makes.
func TestOpenDeterministicRejectsForeignNonce(t *testing.T) {
	key := testKey(6)
	siv := NewSIVKey(key)
	plain := []byte("plaintext")
	nonce := make([]byte, NonceSize) // not HMAC(macKey, plain)
	sealed := siv.aead.Seal(bytes.Clone(nonce), nonce, plain, nil)
	_, err := siv.Open(nil, sealed)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("got %v, want ErrAuth", err)
	}
}

func TestSealRandom(t *testing.T) {
	key := testKey(7)
	ad := []byte("pack header ad")
	a, err := SealRandom(key, nil, []byte("header"), ad)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SealRandom(key, nil, []byte("header"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two random seals are identical")
	}
	got, err := OpenRandom(key, nil, a, ad)
	if err != nil || string(got) != "header" {
		t.Fatalf("OpenRandom = %q, %v", got, err)
	}
	tests := []struct {
		name   string
		key    Key
		sealed []byte
		ad     []byte
	}{
		{"wrong key", testKey(8), a, ad},
		{"wrong ad", key, a, []byte("other")},
		{"no ad", key, a, nil},
		{"truncated", key, a[:Overhead-1], ad},
		{"flipped tag", key, append(bytes.Clone(a[:len(a)-1]), a[len(a)-1]^1), ad},
		{"flipped nonce", key, append([]byte{a[0] ^ 1}, a[1:]...), ad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := OpenRandom(tt.key, nil, tt.sealed, tt.ad); !errors.Is(err, ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", err)
			}
		})
	}
}

func TestChunkKeyer(t *testing.T) {
	org := testKey(9)
	k := NewChunkKeyer(org)
	a := k.ChunkKey([]byte("same chunk"))
	if a != NewChunkKeyer(org).ChunkKey([]byte("same chunk")) {
		t.Fatal("two keyers of one secret disagree")
	}
	if a == k.ChunkKey([]byte("other chunk")) {
		t.Fatal("different plaintexts share a chunk key")
	}
	if a == NewChunkKeyer(testKey(10)).ChunkKey([]byte("same chunk")) {
		t.Fatal("different organisations share a chunk key")
	}
	// The end-to-end dedup property: same secret + same chunk = same blob.
	s1 := SealDeterministic(a, nil, []byte("same chunk"))
	s2 := SealDeterministic(NewChunkKeyer(org).ChunkKey([]byte("same chunk")), nil, []byte("same chunk"))
	if !bytes.Equal(s1, s2) {
		t.Fatal("one chunk sealed twice under its convergent key gives different blobs")
	}
}

// TestLabelsSeparateKeys guards the invariant that no key serves two
// constructions: one secret under each label gives a different subkey.
func TestLabelsSeparateKeys(t *testing.T) {
	labels := []string{labelSIV, labelChunkKey, labelPolynomial, labelEnvelope, labelHostData}
	secret := testKey(9)
	seen := map[Key]string{}
	for _, l := range labels {
		k := deriveKey(secret[:], l)
		if other, dup := seen[k]; dup {
			t.Fatalf("labels %q and %q derive the same key", other, l)
		}
		seen[k] = l
	}
	if got := (HostKey{Private: PrivateKey(secret)}.DataKey()); got != deriveKey(secret[:], labelHostData) {
		t.Fatal("HostKey.DataKey is not HKDF under the host data key label")
	}
}

func TestChunkKeyerConcurrent(t *testing.T) {
	k := NewChunkKeyer(testKey(11))
	inputs := make([][]byte, 64)
	want := make([]Key, len(inputs))
	for i := range inputs {
		inputs[i] = bytes.Repeat([]byte{byte(i)}, 1000+i)
		want[i] = k.ChunkKey(inputs[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for round := range 50 {
				i := (g*7 + round) % len(inputs)
				if got := k.ChunkKey(inputs[i]); got != want[i] {
					t.Errorf("goroutine %d: key of input %d changed under concurrency", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSIVKeyConcurrent seals under one shared SIVKey from several goroutines,
// as the agent seals a host's trees: the cached HMAC state must never mix two
// plaintexts (run with -race).
func TestSIVKeyConcurrent(t *testing.T) {
	k := NewSIVKey(testKey(14))
	inputs := make([][]byte, 32)
	want := make([][]byte, len(inputs))
	for i := range inputs {
		inputs[i] = bytes.Repeat([]byte{byte(i)}, 100+i)
		want[i] = SealDeterministic(testKey(14), nil, inputs[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for round := range 100 {
				i := (g*5 + round) % len(inputs)
				if got := k.Seal(nil, inputs[i]); !bytes.Equal(got, want[i]) {
					t.Errorf("goroutine %d: sealing input %d changed under concurrency", g, i)
					return
				}
				if _, err := k.Open(nil, want[i]); err != nil {
					t.Errorf("goroutine %d: open input %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestChunkerPolynomial(t *testing.T) {
	p1, err := ChunkerPolynomial(testKey(12))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ChunkerPolynomial(testKey(12))
	if err != nil {
		t.Fatal(err)
	}
	p3, err := ChunkerPolynomial(testKey(13))
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || p1 == p3 {
		t.Fatalf("polynomials %v %v %v: want the first two equal and the third different", p1, p2, p3)
	}
	if p1.Deg() != 53 || !p1.Irreducible() {
		t.Fatalf("polynomial %v: degree %d, irreducible %v", p1, p1.Deg(), p1.Irreducible())
	}
}

func TestHKDFStreamCrossesBlocks(t *testing.T) {
	s := &hkdfStream{secret: []byte("secret"), label: "l"}
	buf := make([]byte, 3*hkdfBlockSize+5)
	n, err := s.Read(buf) // one Read stops at a block boundary
	if err != nil || n != hkdfBlockSize {
		t.Fatalf("Read = %d, %v; want one block", n, err)
	}
	if _, err := s.Read(buf[n:]); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(buf[:32], buf[hkdfBlockSize:hkdfBlockSize+32]) {
		t.Fatal("second block repeats the first")
	}
}
