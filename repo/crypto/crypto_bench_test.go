package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"

	"github.com/costor/costor/repo/id"
	"golang.org/x/crypto/chacha20poly1305"
)

// The benchmarks behind the choices in docs/crypto.md, each over 1 MiB (about
// one chunk): go test -bench . -run '^$' ./repo/crypto

const benchSize = 1 << 20

// reportCPURate starts measuring; the returned func, called after b.Loop,
// adds a cpu-MB/s metric: throughput per CPU-second rather than per
// wall-clock second, which stays meaningful when other processes compete.
func reportCPURate(b *testing.B, bytesPerOp int) func() {
	start := processCPUTime()
	return func() {
		if cpu := processCPUTime() - start; cpu > 0 {
			b.ReportMetric(float64(b.N)*float64(bytesPerOp)/1e6/cpu.Seconds(), "cpu-MB/s")
		}
	}
}

func benchInput() []byte {
	b := make([]byte, benchSize)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func benchHash(b *testing.B, h hash.Hash) {
	in := benchInput()
	var sum [64]byte
	b.SetBytes(benchSize)
	stop := reportCPURate(b, benchSize)
	for b.Loop() {
		h.Reset()
		h.Write(in)
		h.Sum(sum[:0])
	}
	stop()
}

func BenchmarkSHA256(b *testing.B)     { benchHash(b, sha256.New()) }
func BenchmarkSHA512_256(b *testing.B) { benchHash(b, sha512.New512_256()) }
func BenchmarkHMACSHA256(b *testing.B) { benchHash(b, hmac.New(sha256.New, make([]byte, 32))) }

func benchAEAD(b *testing.B, aead cipher.AEAD) {
	in := benchInput()
	out := make([]byte, 0, benchSize+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	b.SetBytes(benchSize)
	stop := reportCPURate(b, benchSize)
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, in, nil)
	}
	stop()
}

func BenchmarkAES256GCM(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	benchAEAD(b, aead)
}

func BenchmarkChaCha20Poly1305(b *testing.B) {
	aead, _ := chacha20poly1305.New(make([]byte, 32))
	benchAEAD(b, aead)
}

func BenchmarkSealDeterministic(b *testing.B) {
	in := benchInput()
	out := make([]byte, 0, benchSize+Overhead)
	key := testKey(1)
	b.SetBytes(benchSize)
	stop := reportCPURate(b, benchSize)
	for b.Loop() {
		out = SealDeterministic(key, out[:0], in)
	}
	stop()
}

func BenchmarkOpenDeterministic(b *testing.B) {
	key := testKey(1)
	sealed := SealDeterministic(key, nil, benchInput())
	out := make([]byte, 0, benchSize)
	b.SetBytes(benchSize)
	stop := reportCPURate(b, benchSize)
	for b.Loop() {
		var err error
		if out, err = OpenDeterministic(key, out[:0], sealed); err != nil {
			b.Fatal(err)
		}
	}
	stop()
}

func BenchmarkChunkKey(b *testing.B) {
	in := benchInput()
	k := NewChunkKeyer(testKey(2))
	b.SetBytes(benchSize)
	stop := reportCPURate(b, benchSize)
	for b.Loop() {
		k.ChunkKey(in)
	}
	stop()
}

// BenchmarkSealChunk is the whole per-chunk cost in the agent: chunk key,
// deterministic seal, blob ID of the sealed bytes (compression aside).
func BenchmarkSealChunk(b *testing.B) {
	in := benchInput()
	k := NewChunkKeyer(testKey(3))
	out := make([]byte, 0, benchSize+Overhead)
	b.SetBytes(benchSize)
	stop := reportCPURate(b, benchSize)
	for b.Loop() {
		out = SealDeterministic(k.ChunkKey(in), out[:0], in)
		_ = id.Hash(out)
	}
	stop()
}

// BenchmarkSealDeterministicSmall shows the fixed cost of a fresh key (key
// derivation, AES key schedule), which every chunk pays once as each chunk
// has its own key; BenchmarkSIVKeySealSmall is the same 256 bytes under a
// reused SIVKey, as a host's trees are sealed.
func BenchmarkSealDeterministicSmall(b *testing.B) {
	in := benchInput()[:256]
	out := make([]byte, 0, len(in)+Overhead)
	key := testKey(4)
	b.SetBytes(int64(len(in)))
	stop := reportCPURate(b, len(in))
	for b.Loop() {
		out = SealDeterministic(key, out[:0], in)
	}
	stop()
}

// BenchmarkUnwrapDefaultKDF is the cost of opening a key file with
// DefaultKDFParams: what a user waits for each time they type the password.
func BenchmarkUnwrapDefaultKDF(b *testing.B) {
	wrapped, err := WrapWithPassword([]byte("pw"), []byte("x"), DefaultKDFParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := UnwrapWithPassword([]byte("pw"), wrapped); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSIVKeySealSmall seals a small tree-sized blob under a SIVKey made
// once, as repo seals every tree of a host under one key.
func BenchmarkSIVKeySealSmall(b *testing.B) {
	in := benchInput()[:256]
	out := make([]byte, 0, len(in)+Overhead)
	k := NewSIVKey(testKey(4))
	b.SetBytes(int64(len(in)))
	stop := reportCPURate(b, len(in))
	for b.Loop() {
		out = k.Seal(out[:0], in)
	}
	stop()
}
