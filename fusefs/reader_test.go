//go:build linux

package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// memChunks is a chunk store for reader tests: content split at given
// lengths, with read counting and optional failure and delay.
type memChunks struct {
	mu    sync.Mutex
	data  map[id.ID][]byte
	reads atomic.Int64
	fail  error
	delay time.Duration
	short bool // return one byte less than asked
}

func (m *memChunks) file(t testing.TB, content []byte, lengths ...int) *tree.Node {
	t.Helper()
	if m.data == nil {
		m.data = map[id.ID][]byte{}
	}
	n := &tree.Node{Name: "f", Type: tree.File, Size: uint64(len(content))}
	for _, l := range lengths {
		c := tree.Chunk{ID: id.Hash(content[:l]), Length: uint32(l)}
		m.data[c.ID] = content[:l]
		n.Content = append(n.Content, c)
		content = content[l:]
	}
	if len(content) != 0 {
		t.Fatalf("lengths leave %d bytes", len(content))
	}
	return n
}

func (m *memChunks) read(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error) {
	m.reads.Add(1)
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	d := m.data[c.ID]
	if m.short {
		d = d[:len(d)-1]
	}
	if dst == nil { // like the repository: a buffer of the chunk's size
		dst = make([]byte, 0, len(d))
	}
	return append(dst, d...), nil
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestFileReaderReadAt(t *testing.T) {
	content := randomBytes(1, 1000)
	var m memChunks
	node := m.file(t, content, 100, 1, 399, 500)
	cache := newChunkCache(context.Background(), 1<<20, 2, m.read)
	r, err := newFileReader(node, cache)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		off     int64
		len     int
		wantN   int
		wantEOF bool
	}{
		{0, 0, 0, false},
		{0, 10, 10, false},
		{0, 100, 100, false},   // exactly the first chunk
		{95, 10, 10, false},    // across chunks 0, 1 and 2
		{99, 3, 3, false},      // the 1-byte chunk in the middle
		{100, 1, 1, false},     // only the 1-byte chunk
		{0, 1000, 1000, false}, // everything
		{0, 1500, 1000, true},  // past EOF
		{999, 1, 1, false},     // last byte
		{999, 2, 1, true},      // last byte and beyond
		{1000, 1, 0, true},     // at EOF
		{5000, 1, 0, true},     // beyond EOF
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d+%d", tt.off, tt.len), func(t *testing.T) {
			p := make([]byte, tt.len)
			n, err := r.ReadAt(p, tt.off)
			if n != tt.wantN {
				t.Errorf("n = %d, want %d", n, tt.wantN)
			}
			if tt.wantEOF != (err == io.EOF) || (err != nil && err != io.EOF) {
				t.Errorf("err = %v, want EOF %v", err, tt.wantEOF)
			}
			if end := min(int(tt.off)+n, len(content)); int(tt.off) < len(content) && !bytes.Equal(p[:n], content[tt.off:end]) {
				t.Errorf("wrong bytes")
			}
		})
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset accepted")
	}
	// The standard library's checks of an io.ReaderAt (through a
	// SectionReader, which is also a Reader and Seeker).
	if err := iotest.TestReader(io.NewSectionReader(r, 0, r.Size()), content); err != nil {
		t.Error(err)
	}
}

func TestFileReaderEmptyFile(t *testing.T) {
	var m memChunks
	r, err := newFileReader(m.file(t, nil), newChunkCache(context.Background(), 1<<20, 1, m.read))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.ReadAt(make([]byte, 10), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt = %d, %v; want 0, EOF", n, err)
	}
	if n, err := r.ReadAt(nil, 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(nil) = %d, %v; want 0, EOF", n, err)
	}
}

func TestFileReaderRejectsInconsistentNodes(t *testing.T) {
	var m memChunks
	cache := newChunkCache(context.Background(), 1<<20, 1, m.read)
	node := m.file(t, randomBytes(2, 100), 60, 40)
	for name, mutate := range map[string]func(n *tree.Node){
		"size larger":  func(n *tree.Node) { n.Size++ },
		"size smaller": func(n *tree.Node) { n.Size-- },
		"empty chunk":  func(n *tree.Node) { n.Content = append(n.Content, tree.Chunk{}) },
		"huge size":    func(n *tree.Node) { n.Size = 1 << 63 },
	} {
		t.Run(name, func(t *testing.T) {
			n := *node
			n.Content = append([]tree.Chunk(nil), node.Content...)
			mutate(&n)
			if _, err := newFileReader(&n, cache); !errors.Is(err, errBadContent) {
				t.Errorf("err = %v, want errBadContent", err)
			}
		})
	}
}

func TestFileReaderChunkOfWrongLength(t *testing.T) {
	m := memChunks{short: true}
	node := m.file(t, randomBytes(3, 100), 100)
	r, err := newFileReader(node, newChunkCache(context.Background(), 1<<20, 1, m.read))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 0); !errors.Is(err, errBadChunk) {
		t.Errorf("err = %v, want errBadChunk", err)
	}
}

// TestFileReaderParallel reads random ranges from many goroutines through a
// cache smaller than the file, so that chunks are evicted and reloaded while
// others read them (run with -race).
func TestFileReaderParallel(t *testing.T) {
	content := randomBytes(4, 64<<10)
	var m memChunks
	var lengths []int
	for rest := len(content); rest > 0; {
		l := min(rest, 1000+rest%3000)
		lengths = append(lengths, l)
		rest -= l
	}
	node := m.file(t, content, lengths...)
	r, err := newFileReader(node, newChunkCache(context.Background(), 8<<10, 2, m.read))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			p := make([]byte, 5000)
			for range 200 {
				off := rng.Int64N(int64(len(content)))
				l := rng.IntN(len(p))
				n, err := r.ReadAt(p[:l], off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(p[:n], content[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d, %d): wrong bytes", l, off)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCacheDeduplicatesConcurrentLoads(t *testing.T) {
	m := memChunks{delay: 50 * time.Millisecond}
	node := m.file(t, randomBytes(5, 100), 100)
	cache := newChunkCache(context.Background(), 1<<20, 1, m.read)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := cache.get(context.Background(), node.Content[0].ID, node.Content[0]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := m.reads.Load(); got != 1 {
		t.Errorf("%d loads for 10 concurrent gets of one chunk, want 1", got)
	}
}

func TestCacheBoundAndLRUOrder(t *testing.T) {
	var m memChunks
	node := m.file(t, randomBytes(6, 400), 100, 100, 100, 100)
	cache := newChunkCache(context.Background(), 300, 1, m.read)
	get := func(i int) {
		t.Helper()
		c := node.Content[i]
		if _, err := cache.get(context.Background(), c.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	get(0)
	get(1)
	get(2)
	get(0) // now 1 is the least recently used
	get(3) // evicts 1
	if n, used := cache.stats(); n != 3 || used != 300 {
		t.Errorf("stats = %d items, %d bytes; want 3, 300", n, used)
	}
	before := m.reads.Load()
	get(0)
	get(2)
	get(3)
	if m.reads.Load() != before {
		t.Error("a recently used chunk was evicted")
	}
	get(1)
	if m.reads.Load() != before+1 {
		t.Error("the least recently used chunk was not the one evicted")
	}
	// A value larger than the whole cache is still kept while it is used.
	big := newChunkCache(context.Background(), 10, 1, m.read)
	if _, err := big.get(context.Background(), node.Content[0].ID, node.Content[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := big.stats(); n != 1 {
		t.Errorf("oversized value not kept: %d items", n)
	}
}

func TestCacheErrorsAreNotCached(t *testing.T) {
	m := memChunks{fail: errors.New("disk on fire")}
	node := m.file(t, randomBytes(7, 10), 10)
	cache := newChunkCache(context.Background(), 1<<20, 1, m.read)
	c := node.Content[0]
	if _, err := cache.get(context.Background(), c.ID, c); err == nil {
		t.Fatal("no error from a failing load")
	}
	m.mu.Lock()
	m.fail = nil
	m.mu.Unlock()
	if _, err := cache.get(context.Background(), c.ID, c); err != nil {
		t.Errorf("error was cached: %v", err)
	}
}

// TestCacheCancelledWaiter checks that a reader that gives up gets its
// context's error at once while the load completes for everyone else.
func TestCacheCancelledWaiter(t *testing.T) {
	m := memChunks{delay: 100 * time.Millisecond}
	node := m.file(t, randomBytes(8, 10), 10)
	cache := newChunkCache(context.Background(), 1<<20, 1, m.read)
	c := node.Content[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if _, err := cache.get(ctx, c.ID, c); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Error("a cancelled reader waited for the load")
	}
	if _, err := cache.get(context.Background(), c.ID, c); err != nil {
		t.Fatal(err)
	}
	if got := m.reads.Load(); got != 1 {
		t.Errorf("%d loads, want 1: the abandoned load should have served the second get", got)
	}
}

func TestReadAheadOnSequentialReads(t *testing.T) {
	content := randomBytes(9, 1000)
	var m memChunks
	node := m.file(t, content, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100)
	cache := newChunkCache(context.Background(), 1<<20, 4, m.read)
	r, err := newFileReader(node, cache)
	if err != nil {
		t.Fatal(err)
	}
	h := &fileHandle{r: r}
	p := make([]byte, 50)
	if _, err := h.readAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	// Chunks 1 and 2 are fetched in the background.
	waitFor(t, func() bool { n, _ := cache.stats(); return n == 3 })
	// A random reader far away gets no read-ahead.
	h2 := &fileHandle{r: r, next: 0}
	r2, _ := newFileReader(node, newChunkCache(context.Background(), 1<<20, 4, m.read))
	h2.r = r2
	if _, err := h2.readAt(context.Background(), p, 2<<20); err != io.EOF {
		t.Fatalf("read past EOF: %v", err)
	}
	h3 := &fileHandle{r: r2, next: -10 << 20}
	if _, err := h3.readAt(context.Background(), p, 500); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if n, _ := r2.cache.stats(); n != 1 {
		t.Errorf("%d chunks cached after one random read, want 1 (no read-ahead)", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkFileReaderSequential(b *testing.B) {
	content := randomBytes(10, 8<<20)
	var m memChunks
	var lengths []int
	for rest := len(content); rest > 0; rest -= min(rest, 1<<20) {
		lengths = append(lengths, min(rest, 1<<20))
	}
	node := m.file(b, content, lengths...)
	r, err := newFileReader(node, newChunkCache(context.Background(), 64<<20, 4, m.read))
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 128<<10)
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		for off := int64(0); off < r.Size(); off += int64(len(p)) {
			if _, err := r.ReadAt(p, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}

// FuzzFileReaderReadAt checks ReadAt against slicing the whole content, for
// any chunking and any range.
func FuzzFileReaderReadAt(f *testing.F) {
	f.Add([]byte{3, 1, 7}, int64(2), uint16(5))
	f.Add([]byte{1}, int64(0), uint16(0))
	f.Add([]byte{}, int64(0), uint16(10))
	f.Fuzz(func(t *testing.T, lengths []byte, off int64, size uint16) {
		var ls []int
		total := 0
		for _, l := range lengths {
			if l == 0 {
				continue
			}
			ls = append(ls, int(l))
			total += int(l)
		}
		content := randomBytes(uint64(total), total)
		var m memChunks
		node := m.file(t, content, ls...)
		r, err := newFileReader(node, newChunkCache(context.Background(), 64, 1, m.read))
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, size)
		n, err := r.ReadAt(p, off)
		switch {
		case off < 0:
			if err == nil || err == io.EOF {
				t.Fatalf("negative offset: n=%d err=%v", n, err)
			}
			return
		case off >= int64(total):
			if n != 0 || err != io.EOF {
				t.Fatalf("at/after EOF: n=%d err=%v", n, err)
			}
			return
		}
		want := content[off:min(int64(total), off+int64(size))]
		if n != len(want) || !bytes.Equal(p[:n], want) {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d", size, off, n, len(want))
		}
		if (n < int(size)) != (err == io.EOF) {
			t.Fatalf("ReadAt(%d, %d): n=%d err=%v", size, off, n, err)
		}
	})
}
