package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// slowChunks serves chunk i as the bytes "<i>;" after a random delay, so
// parallel reads finish out of order.
type slowChunks struct {
	failAt   int
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func (s *slowChunks) ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
	i := int(c.Length)
	if i == s.failAt {
		return nil, fmt.Errorf("chunk %d: %w", i, errBroken)
	}
	return append(dst, fmt.Sprintf("%d;", i)...), nil
}

var errBroken = errors.New("broken")

func chunkList(n int) ([]tree.Chunk, string) {
	var want bytes.Buffer
	chunks := make([]tree.Chunk, n)
	for i := range chunks {
		chunks[i] = tree.Chunk{ID: id.Hash([]byte{byte(i)}), Length: uint32(i)}
		fmt.Fprintf(&want, "%d;", i)
	}
	return chunks, want.String()
}

func TestWriteContentKeepsOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2, 50} {
		chunks, want := chunkList(n)
		src := &slowChunks{failAt: -1}
		var got bytes.Buffer
		if err := WriteContent(t.Context(), src, chunks, &got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Fatalf("%d chunks: got %q, want %q", n, got.String(), want)
		}
		if m := src.maxSeen.Load(); m > prefetchDepth+1 {
			t.Fatalf("%d chunks in flight, bound is %d", m, prefetchDepth+1)
		}
	}
}

func TestWriteContentErrors(t *testing.T) {
	chunks, _ := chunkList(20)
	var got bytes.Buffer
	err := WriteContent(t.Context(), &slowChunks{failAt: 7}, chunks, &got)
	if !errors.Is(err, errBroken) {
		t.Fatalf("err = %v, want the chunk's error", err)
	}
	if !bytes.HasPrefix([]byte("0;1;2;3;4;5;6;"), got.Bytes()) || got.Len() > len("0;1;2;3;4;5;6;") {
		t.Fatalf("wrote %q past the failing chunk", got.String())
	}
	w := &failingWriter{after: 3}
	if err := WriteContent(t.Context(), &slowChunks{failAt: -1}, chunks, w); !errors.Is(err, errDiskFull) {
		t.Fatalf("writer error: err = %v", err)
	}
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after == 0 {
		return 0, errDiskFull
	}
	f.after--
	return len(p), nil
}
