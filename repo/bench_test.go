package repo_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/restic/chunker"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
)

// benchData returns n bytes: random (incompressible) or text-like.
func benchData(n int, text bool) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	if !text {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	words := []string{"func", "return", "err", "nil", "if", "for", "range", "ctx", "repo", "chunk", "tree", "the", "backup", "\n\t", "{", "}", "(", ")"}
	var buf bytes.Buffer
	for buf.Len() < n {
		buf.WriteString(words[rng.IntN(len(words))])
		buf.WriteByte(' ')
	}
	return buf.Bytes()[:n]
}

// BenchmarkPipeline measures one core's MB/s for each stage of the backup
// path and for the whole: chunk → key (HMAC) → compress → seal → hash.
// BenchmarkPrimitives has the machine's own limit for each primitive.
func BenchmarkPipeline(b *testing.B) {
	secret := crypto.Key{1, 2, 3}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		b.Fatal(err)
	}
	keyer := crypto.NewChunkKeyer(secret)
	for _, kind := range []struct {
		name string
		text bool
	}{{"random", false}, {"text", true}} {
		data := benchData(64<<20, kind.text)
		b.Run("chunk/"+kind.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, chunker.MaxSize)
			for b.Loop() {
				c := chunker.New(bytes.NewReader(data), pol)
				for {
					_, err := c.Next(buf)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		chunk := data[:1<<20]
		b.Run("seal-1MiB/"+kind.name, func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			var scratch, dst []byte
			for b.Loop() {
				_, dst, scratch = repo.SealChunk(keyer, chunk, scratch, dst)
			}
		})
		// seal-parallel: every CPU seals chunks at once, as the backup's
		// sealers do (the shared zstd encoder must not serialise them):
		// compare -cpu 1 with -cpu 2.
		b.Run("seal-parallel/"+kind.name, func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			b.RunParallel(func(pb *testing.PB) {
				var scratch, dst []byte
				for pb.Next() {
					_, dst, scratch = repo.SealChunk(keyer, chunk, scratch, dst)
				}
			})
		})
		b.Run("all/"+kind.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, chunker.MaxSize)
			var scratch, dst []byte
			for b.Loop() {
				c := chunker.New(bytes.NewReader(data), pol)
				for {
					ch, err := c.Next(buf)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					_, dst, scratch = repo.SealChunk(keyer, ch.Data, scratch, dst)
				}
			}
		})
	}
}
