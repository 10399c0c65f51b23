package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
)

// ErrBlobNotFound is returned (wrapped) by LoadBlob for an unknown blob.
var ErrBlobNotFound = errors.New("blob not in the index")

// ErrBlobCorrupt is returned (wrapped) when a blob's bytes do not hash to
// its ID.
var ErrBlobCorrupt = errors.New("blob does not match its ID")

func hashName(data []byte) string { return id.Hash(data).String() }

func packHandle(p id.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindPacks, Name: p.String()}
}

// headerSealer seals pack headers under the repository's pack key.
type headerSealer struct{ key crypto.Key }

func (h headerSealer) Seal(plaintext []byte) ([]byte, error) {
	return crypto.SealRandom(h.key, nil, plaintext, nil)
}

func (h headerSealer) Open(sealed []byte) ([]byte, error) {
	return crypto.OpenRandom(h.key, nil, sealed, nil)
}

// blobWriter gathers blobs into packs and uploads finished packs in the
// background, so sealing goes on while a pack is written. At most one pack
// per type is filling and one waits for the uploader: memory stays at a few
// pack sizes whatever the backup size. On storage that streams (a local
// repository), data packs are written to their file as they fill and the
// uploader only makes them durable, so no data pack is held in memory.
type blobWriter struct {
	r      *Repository
	stream storage.Streamer // nil: packs are built in memory and saved whole

	mu       sync.Mutex
	packers  map[pack.BlobType]*openPack
	inflight map[id.ID]struct{} // in a packer or an upload not yet indexed
	// settled counts uploads whose blobs have left inflight. SaveBlob
	// looks up the index without holding mu; if settled moved meanwhile,
	// the blob may have gone from inflight to the index unseen.
	settled uint64

	uploads chan finishedPack
	// spare holds a data pack writer whose upload finished, buffer and
	// all, for the next data pack: a fresh writer would regrow its buffer
	// from nothing to the pack size, copying each pack about four times
	// over under mu and leaving as much garbage.
	spare chan *pack.Writer
	done  chan struct{}
	errMu sync.Mutex
	err   error // first upload error; later SaveBlob calls return it

	stats BlobStats
}

// BlobStats counts what this process added.
type BlobStats struct {
	Blobs, Bytes, Packs uint64
}

// openPack is a pack being filled: its writer and, when it streams, the
// object the writer writes to.
type openPack struct {
	w       *pack.Writer
	pending storage.Pending // nil for a pack built in memory
}

// abort discards the pack's object, if it has one.
func (p *openPack) abort() {
	if p.pending != nil {
		p.pending.Abort()
	}
}

type finishedPack struct {
	data    []byte          // nil for a streamed pack
	pending storage.Pending // a streamed pack, written, to publish
	size    int
	entries []pack.Entry
	id      id.ID
	w       *pack.Writer  // owns data; reused once the upload is done
	flushed chan struct{} // non-nil for a Flush marker
}

func newBlobWriter(r *Repository) *blobWriter {
	w := &blobWriter{
		r:        r,
		packers:  map[pack.BlobType]*openPack{},
		inflight: map[id.ID]struct{}{},
		uploads:  make(chan finishedPack, 1),
		spare:    make(chan *pack.Writer, 1),
		done:     make(chan struct{}),
	}
	w.stream, _ = r.st.(storage.Streamer)
	go w.uploader()
	return w
}

func (w *blobWriter) uploader() {
	defer close(w.done)
	for p := range w.uploads {
		if p.flushed != nil {
			close(p.flushed)
			continue
		}
		err := w.upload(p)
		w.mu.Lock()
		for _, e := range p.entries {
			delete(w.inflight, e.ID)
		}
		w.settled++
		w.mu.Unlock()
		if err != nil {
			w.setErr(err)
		}
		if p.w != nil && p.entries[0].Type == pack.DataBlob {
			select {
			case w.spare <- p.w:
			default:
			}
		}
	}
}

// newPacker returns an empty pack writer, for data packs streaming into a
// new object or with room for a whole pack. (Tree packs are mostly small:
// the last one of a backup is all most backups write.)
func (w *blobWriter) newPacker(t pack.BlobType) (*openPack, error) {
	if t != pack.DataBlob {
		return &openPack{w: pack.NewWriter(headerSealer{w.r.keys.pack})}, nil
	}
	if w.stream != nil {
		pending, err := w.stream.Create(w.r.closeCtx, storage.KindPacks)
		if err != nil {
			return nil, fmt.Errorf("start a pack: %w", err)
		}
		select {
		case pw := <-w.spare:
			pw.ResetTo(pending)
			return &openPack{w: pw, pending: pending}, nil
		default:
		}
		return &openPack{w: pack.NewStreamWriter(headerSealer{w.r.keys.pack}, pending), pending: pending}, nil
	}
	select {
	case pw := <-w.spare:
		pw.Reset()
		return &openPack{w: pw}, nil
	default:
	}
	pw := pack.NewWriter(headerSealer{w.r.keys.pack})
	// A pack ends with the blob that takes it past the target size: leave
	// room for a typical chunk beyond it.
	pw.Grow(w.r.cfg.PackSize + 2<<20)
	return &openPack{w: pw}, nil
}

func (w *blobWriter) upload(p finishedPack) error {
	if err := w.firstErr(); err != nil {
		if p.pending != nil {
			p.pending.Abort()
		}
		return err
	}
	ctx := w.r.closeCtx
	var err error
	if p.pending != nil {
		err = p.pending.Publish(ctx, p.id.String())
	} else {
		err = w.r.st.Save(ctx, packHandle(p.id), bytes.NewReader(p.data), int64(len(p.data)))
	}
	if err != nil {
		return fmt.Errorf("save pack %s: %w", p.id.Short(), err)
	}
	if err := w.r.idx.AddPack(ctx, p.id, int64(p.size), p.entries); err != nil {
		return fmt.Errorf("index pack %s: %w", p.id.Short(), err)
	}
	w.mu.Lock()
	w.stats.Packs++
	w.mu.Unlock()
	return nil
}

func (w *blobWriter) setErr(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
}

func (w *blobWriter) firstErr() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// SaveBlob stores a sealed blob unless the repository already has it. It
// reports whether the blob was new. The blob is durable only after Flush.
func (r *Repository) SaveBlob(ctx context.Context, t pack.BlobType, blobID id.ID, sealed []byte, rawLength uint32) (bool, error) {
	if !r.keys.full {
		return false, ErrReadOnly
	}
	if r.rblobs != nil {
		return r.rblobs.save(ctx, t, blobID, sealed, rawLength)
	}
	w := r.blobs
	if err := w.firstErr(); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	for {
		w.mu.Lock()
		_, pending := w.inflight[blobID]
		settled := w.settled
		w.mu.Unlock()
		if pending {
			return false, nil
		}
		known, err := r.idx.Has(ctx, blobID)
		if err != nil {
			return false, fmt.Errorf("look up blob %s: %w", blobID.Short(), err)
		}
		if known {
			return false, nil
		}
		w.mu.Lock()
		if w.settled == settled {
			break // still holding mu
		}
		w.mu.Unlock()
	}
	var full *finishedPack
	var err error
	if _, pending := w.inflight[blobID]; pending {
		w.mu.Unlock()
		return false, nil
	}
	op := w.packers[t]
	if op == nil {
		if op, err = w.newPacker(t); err != nil {
			w.mu.Unlock()
			return false, err
		}
		w.packers[t] = op
	}
	if _, err := op.w.Add(t, blobID, sealed, rawLength); err != nil {
		err = fmt.Errorf("add blob %s to pack: %w", blobID.Short(), err)
		if op.w.Failed() {
			// The pack's file could not be written: the blobs already in
			// it, which this process counts as stored, are lost. Nothing
			// more may be stored (a snapshot would reference them).
			op.abort()
			delete(w.packers, t)
			w.setErr(err)
		}
		w.mu.Unlock()
		return false, err
	}
	w.inflight[blobID] = struct{}{}
	w.stats.Blobs++
	w.stats.Bytes += uint64(len(sealed))
	if op.w.Size() >= r.cfg.PackSize {
		full, err = w.finish(t)
	}
	w.mu.Unlock()
	if err != nil {
		return false, err
	}
	if full != nil {
		// Always hand a finished pack to the uploader, even when ctx is
		// cancelled: its blobs are already "in flight", and a pack dropped
		// here would leave later SaveBlob calls of this process believing
		// blobs were stored that no pack holds. The uploader always drains
		// the queue, so this waits for at most one upload.
		w.uploads <- *full
	}
	return true, nil
}

// finish ends the pack of type t, which then leaves packers; call with mu
// held.
func (w *blobWriter) finish(t pack.BlobType) (*finishedPack, error) {
	op := w.packers[t]
	delete(w.packers, t)
	data, entries, packID, err := op.w.Finish()
	if err != nil {
		// Its blobs, which this process counts as stored, are lost:
		// nothing more may be stored, as in SaveBlob.
		err = fmt.Errorf("finish pack: %w", err)
		op.abort()
		w.setErr(err)
		return nil, err
	}
	return &finishedPack{data: data, pending: op.pending, size: op.w.Size(), entries: entries, id: packID, w: op.w}, nil
}

// Flush writes every pending blob into durable, indexed packs.
func (r *Repository) Flush(ctx context.Context) error {
	if r.rblobs != nil {
		return r.rblobs.flush(ctx)
	}
	if r.blobs == nil || !r.keys.full {
		return nil
	}
	w := r.blobs
	w.mu.Lock()
	var pending []*finishedPack
	for t, op := range w.packers {
		if op.w.Count() == 0 {
			op.abort()
			delete(w.packers, t)
			continue
		}
		p, err := w.finish(t)
		if err != nil {
			// finish recorded the error; the packs finished before
			// this one will never be uploaded.
			for _, done := range pending {
				if done.pending != nil {
					done.pending.Abort()
				}
			}
			w.mu.Unlock()
			return err
		}
		pending = append(pending, p)
	}
	w.mu.Unlock()
	marker := finishedPack{flushed: make(chan struct{})}
	for _, p := range pending {
		w.uploads <- *p // never dropped: see SaveBlob
	}
	select {
	case w.uploads <- marker:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-marker.flushed:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.firstErr()
}

// BlobStats returns what this process has added so far.
func (r *Repository) BlobStats() BlobStats {
	if r.rblobs != nil {
		return r.rblobs.blobStats()
	}
	r.blobs.mu.Lock()
	defer r.blobs.mu.Unlock()
	return r.blobs.stats
}

func (w *blobWriter) close() error {
	close(w.uploads)
	<-w.done
	// Packs never flushed (a cancelled backup): their blobs were never
	// indexed, so their files can go.
	w.mu.Lock()
	for t, op := range w.packers {
		op.abort()
		delete(w.packers, t)
	}
	w.mu.Unlock()
	return nil
}

// LoadBlob returns the sealed bytes of a blob, verified against its ID.
func (r *Repository) LoadBlob(ctx context.Context, blobID id.ID) ([]byte, error) {
	if r.remote != nil {
		buf, err := r.remote.LoadBlob(ctx, blobID)
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", blobID.Short(), err)
		}
		if id.Hash(buf) != blobID {
			return nil, fmt.Errorf("blob %s from the server: %w (the server's copy is damaged; run `costor check --read-data`)", blobID.Short(), ErrBlobCorrupt)
		}
		return buf, nil
	}
	loc, ok, err := r.idx.Lookup(ctx, blobID)
	if err != nil {
		return nil, fmt.Errorf("look up blob %s: %w", blobID.Short(), err)
	}
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", blobID.Short(), ErrBlobNotFound)
	}
	return r.loadAt(ctx, blobID, loc)
}

func (r *Repository) loadAt(ctx context.Context, blobID id.ID, loc index.Location) ([]byte, error) {
	buf, err := r.readAt(ctx, blobID, loc)
	if err != nil {
		return nil, err
	}
	if id.Hash(buf) != blobID {
		return nil, fmt.Errorf("blob %s in pack %s: %w (the pack is damaged; run `costor check --read-data`)", blobID.Short(), loc.Pack.Short(), ErrBlobCorrupt)
	}
	return buf, nil
}

// sealedBytes reads a blob's sealed bytes without verifying them, from the
// server or from a local pack; where names the place for error messages.
// rawLength is the plaintext length the index recorded, or 0 if unknown (a
// server does not tell; the AEAD tag still authenticates what it sends).
func (r *Repository) sealedBytes(ctx context.Context, blobID id.ID) (sealed []byte, where string, rawLength uint32, err error) {
	if r.remote != nil {
		buf, err := r.remote.LoadBlob(ctx, blobID)
		if err != nil {
			return nil, "", 0, fmt.Errorf("blob %s: %w", blobID.Short(), err)
		}
		return buf, "on the server", 0, nil
	}
	loc, ok, err := r.idx.Lookup(ctx, blobID)
	if err != nil {
		return nil, "", 0, fmt.Errorf("look up blob %s: %w", blobID.Short(), err)
	}
	if !ok {
		return nil, "", 0, fmt.Errorf("blob %s: %w", blobID.Short(), ErrBlobNotFound)
	}
	buf, err := r.readAt(ctx, blobID, loc)
	return buf, "in pack " + loc.Pack.Short(), loc.RawLength, err
}

// readAt reads a blob's sealed bytes without verifying them; callers
// authenticate them by opening (AEAD) or by hashing.
func (r *Repository) readAt(ctx context.Context, blobID id.ID, loc index.Location) ([]byte, error) {
	buf := make([]byte, loc.Length)
	err := r.st.Load(ctx, packHandle(loc.Pack), int64(loc.Offset), int64(loc.Length), func(rd io.Reader) error {
		_, err := io.ReadFull(rd, buf)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read blob %s from pack %s: %w", blobID.Short(), loc.Pack.Short(), err)
	}
	return buf, nil
}

// HasBlob reports whether the repository holds a blob, counting blobs
// pending in this process.
func (r *Repository) HasBlob(ctx context.Context, blobID id.ID) (bool, error) {
	if r.rblobs != nil {
		return r.rblobs.has(ctx, blobID)
	}
	if r.blobs != nil {
		r.blobs.mu.Lock()
		_, pending := r.blobs.inflight[blobID]
		r.blobs.mu.Unlock()
		if pending {
			return true, nil
		}
	}
	return r.idx.Has(ctx, blobID)
}
