package pack

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/costor/costor/repo/id"
)

// Writer assembles one pack, in memory or, made by NewStreamWriter, written
// out to a sink as it grows. When to finish a pack is the caller's decision
// (see Size). A Writer is not safe for concurrent use.
type Writer struct {
	sealer HeaderSealer
	// buf holds the preamble and blobs, after Finish the whole pack; for a
	// stream writer only what is not yet written to sink.
	buf      []byte
	sink     io.Writer // nil for an in-memory writer
	written  int       // bytes written to sink
	sinkErr  error     // a failed write: the pack is lost
	entries  []Entry
	header   []byte // plaintext header scratch, reused across packs
	finished bool
	// sum hashes the pack as it grows: each blob is hashed right after it
	// is copied in, while it is still in the CPU cache, instead of the
	// whole pack once more at Finish (a pass that cost more than the
	// blob-ID check of a server's upload).
	sum hash.Hash
}

// NewWriter returns an empty writer that seals headers with sealer.
func NewWriter(sealer HeaderSealer) *Writer {
	w := &Writer{sealer: sealer, sum: sha256.New()}
	w.Reset()
	return w
}

// streamBuffer is how much a stream writer gathers before it writes: small
// blobs go out in a few large writes; a blob this large goes out directly.
const streamBuffer = 1 << 20

// NewStreamWriter returns a writer that writes its pack to sink as blobs
// are added, so a pack never sits whole in memory; Finish then returns no
// bytes. Call ResetTo with a new sink for each further pack.
func NewStreamWriter(sealer HeaderSealer, sink io.Writer) *Writer {
	w := &Writer{sealer: sealer, sum: sha256.New()}
	w.ResetTo(sink)
	return w
}

// Reset empties w for the next pack, keeping its buffers. The bytes Finish
// returned are overwritten by the next pack. A stream writer needs ResetTo.
func (w *Writer) Reset() { w.ResetTo(nil) }

// ResetTo empties w for the next pack, written to sink (nil: in memory).
func (w *Writer) ResetTo(sink io.Writer) {
	w.sink, w.written, w.sinkErr = sink, 0, nil
	w.buf = appendPreamble(w.buf[:0])
	w.entries = w.entries[:0]
	w.finished = false
	w.sum.Reset()
	w.sum.Write(w.buf)
}

// emit writes data to the sink, counting it; the first error sticks.
func (w *Writer) emit(data []byte) error {
	if w.sinkErr != nil {
		return w.sinkErr
	}
	n, err := w.sink.Write(data)
	w.written += n
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.sinkErr = fmt.Errorf("write pack: %w", err)
	}
	return w.sinkErr
}

// flushBuf writes out what buf holds (stream writers only).
func (w *Writer) flushBuf() error {
	err := w.emit(w.buf)
	w.buf = w.buf[:0]
	return err
}

// Grow makes room for n more bytes of blobs, so that a writer that knows
// how much is coming (a server reading an upload of known length) copies
// each blob once instead of regrowing its buffer.
func (w *Writer) Grow(n int) {
	if n > 0 && cap(w.buf)-len(w.buf) < n {
		grown := make([]byte, len(w.buf), len(w.buf)+n)
		copy(grown, w.buf)
		w.buf = grown
	}
}

func appendPreamble(b []byte) []byte {
	b = append(b, magic[:]...)
	return append(b, Version, 0, 0, 0)
}

// Size is the pack's size so far: preamble and blobs, without the header and
// trailer Finish adds (about 40 bytes per blob plus a constant).
func (w *Writer) Size() int { return w.written + len(w.buf) }

// Failed reports whether a stream writer's sink failed: the pack is lost
// and every further Add and Finish fails.
func (w *Writer) Failed() bool { return w.sinkErr != nil }

// Count is the number of blobs added so far.
func (w *Writer) Count() int { return len(w.entries) }

// Add appends a blob. id must be the SHA-256 of data: Add does not hash data
// again, because its caller just did; VerifyBlob checks it when reading.
// rawLength is the blob's plaintext length, recorded for the index.
func (w *Writer) Add(t BlobType, blobID id.ID, data []byte, rawLength uint32) (Entry, error) {
	if w.finished {
		return Entry{}, errors.New("add blob to pack: writer finished; call Reset first")
	}
	if t != DataBlob && t != TreeBlob {
		return Entry{}, fmt.Errorf("add blob %s to pack: unknown blob type %d", blobID.Short(), t)
	}
	if len(data) == 0 {
		return Entry{}, fmt.Errorf("add blob %s to pack: empty blob", blobID.Short())
	}
	if w.sinkErr != nil {
		return Entry{}, fmt.Errorf("add blob %s to pack: %w", blobID.Short(), w.sinkErr)
	}
	if len(w.entries) >= MaxEntries || int64(w.Size())+int64(len(data)) > maxBlobRegion {
		return Entry{}, fmt.Errorf("add blob %s of %d bytes to pack of %d blobs and %d bytes: %w",
			blobID.Short(), len(data), len(w.entries), w.Size(), ErrFull)
	}
	e := Entry{
		Type:      t,
		ID:        blobID,
		Offset:    uint32(w.Size()),
		Length:    uint32(len(data)),
		RawLength: rawLength,
	}
	w.sum.Write(data)
	if w.sink != nil && len(w.buf)+len(data) > streamBuffer {
		err := w.flushBuf()
		if err == nil && len(data) >= streamBuffer {
			err = w.emit(data) // straight from the caller's buffer
			data = nil
		}
		if err != nil {
			return Entry{}, fmt.Errorf("add blob %s to pack: %w", blobID.Short(), err)
		}
	}
	w.buf = append(w.buf, data...)
	w.entries = append(w.entries, e)
	return e, nil
}

// Finish appends the sealed header and trailer and returns the pack. The
// returned packBytes alias w's buffer and stay valid until the next Reset;
// a stream writer writes them to its sink instead and returns nil (Size is
// then the pack's size). entries is the caller's own copy.
func (w *Writer) Finish() (packBytes []byte, entries []Entry, packID id.ID, err error) {
	if w.finished {
		return nil, nil, id.ID{}, errors.New("finish pack: already finished; call Reset first")
	}
	if len(w.entries) == 0 {
		return nil, nil, id.ID{}, errors.New("finish pack: no blobs")
	}
	if w.sinkErr != nil {
		return nil, nil, id.ID{}, fmt.Errorf("finish pack: %w", w.sinkErr)
	}
	w.header = appendHeader(w.header[:0], w.entries)
	sealed, err := w.sealer.Seal(w.header)
	if err != nil {
		return nil, nil, id.ID{}, fmt.Errorf("finish pack: seal header: %w", err)
	}
	if len(sealed) == 0 || len(sealed) > maxSealedHeader {
		return nil, nil, id.ID{}, fmt.Errorf("finish pack: sealed header of %d bytes outside (0, %d]", len(sealed), maxSealedHeader)
	}
	blobEnd := len(w.buf)
	w.buf = append(w.buf, sealed...)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(sealed)))
	w.buf = append(w.buf, magic[:]...)
	w.finished = true
	w.sum.Write(w.buf[blobEnd:])
	w.sum.Sum(packID[:0])
	if w.sink != nil {
		if err := w.flushBuf(); err != nil {
			return nil, nil, id.ID{}, fmt.Errorf("finish pack: %w", err)
		}
		return nil, slices.Clone(w.entries), packID, nil
	}
	return w.buf, slices.Clone(w.entries), packID, nil
}

// appendHeader appends the plaintext header listing entries to b.
func appendHeader(b []byte, entries []Entry) []byte {
	b = append(b, headerVersion)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, byte(e.Type))
		b = append(b, e.ID[:]...)
		b = binary.AppendUvarint(b, uint64(e.Offset))
		b = binary.AppendUvarint(b, uint64(e.Length))
		b = binary.AppendUvarint(b, uint64(e.RawLength))
	}
	return b
}
