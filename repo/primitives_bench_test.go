package repo_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/compress"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
)

// BenchmarkPrimitives measures one core's MB/s for each primitive the
// backup pipeline is built from, on random and on source-like data, so that
// the pipeline's figure (BenchmarkPipeline) can be compared with the
// machine's own limit: go test -run '^$' -bench Primitives -cpu 1 ./repo/
//
// Each reports cpu-MB/s too (bytes per CPU-second of the process), which
// stays meaningful when other processes compete for the cores.
func BenchmarkPrimitives(b *testing.B) {
	secret := crypto.Key{1, 2, 3}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []struct {
		name string
		text bool
	}{{"random", false}, {"text", true}} {
		data := benchData(64<<20, kind.text)
		chunk := data[:1<<20]
		b.Run("chunker/"+kind.name, func(b *testing.B) {
			buf := make([]byte, 0, chunker.MaxSize)
			rd := bytes.NewReader(data)
			c := chunker.New(rd, pol)
			benchBytes(b, len(data), func() {
				rd.Reset(data)
				c.Reset(rd, pol)
				for {
					_, err := c.Next(buf)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run("sha256/"+kind.name, func(b *testing.B) {
			h := sha256.New()
			var sum [32]byte
			benchBytes(b, len(chunk), func() { h.Reset(); h.Write(chunk); h.Sum(sum[:0]) })
		})
		b.Run("hmac-sha256/"+kind.name, func(b *testing.B) {
			h := hmac.New(sha256.New, secret[:])
			var sum [32]byte
			benchBytes(b, len(chunk), func() { h.Reset(); h.Write(chunk); h.Sum(sum[:0]) })
		})
		b.Run("aes256gcm/"+kind.name, func(b *testing.B) {
			block, _ := aes.NewCipher(make([]byte, 32))
			aead, _ := cipher.NewGCM(block)
			out := make([]byte, 0, len(chunk)+aead.Overhead())
			nonce := make([]byte, aead.NonceSize())
			benchBytes(b, len(chunk), func() { out = aead.Seal(out[:0], nonce, chunk, nil) })
		})
		for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
			b.Run("zstd-"+lvl.String()+"/"+kind.name, func(b *testing.B) {
				enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1),
					zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
				if err != nil {
					b.Fatal(err)
				}
				var out []byte
				benchBytes(b, len(chunk), func() { out = enc.EncodeAll(chunk, out[:0]) })
				b.ReportMetric(float64(len(out))/float64(len(chunk)), "ratio")
			})
		}
		b.Run("compress.Encode/"+kind.name, func(b *testing.B) {
			var out []byte
			benchBytes(b, len(chunk), func() { out = compress.Encode(out[:0], chunk) })
			b.ReportMetric(float64(len(out))/float64(len(chunk)), "ratio")
		})
	}
}

// benchBytes runs op in b.Loop, each call processing n bytes, and adds the
// cpu-MB/s metric.
func benchBytes(b *testing.B, n int, op func()) {
	b.SetBytes(int64(n))
	b.ReportAllocs()
	start := processCPUTime()
	for b.Loop() {
		op()
	}
	if cpu := processCPUTime() - start; cpu > 0 {
		b.ReportMetric(float64(b.N)*float64(n)/1e6/cpu.Seconds(), "cpu-MB/s")
	}
}

// BenchmarkSealSmall is the seal step for a small file (one chunk of a few
// KiB, the bulk of a source tree), split into its parts: the fixed costs
// per chunk (a fresh key, a zstd frame) dominate here, not the bytes.
func BenchmarkSealSmall(b *testing.B) {
	keyer := crypto.NewChunkKeyer(crypto.Key{1, 2, 3})
	for _, size := range []int{1 << 10, 4 << 10, 16 << 10} {
		chunk := benchData(size, true)
		name := fmt.Sprintf("%dKiB", size>>10)
		b.Run("seal/"+name, func(b *testing.B) {
			var scratch, dst []byte
			benchBytes(b, size, func() { _, dst, scratch = repo.SealChunk(keyer, chunk, scratch, dst) })
		})
		b.Run("compress/"+name, func(b *testing.B) {
			var out []byte
			benchBytes(b, size, func() { out = compress.Encode(out[:0], chunk) })
		})
		b.Run("key+siv+id/"+name, func(b *testing.B) {
			var out []byte
			benchBytes(b, size, func() {
				out = crypto.NewSIVKey(keyer.ChunkKey(chunk)).Seal(out[:0], chunk)
				_ = id.Hash(out)
			})
		})
	}
}
