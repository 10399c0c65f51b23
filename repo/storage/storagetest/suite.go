package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/storage"
)

// Run checks that the storages newStorage makes keep the storage.Storage
// contract. Every subtest gets a fresh, empty storage and closes it when it
// ends. Subtests run in parallel, so newStorage must be safe to call from
// several goroutines (t.TempDir is).
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Storage)
	}{
		{"RoundTrip", testRoundTrip},
		{"RangedLoad", testRangedLoad},
		{"LoadFnError", testLoadFnError},
		{"Missing", testMissing},
		{"Remove", testRemove},
		{"List", testList},
		{"ListEmpty", testListEmpty},
		{"ListFnError", testListFnError},
		{"ListReentrant", testListReentrant},
		{"IdempotentSave", testIdempotentSave},
		{"OverwriteDifferent", testOverwriteDifferent},
		{"CallerBufferReuse", testCallerBufferReuse},
		{"InvalidHandles", testInvalidHandles},
		{"CancelledContext", testCancelledContext},
		{"CancelDuringSave", testCancelDuringSave},
		{"CancelDuringList", testCancelDuringList},
		{"FailingReader", testFailingReader},
		{"ShortReader", testShortReader},
		{"FailedSaveKeepsExisting", testFailedSaveKeepsExisting},
		{"Concurrent", testConcurrent},
		{"Location", testLocation},
		{"StreamPublish", testStreamPublish},
		{"StreamAbort", testStreamAbort},
		{"StreamSameAsSave", testStreamSameAsSave},
		{"StreamCancelled", testStreamCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStorage(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

var errTest = errors.New("storagetest: injected error")

// name returns the i-th test name for kind k: hex IDs where the repository
// uses them, so fan-out schemes see realistic names.
func name(k storage.Kind, i int) string {
	switch k {
	case storage.KindPacks, storage.KindSnapshots:
		return id.Hash(fmt.Appendf(nil, "storagetest %d", i)).String()
	}
	return fmt.Sprintf("obj-%d.x_y", i)
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x636f73746f72))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func save(t *testing.T, s storage.Storage, h storage.Handle, data []byte) {
	t.Helper()
	if err := s.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Save(%s): %v", h, err)
	}
}

func load(s storage.Storage, h storage.Handle, offset, length int64) ([]byte, error) {
	var got []byte
	err := s.Load(context.Background(), h, offset, length, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

func mustLoad(t *testing.T, s storage.Storage, h storage.Handle, want []byte) {
	t.Helper()
	got, err := load(s, h, 0, 0)
	if err != nil {
		t.Fatalf("Load(%s): %v", h, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Load(%s) = %d bytes, want %d bytes (content differs: %v)", h, len(got), len(want), len(got) == len(want))
	}
}

func mustNotExist(t *testing.T, s storage.Storage, h storage.Handle) {
	t.Helper()
	if _, err := s.Stat(context.Background(), h); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("Stat(%s) = %v, want ErrNotExist", h, err)
	}
	called := false
	err := s.Load(context.Background(), h, 0, 0, func(io.Reader) error { called = true; return nil })
	if !errors.Is(err, storage.ErrNotExist) || called {
		t.Fatalf("Load(%s) = %v (fn called: %v), want ErrNotExist without calling fn", h, err, called)
	}
}

// listAll returns the objects of kind k, failing on duplicates.
func listAll(t *testing.T, s storage.Storage, k storage.Kind) map[string]int64 {
	t.Helper()
	got := make(map[string]int64)
	err := s.List(context.Background(), k, func(info storage.Info) error {
		if info.Handle.Kind != k {
			return fmt.Errorf("List(%s) reported %s", k, info.Handle)
		}
		if _, dup := got[info.Handle.Name]; dup {
			return fmt.Errorf("List(%s) reported %s twice", k, info.Handle)
		}
		got[info.Handle.Name] = info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s): %v", k, err)
	}
	return got
}

func mustBeEmpty(t *testing.T, s storage.Storage) {
	t.Helper()
	for _, k := range storage.Kinds {
		if got := listAll(t, s, k); len(got) != 0 {
			t.Fatalf("List(%s) = %v, want nothing", k, got)
		}
	}
}

func testRoundTrip(t *testing.T, s storage.Storage) {
	sizes := []int{0, 1, 4095, 1<<20 + 17}
	for ki, k := range storage.Kinds {
		for si, size := range sizes {
			h := storage.Handle{Kind: k, Name: name(k, si)}
			data := randomBytes(uint64(ki*100+si), size)
			save(t, s, h, data)
			mustLoad(t, s, h, data)
			info, err := s.Stat(context.Background(), h)
			if err != nil {
				t.Fatalf("Stat(%s): %v", h, err)
			}
			if info.Handle != h || info.Size != int64(size) {
				t.Fatalf("Stat(%s) = %+v, want size %d", h, info, size)
			}
		}
	}
}

func testRangedLoad(t *testing.T, s storage.Storage) {
	const n = 1000
	data := randomBytes(1, n)
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 1)}
	save(t, s, h, data)
	tests := []struct {
		offset, length int64
		ok             bool
	}{
		{0, 0, true},
		{0, n, true},
		{0, 1, true},
		{10, 0, true},
		{10, 5, true},
		{n - 1, 1, true},
		{n - 1, 0, true},
		{n, 0, true}, // empty read at the very end
		{n, 1, false},
		{n - 5, 10, false},
		{n + 1, 0, false},
		{0, n + 1, false},
		{-1, 0, false},
		{0, -1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d+%d", tt.offset, tt.length), func(t *testing.T) {
			got, err := load(s, h, tt.offset, tt.length)
			if !tt.ok {
				if err == nil {
					t.Fatalf("Load = %d bytes, nil error; want an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			end := tt.offset + tt.length
			if tt.length == 0 {
				end = n
			}
			if want := data[tt.offset:end]; !bytes.Equal(got, want) {
				t.Fatalf("Load = %d bytes, want %d bytes %x…", len(got), len(want), want[:min(len(want), 8)])
			}
		})
	}
}

func testLoadFnError(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindKeys, Name: "k"}
	save(t, s, h, []byte("key"))
	err := s.Load(context.Background(), h, 0, 0, func(io.Reader) error { return errTest })
	if !errors.Is(err, errTest) {
		t.Fatalf("Load = %v, want fn's error", err)
	}
}

func testMissing(t *testing.T, s storage.Storage) {
	// Present in one kind, missing in the others: kinds must not leak.
	present := storage.Handle{Kind: storage.KindSnapshots, Name: name(storage.KindSnapshots, 7)}
	save(t, s, present, []byte("x"))
	for _, k := range storage.Kinds {
		if k == present.Kind {
			continue
		}
		h := storage.Handle{Kind: k, Name: present.Name}
		mustNotExist(t, s, h)
		if err := s.Remove(context.Background(), h); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("Remove(%s) = %v, want ErrNotExist", h, err)
		}
	}
	mustLoad(t, s, present, []byte("x"))
}

func testRemove(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	keep := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 1)}
	gone := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 2)}
	save(t, s, keep, []byte("keep"))
	save(t, s, gone, []byte("gone"))
	if err := s.Remove(ctx, gone); err != nil {
		t.Fatalf("Remove(%s): %v", gone, err)
	}
	mustNotExist(t, s, gone)
	if err := s.Remove(ctx, gone); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("second Remove(%s) = %v, want ErrNotExist", gone, err)
	}
	if got := listAll(t, s, storage.KindPacks); len(got) != 1 || got[keep.Name] != 4 {
		t.Fatalf("List after Remove = %v, want only %s", got, keep.Name)
	}
	mustLoad(t, s, keep, []byte("keep"))
	// A removed name can be saved again.
	save(t, s, gone, []byte("back"))
	mustLoad(t, s, gone, []byte("back"))
}

func testList(t *testing.T, s storage.Storage) {
	const perKind = 5
	// The same names in every kind, with contents and sizes that differ per
	// kind, so a backend mixing kinds up is caught by List and by Load.
	for ki, k := range storage.Kinds {
		for i := range perKind {
			h := storage.Handle{Kind: k, Name: name(storage.KindPacks, i)}
			save(t, s, h, randomBytes(uint64(ki*perKind+i), ki*perKind+i+1))
		}
	}
	for ki, k := range storage.Kinds {
		got := listAll(t, s, k)
		if len(got) != perKind {
			t.Fatalf("List(%s) = %d objects, want %d: %v", k, len(got), perKind, got)
		}
		for i := range perKind {
			n := name(storage.KindPacks, i)
			if size, ok := got[n]; !ok || size != int64(ki*perKind+i+1) {
				t.Fatalf("List(%s): %s has size %d (listed: %v), want %d", k, n, size, ok, ki*perKind+i+1)
			}
			mustLoad(t, s, storage.Handle{Kind: k, Name: n}, randomBytes(uint64(ki*perKind+i), ki*perKind+i+1))
		}
	}
}

func testListEmpty(t *testing.T, s storage.Storage) {
	mustBeEmpty(t, s)
}

func testListFnError(t *testing.T, s storage.Storage) {
	for i := range 3 {
		save(t, s, storage.Handle{Kind: storage.KindLocks, Name: name(storage.KindLocks, i)}, []byte("l"))
	}
	calls := 0
	err := s.List(context.Background(), storage.KindLocks, func(storage.Info) error {
		calls++
		return errTest
	})
	if !errors.Is(err, errTest) || calls != 1 {
		t.Fatalf("List = %v after %d calls, want fn's error after 1 call", err, calls)
	}
}

func testListReentrant(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	for i := range 3 {
		save(t, s, storage.Handle{Kind: storage.KindSnapshots, Name: name(storage.KindSnapshots, i)}, []byte{byte(i)})
	}
	// Loading and removing from inside fn is what prune-like callers do.
	err := s.List(ctx, storage.KindSnapshots, func(info storage.Info) error {
		if _, err := load(s, info.Handle, 0, 0); err != nil {
			return err
		}
		return s.Remove(ctx, info.Handle)
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	mustBeEmpty(t, s)
}

func testIdempotentSave(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 3)}
	data := randomBytes(3, 5000)
	save(t, s, h, data)
	save(t, s, h, data)
	mustLoad(t, s, h, data)
	if got := listAll(t, s, storage.KindPacks); len(got) != 1 {
		t.Fatalf("List after re-save = %v, want one object", got)
	}
}

func testOverwriteDifferent(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindKeys, Name: "key"}
	oldData, newData := []byte("old content"), []byte("new, longer content")
	save(t, s, h, oldData)
	err := s.Save(context.Background(), h, bytes.NewReader(newData), int64(len(newData)))
	switch {
	case err == nil:
		mustLoad(t, s, h, newData)
	case errors.Is(err, storage.ErrExist):
		mustLoad(t, s, h, oldData)
	default:
		t.Fatalf("Save over different content = %v, want nil or ErrExist", err)
	}
}

func testCallerBufferReuse(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 4)}
	data := randomBytes(4, 100)
	buf := bytes.Clone(data)
	save(t, s, h, buf)
	for i := range buf {
		buf[i] = 0
	}
	mustLoad(t, s, h, data)
}

func testInvalidHandles(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	bad := []storage.Handle{
		{Kind: storage.KindKeys, Name: ""},
		{Kind: storage.KindKeys, Name: "."},
		{Kind: storage.KindKeys, Name: ".."},
		{Kind: storage.KindKeys, Name: ".tmp-x"},
		{Kind: storage.KindKeys, Name: "../config/config"},
		{Kind: storage.KindKeys, Name: "a/b"},
		{Kind: storage.KindKeys, Name: `a\b`},
		{Kind: storage.KindKeys, Name: "a b"},
		{Kind: storage.KindKeys, Name: "schlüssel"},
		{Kind: storage.KindKeys, Name: strings.Repeat("a", storage.MaxNameLen+1)},
		{Kind: "", Name: "x"},
		{Kind: "bogus", Name: "x"},
		{Kind: "..", Name: "x"},
	}
	for _, h := range bad {
		t.Run(fmt.Sprintf("%q", h.String()), func(t *testing.T) {
			err := s.Save(ctx, h, bytes.NewReader([]byte("x")), 1)
			if !errors.Is(err, storage.ErrInvalidHandle) {
				t.Errorf("Save = %v, want ErrInvalidHandle", err)
			}
			called := false
			err = s.Load(ctx, h, 0, 0, func(io.Reader) error { called = true; return nil })
			if !errors.Is(err, storage.ErrInvalidHandle) || called {
				t.Errorf("Load = %v (fn called: %v), want ErrInvalidHandle", err, called)
			}
			if _, err := s.Stat(ctx, h); !errors.Is(err, storage.ErrInvalidHandle) {
				t.Errorf("Stat = %v, want ErrInvalidHandle", err)
			}
			if err := s.Remove(ctx, h); !errors.Is(err, storage.ErrInvalidHandle) {
				t.Errorf("Remove = %v, want ErrInvalidHandle", err)
			}
		})
	}
	for _, k := range []storage.Kind{"", "bogus", "..", "packs/00"} {
		err := s.List(ctx, k, func(storage.Info) error { return nil })
		if !errors.Is(err, storage.ErrInvalidHandle) {
			t.Errorf("List(%q) = %v, want ErrInvalidHandle", k, err)
		}
	}
	// The longest valid name works.
	h := storage.Handle{Kind: storage.KindKeys, Name: strings.Repeat("a", storage.MaxNameLen)}
	save(t, s, h, []byte("long"))
	mustLoad(t, s, h, []byte("long"))
}

func testCancelledContext(t *testing.T, s storage.Storage) {
	existing := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 1)}
	save(t, s, existing, []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	fresh := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 2)}
	if err := s.Save(ctx, fresh, bytes.NewReader([]byte("x")), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Save = %v, want context.Canceled", err)
	}
	called := false
	if err := s.Load(ctx, existing, 0, 0, func(io.Reader) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		t.Errorf("Load = %v (fn called: %v), want context.Canceled", err, called)
	}
	if _, err := s.Stat(ctx, existing); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat = %v, want context.Canceled", err)
	}
	if err := s.Remove(ctx, existing); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove = %v, want context.Canceled", err)
	}
	called = false
	if err := s.List(ctx, storage.KindPacks, func(storage.Info) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		t.Errorf("List = %v (fn called: %v), want context.Canceled", err, called)
	}
	mustNotExist(t, s, fresh)
	mustLoad(t, s, existing, []byte("data"))
}

// cancellingReader cancels its context on the first read, as if the user
// pressed Ctrl-C while a large object was being written.
type cancellingReader struct {
	r      io.ReaderAt
	cancel context.CancelFunc
}

func (c cancellingReader) ReadAt(p []byte, off int64) (int, error) {
	c.cancel()
	return c.r.ReadAt(p, off)
}

func testCancelDuringSave(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 5)}
	data := randomBytes(5, 4<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.Save(ctx, h, cancellingReader{bytes.NewReader(data), cancel}, int64(len(data)))
	if err == nil {
		// The backend finished before it noticed; then the object must be whole.
		mustLoad(t, s, h, data)
		return
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Save = %v, want nil or context.Canceled", err)
	}
	mustNotExist(t, s, h)
	mustBeEmpty(t, s)
}

func testCancelDuringList(t *testing.T, s storage.Storage) {
	for i := range 3 {
		save(t, s, storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, i)}, []byte("p"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := s.List(ctx, storage.KindPacks, func(storage.Info) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("List = %v after %d calls, want context.Canceled after 1 call", err, calls)
	}
}

// failingReader returns errTest for any read that reaches past failAt.
type failingReader struct {
	r      io.ReaderAt
	failAt int64
}

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= f.failAt {
		return f.r.ReadAt(p, off)
	}
	if off >= f.failAt {
		return 0, errTest
	}
	n, _ := f.r.ReadAt(p[:f.failAt-off], off)
	return n, errTest
}

func testFailingReader(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 6)}
	data := randomBytes(6, 3<<20)
	err := s.Save(context.Background(), h, failingReader{bytes.NewReader(data), 1 << 20}, int64(len(data)))
	if !errors.Is(err, errTest) {
		t.Fatalf("Save with failing reader = %v, want the reader's error", err)
	}
	mustNotExist(t, s, h)
	mustBeEmpty(t, s)
}

func testShortReader(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindSnapshots, Name: name(storage.KindSnapshots, 6)}
	data := randomBytes(7, 1000)
	// The caller claims more bytes than the reader holds.
	if err := s.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))+1); err == nil {
		t.Fatalf("Save with short reader succeeded, want an error")
	}
	mustNotExist(t, s, h)
	mustBeEmpty(t, s)
}

func testFailedSaveKeepsExisting(t *testing.T, s storage.Storage) {
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 8)}
	data := randomBytes(8, 2<<20)
	save(t, s, h, data)
	err := s.Save(context.Background(), h, failingReader{bytes.NewReader(data), 1 << 20}, int64(len(data)))
	if err == nil {
		t.Fatalf("Save with failing reader succeeded")
	}
	mustLoad(t, s, h, data)
	if got := listAll(t, s, storage.KindPacks); len(got) != 1 || got[h.Name] != int64(len(data)) {
		t.Fatalf("List = %v, want only %s of %d bytes", got, h.Name, len(data))
	}
}

func testConcurrent(t *testing.T, s storage.Storage) {
	const workers, perWorker = 8, 8
	ctx := context.Background()
	shared := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 999)}
	sharedData := randomBytes(999, 64<<10)
	save(t, s, shared, sharedData)

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				n := w*perWorker + i
				h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, n)}
				data := randomBytes(uint64(n), 1000+n*997)
				if err := s.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Errorf("Save(%s): %v", h, err)
					return
				}
				got, err := load(s, h, 0, 0)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("Load(%s) = %d bytes, %v; want %d bytes", h, len(got), err, len(data))
					return
				}
				got, err = load(s, h, 10, 100)
				if err != nil || !bytes.Equal(got, data[10:110]) {
					t.Errorf("ranged Load(%s) = %d bytes, %v", h, len(got), err)
					return
				}
				if info, err := s.Stat(ctx, h); err != nil || info.Size != int64(len(data)) {
					t.Errorf("Stat(%s) = %+v, %v", h, info, err)
					return
				}
				got, err = load(s, shared, 0, 0)
				if err != nil || !bytes.Equal(got, sharedData) {
					t.Errorf("Load(%s) = %d bytes, %v", shared, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := listAll(t, s, storage.KindPacks); len(got) != workers*perWorker+1 {
		t.Fatalf("List = %d objects, want %d", len(got), workers*perWorker+1)
	}
}

func testLocation(t *testing.T, s storage.Storage) {
	if s.Location() == "" {
		t.Fatalf("Location() is empty")
	}
}

// streamer returns s as a Streamer, skipping the test for backends without
// streaming (which is optional).
func streamer(t *testing.T, s storage.Storage) storage.Streamer {
	st, ok := s.(storage.Streamer)
	if !ok {
		t.Skip("backend does not implement storage.Streamer")
	}
	return st
}

// create starts a pending pack and writes data to it in uneven pieces.
func create(t *testing.T, st storage.Streamer, data []byte) storage.Pending {
	t.Helper()
	p, err := st.Create(context.Background(), storage.KindPacks)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for rest, step := data, 1; len(rest) > 0; step = step*3 + 1 {
		n := min(step, len(rest))
		if w, err := p.Write(rest[:n]); err != nil || w != n {
			t.Fatalf("Write of %d bytes = %d, %v", n, w, err)
		}
		rest = rest[n:]
	}
	return p
}

func testStreamPublish(t *testing.T, s storage.Storage) {
	st := streamer(t, s)
	data := randomBytes(11, 300_000)
	p := create(t, st, data)
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 1)}
	if got := listAll(t, s, storage.KindPacks); len(got) != 0 {
		t.Fatalf("List before Publish = %v, want nothing", got)
	}
	if err := p.Publish(context.Background(), h.Name); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	mustLoad(t, s, h, data)
	if got := listAll(t, s, storage.KindPacks); len(got) != 1 || got[h.Name] != int64(len(data)) {
		t.Fatalf("List after Publish = %v, want %s of %d bytes", got, h.Name, len(data))
	}
	if _, err := p.Write([]byte("more")); err == nil {
		t.Fatal("Write after Publish succeeded")
	}
	if err := p.Publish(context.Background(), name(storage.KindPacks, 2)); err == nil {
		t.Fatal("second Publish succeeded")
	}
	p.Abort() // after Publish: nothing happens
	mustLoad(t, s, h, data)
}

func testStreamAbort(t *testing.T, s storage.Storage) {
	st := streamer(t, s)
	p := create(t, st, randomBytes(12, 5000))
	p.Abort()
	p.Abort()
	if err := p.Publish(context.Background(), name(storage.KindPacks, 1)); err == nil {
		t.Fatal("Publish after Abort succeeded")
	}
	mustBeEmpty(t, s)
}

// testStreamSameAsSave: publishing bytes already saved under the name
// succeeds and leaves them as they were (packs are named by content).
func testStreamSameAsSave(t *testing.T, s storage.Storage) {
	st := streamer(t, s)
	data := randomBytes(13, 70_000)
	h := storage.Handle{Kind: storage.KindPacks, Name: name(storage.KindPacks, 3)}
	save(t, s, h, data)
	if err := create(t, st, data).Publish(context.Background(), h.Name); err != nil {
		t.Fatalf("Publish of the same bytes: %v", err)
	}
	mustLoad(t, s, h, data)
	bad := create(t, st, data)
	if err := bad.Publish(context.Background(), "../escape"); !errors.Is(err, storage.ErrInvalidHandle) {
		t.Fatalf("Publish under an invalid name = %v, want ErrInvalidHandle", err)
	}
	bad.Abort()
	if _, err := st.Create(context.Background(), storage.Kind("nope")); !errors.Is(err, storage.ErrInvalidHandle) {
		t.Fatalf("Create of an unknown kind = %v, want ErrInvalidHandle", err)
	}
	if got := listAll(t, s, storage.KindPacks); len(got) != 1 {
		t.Fatalf("List = %v, want only %s", got, h.Name)
	}
}

func testStreamCancelled(t *testing.T, s storage.Storage) {
	st := streamer(t, s)
	p := create(t, st, randomBytes(14, 1000))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Publish(ctx, name(storage.KindPacks, 4)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context = %v, want context.Canceled", err)
	}
	p.Abort()
	mustBeEmpty(t, s)
	if _, err := st.Create(ctx, storage.KindPacks); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context = %v, want context.Canceled", err)
	}
}
