package repo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// Batching of blobs on their way to a server. A batch is queried (which of
// these does the server lack?) and its missing blobs uploaded in one
// request each, so many small files never mean many requests, and two
// uploaders keep the network busy while sealing goes on.
const (
	remoteBatchBytes = 8 << 20
	remoteBatchBlobs = 4096
	remoteUploaders  = 2
	// remoteQueue batches wait for an uploader: with the uploaders' own
	// and the one filling, memory stays at about five batches.
	remoteQueue = 2
)

// remoteWriter sends blobs to a server in batches and keeps the spool of
// every blob the snapshot being written references.
type remoteWriter struct {
	r *Repository

	mu         sync.Mutex
	batch      []RemoteBlob
	batchBytes int
	pending    map[id.ID]struct{} // batched or uploading, not yet known stored
	stats      BlobStats
	err        error

	jobs     chan []RemoteBlob
	inflight sync.WaitGroup // batches handed to uploaders, not yet done
	workers  sync.WaitGroup

	refsMu sync.Mutex
	refs   *refSpool
}

func newRemoteWriter(r *Repository) *remoteWriter {
	w := &remoteWriter{r: r, pending: map[id.ID]struct{}{}, jobs: make(chan []RemoteBlob, remoteQueue)}
	for range remoteUploaders {
		w.workers.Add(1)
		go w.uploader()
	}
	return w
}

func (w *remoteWriter) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *remoteWriter) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// uploader runs batches: ask what is missing, upload that, remember the
// rest as stored. It always drains the queue so Flush never waits forever.
func (w *remoteWriter) uploader() {
	defer w.workers.Done()
	ctx := w.r.closeCtx
	for batch := range w.jobs {
		if w.firstErr() == nil {
			if err := w.send(ctx, batch); err != nil {
				w.setErr(err)
			}
		}
		w.mu.Lock()
		for _, b := range batch {
			delete(w.pending, b.ID)
		}
		w.mu.Unlock()
		w.inflight.Done()
	}
}

func (w *remoteWriter) send(ctx context.Context, batch []RemoteBlob) error {
	ids := make([]id.ID, len(batch))
	for i, b := range batch {
		ids[i] = b.ID
	}
	missing, err := w.r.remote.Missing(ctx, ids)
	if err != nil {
		return fmt.Errorf("ask the server which blobs it lacks: %w", err)
	}
	want := make(map[id.ID]bool, len(missing))
	for _, m := range missing {
		want[m] = true
	}
	var up []RemoteBlob
	var bytes uint64
	for _, b := range batch {
		if want[b.ID] {
			up = append(up, b)
			bytes += uint64(len(b.Data))
			delete(want, b.ID) // a batch never holds one blob twice, but be sure
		}
	}
	if len(up) > 0 {
		if err := w.r.remote.Upload(ctx, up); err != nil {
			return fmt.Errorf("upload %d blobs: %w", len(up), err)
		}
	}
	if err := w.r.idx.MarkStored(ctx, ids); err != nil {
		return err
	}
	w.mu.Lock()
	w.stats.Blobs += uint64(len(up))
	w.stats.Bytes += bytes
	if len(up) > 0 {
		w.stats.Packs++
	}
	w.mu.Unlock()
	return nil
}

// save queues a blob unless the server is known to hold it. The result is
// whether it was queued; BlobStats says, after Flush, what the server
// really lacked.
func (w *remoteWriter) save(ctx context.Context, t pack.BlobType, blobID id.ID, sealed []byte, rawLength uint32) (bool, error) {
	if err := w.firstErr(); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := w.addRef(blobID); err != nil {
		return false, err
	}
	w.mu.Lock()
	_, pending := w.pending[blobID]
	w.mu.Unlock()
	if pending {
		return false, nil
	}
	known, err := w.r.idx.KnownStored(ctx, blobID)
	if err != nil {
		return false, err
	}
	if known {
		return false, nil
	}
	data := append([]byte(nil), sealed...) // callers reuse their buffers
	w.mu.Lock()
	if _, pending := w.pending[blobID]; pending {
		w.mu.Unlock()
		return false, nil
	}
	w.pending[blobID] = struct{}{}
	w.batch = append(w.batch, RemoteBlob{Type: t, ID: blobID, RawLength: rawLength, Data: data})
	w.batchBytes += len(data)
	var full []RemoteBlob
	if w.batchBytes >= remoteBatchBytes || len(w.batch) >= remoteBatchBlobs {
		full = w.takeBatch()
	}
	w.mu.Unlock()
	if full != nil {
		w.jobs <- full // blocks while the queue is full: backpressure
	}
	return true, nil
}

// takeBatch hands the filling batch over; called with mu held.
func (w *remoteWriter) takeBatch() []RemoteBlob {
	b := w.batch
	w.batch, w.batchBytes = nil, 0
	if len(b) > 0 {
		w.inflight.Add(1)
	}
	return b
}

// has reports whether the server holds a blob, asking it when this session
// does not know yet. A blob it holds is referenced by the snapshot being
// written (the agent asks only about blobs it reuses).
func (w *remoteWriter) has(ctx context.Context, blobID id.ID) (bool, error) {
	w.mu.Lock()
	_, pending := w.pending[blobID]
	w.mu.Unlock()
	ok := pending
	if !ok {
		known, err := w.r.idx.KnownStored(ctx, blobID)
		if err != nil {
			return false, err
		}
		ok = known
	}
	if !ok {
		missing, err := w.r.remote.Missing(ctx, []id.ID{blobID})
		if err != nil {
			return false, fmt.Errorf("ask the server for blob %s: %w", blobID.Short(), err)
		}
		if len(missing) > 0 {
			return false, nil
		}
		if err := w.r.idx.MarkStored(ctx, []id.ID{blobID}); err != nil {
			return false, err
		}
	}
	return true, w.addRef(blobID)
}

// flush sends the filling batch and waits until every batch is done.
func (w *remoteWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	b := w.takeBatch()
	w.mu.Unlock()
	if len(b) > 0 {
		select {
		case w.jobs <- b:
		case <-ctx.Done():
			w.inflight.Done()
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.firstErr()
}

func (w *remoteWriter) blobStats() BlobStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

func (w *remoteWriter) close() error {
	close(w.jobs)
	w.workers.Wait()
	w.refsMu.Lock()
	defer w.refsMu.Unlock()
	if w.refs != nil {
		w.refs.remove()
		w.refs = nil
	}
	return nil
}

func (w *remoteWriter) addRef(blobID id.ID) error {
	w.refsMu.Lock()
	defer w.refsMu.Unlock()
	if w.refs == nil {
		s, err := newRefSpool()
		if err != nil {
			return err
		}
		w.refs = s
	}
	return w.refs.add(blobID)
}

// takeRefs hands the spool of the snapshot being written to the caller,
// starting a new one for the next.
func (w *remoteWriter) takeRefs() *refSpool {
	w.refsMu.Lock()
	defer w.refsMu.Unlock()
	s := w.refs
	w.refs = nil
	return s
}

// refSpool is an append-only file of blob IDs: a snapshot of millions of
// files references millions of blobs, which must not live in memory.
type refSpool struct {
	f     *os.File
	buf   *bufio.Writer
	count int64
}

func newRefSpool() (*refSpool, error) {
	f, err := os.CreateTemp("", "costor-refs-")
	if err != nil {
		return nil, fmt.Errorf("create the list of referenced blobs: %w (is the temporary directory writable?)", err)
	}
	return &refSpool{f: f, buf: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *refSpool) add(blobID id.ID) error {
	if _, err := s.buf.Write(blobID[:]); err != nil {
		return fmt.Errorf("write the list of referenced blobs %s: %w", s.f.Name(), err)
	}
	s.count++
	return nil
}

// reader returns the whole spool from its start and its length in bytes.
func (s *refSpool) reader() (io.Reader, int64, error) {
	if err := s.buf.Flush(); err != nil {
		return nil, 0, fmt.Errorf("write the list of referenced blobs %s: %w", s.f.Name(), err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return s.f, s.count * id.Size, nil
}

func (s *refSpool) remove() {
	name := s.f.Name()
	_ = s.f.Close()
	_ = os.Remove(name)
}

// PrepareParent tells a repository that a backup builds on snapshot snap.
// On a server, every blob a committed snapshot references is stored for as
// long as the snapshot exists, so the parent's reference list makes the
// reuse of unchanged files a local lookup instead of a question per file.
// On a local repository it does nothing: the index already knows.
func (r *Repository) PrepareParent(ctx context.Context, snap id.ID) error {
	if r.remote == nil {
		return nil
	}
	const batch = 8192
	ids := make([]id.ID, 0, batch)
	err := r.remote.Refs(ctx, snap, func(b id.ID) error {
		ids = append(ids, b)
		if len(ids) == batch {
			if err := r.idx.MarkStored(ctx, ids); err != nil {
				return err
			}
			ids = ids[:0]
		}
		return nil
	})
	if err == nil && len(ids) > 0 {
		err = r.idx.MarkStored(ctx, ids)
	}
	if err != nil {
		return fmt.Errorf("load the blob list of parent snapshot %s: %w", snap.Short(), err)
	}
	return nil
}

// IsRemote reports whether the repository lives on a site server.
func (r *Repository) IsRemote() bool { return r.remote != nil }

// commitRemote sends a snapshot record with its reference list.
func (r *Repository) commitRemote(ctx context.Context, record []byte) error {
	spool := r.rblobs.takeRefs()
	if spool == nil {
		var err error
		if spool, err = newRefSpool(); err != nil {
			return err
		}
	}
	defer spool.remove()
	rd, n, err := spool.reader()
	if err != nil {
		return err
	}
	err = r.remote.Commit(ctx, record, rd, n)
	if errors.Is(err, ErrMissingBlobs) {
		// What this session believed stored is not: forget all of it, so
		// that the next run sends what the server lacks.
		_ = r.idx.ClearStored(context.WithoutCancel(ctx))
		return fmt.Errorf("%w; run the backup again: it sends what is missing", err)
	}
	return err
}
