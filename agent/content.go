package agent

import (
	"context"
	"io"

	"github.com/costor/costor/repo/tree"
)

// ChunkReader is what WriteContent needs: the plaintext of one chunk.
type ChunkReader interface {
	ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error)
}

// prefetchDepth is how many chunks WriteContent opens ahead of the writer:
// enough to keep both cores decrypting while the writer catches up, with
// memory bounded by that many chunks (8 MiB each at most).
const prefetchDepth = 3

// WriteContent writes a file's chunks to w in order, opening up to
// prefetchDepth chunks ahead in parallel, so that one large file uses more
// than one core (dump, restore). The caller's w sees each chunk whole.
func WriteContent(ctx context.Context, r ChunkReader, chunks []tree.Chunk, w io.Writer) error {
	if len(chunks) <= 1 {
		var buf []byte
		for _, c := range chunks {
			var err error
			if buf, err = r.ReadChunk(ctx, c, buf); err != nil {
				return err
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	// One channel per chunk, handed to the writer in order; a semaphore
	// bounds the chunks in flight.
	slots := make(chan chan result, prefetchDepth)
	go func() {
		defer close(slots)
		for _, c := range chunks {
			ch := make(chan result, 1)
			select {
			case slots <- ch:
			case <-ctx.Done():
				return
			}
			go func(c tree.Chunk) {
				data, err := r.ReadChunk(ctx, c, nil)
				ch <- result{data, err}
			}(c)
		}
	}()
	for ch := range slots {
		res := <-ch
		if res.err != nil {
			return res.err
		}
		if _, err := w.Write(res.data); err != nil {
			return err
		}
	}
	return ctx.Err()
}
