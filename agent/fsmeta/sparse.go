package fsmeta

import (
	"bytes"
	"fmt"
	"os"
)

// sparseBlock is the granularity of holes. 4 KiB is the page size and the
// usual filesystem block; a zero block misaligned with a larger fs block is
// still correct, it just gets allocated.
const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// SparseWriter writes a file's content front to back, skipping every
// block-aligned run of zero bytes so that it becomes a hole, and at Close
// extends the file to its full length so trailing holes exist too.
//
// The file must be empty when the writer is created (skipped ranges are not
// written, so old bytes there would survive). Writes go through WriteAt at
// the writer's own offset, starting at 0; f's file position is not used.
type SparseWriter struct {
	f       *os.File
	off     int64 // bytes accepted so far = offset of the next byte
	pending int   // bytes of the current partial block held in buf
	buf     [sparseBlock]byte
}

// NewSparseWriter returns a writer for the empty file f.
func NewSparseWriter(f *os.File) *SparseWriter {
	return &SparseWriter{f: f}
}

// Write accepts p of any length. Bytes of a block not yet complete are held
// back until the block is full or Close is called, so chunk boundaries do
// not decide where holes go.
func (w *SparseWriter) Write(p []byte) (int, error) {
	total := len(p)
	if w.pending > 0 {
		n := copy(w.buf[w.pending:], p)
		w.pending += n
		p = p[n:]
		if w.pending < sparseBlock {
			return total, nil
		}
		if err := w.flushBlocks(w.buf[:]); err != nil {
			return 0, err
		}
		w.pending = 0
	}
	full := len(p) - len(p)%sparseBlock
	if full > 0 {
		if err := w.flushBlocks(p[:full]); err != nil {
			return 0, err
		}
	}
	w.pending = copy(w.buf[:], p[full:])
	return total, nil
}

// flushBlocks writes p (a whole number of blocks, starting at w.off) with
// one WriteAt per run of non-zero blocks, skipping zero blocks.
func (w *SparseWriter) flushBlocks(p []byte) error {
	for len(p) > 0 {
		n := 0
		for n < len(p) && bytes.Equal(p[n:n+sparseBlock], zeroBlock[:]) {
			n += sparseBlock
		}
		w.off += int64(n)
		p = p[n:]
		n = 0
		for n < len(p) && !bytes.Equal(p[n:n+sparseBlock], zeroBlock[:]) {
			n += sparseBlock
		}
		if n > 0 {
			if _, err := w.f.WriteAt(p[:n], w.off); err != nil {
				return fmt.Errorf("write %s at %d: %w", w.f.Name(), w.off, err)
			}
			w.off += int64(n)
			p = p[n:]
		}
	}
	return nil
}

// Size is the number of bytes accepted so far.
func (w *SparseWriter) Size() int64 { return w.off + int64(w.pending) }

// Close writes the last partial block (unless it is all zeros) and
// truncates the file to the total length. It does not close the file.
func (w *SparseWriter) Close() error {
	if w.pending > 0 {
		tail := w.buf[:w.pending]
		if !bytes.Equal(tail, zeroBlock[:w.pending]) {
			if _, err := w.f.WriteAt(tail, w.off); err != nil {
				return fmt.Errorf("write %s at %d: %w", w.f.Name(), w.off, err)
			}
		}
		w.off += int64(w.pending)
		w.pending = 0
	}
	if err := w.f.Truncate(w.off); err != nil {
		return fmt.Errorf("truncate %s to %d: %w", w.f.Name(), w.off, err)
	}
	return nil
}
