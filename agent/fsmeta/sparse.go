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

// SparseWriter writes a file's content front to back, leaving every
// block-aligned block of zero bytes unwritten so that it becomes a hole, and
// at Close extends the file to its full length so trailing holes exist too.
//
// The file must be empty when the writer is created: bytes not written read
// as zeros. That is also why nothing needs holding back across Writes: the
// zero bytes of a block that turns out to hold data too are simply never
// written, and a block that is zero in every Write that touches it is never
// touched at all. So each Write of data costs one WriteAt whatever the
// chunk boundaries, and holes still go exactly where whole blocks are zero.
// Writes go through WriteAt at the writer's own offset, starting at 0; f's
// file position is not used.
type SparseWriter struct {
	f   *os.File
	off int64 // bytes accepted so far = offset of the next byte
	end int64 // offset just past the last byte written
}

// NewSparseWriter returns a writer for the empty file f.
func NewSparseWriter(f *os.File) *SparseWriter {
	return &SparseWriter{f: f}
}

// Write accepts p of any length, writing the runs of its blocks (aligned
// to the file, the first and last possibly partial) that hold a non-zero
// byte, one WriteAt per run.
func (w *SparseWriter) Write(p []byte) (int, error) {
	total := len(p)
	base := w.off
	// seg is the length of the block segment at i: up to the next block
	// boundary of the file.
	seg := func(i int) int {
		return min(len(p)-i, sparseBlock-int((base+int64(i))%sparseBlock))
	}
	zero := func(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }
	for i := 0; i < len(p); {
		for i < len(p) {
			n := seg(i)
			if !zero(p[i : i+n]) {
				break
			}
			i += n
		}
		j := i
		for j < len(p) {
			n := seg(j)
			if zero(p[j : j+n]) {
				break
			}
			j += n
		}
		if j > i {
			at := base + int64(i)
			if _, err := w.f.WriteAt(p[i:j], at); err != nil {
				w.off = at
				return i, fmt.Errorf("write %s at %d: %w", w.f.Name(), at, err)
			}
			w.end = base + int64(j)
		}
		i = j
	}
	w.off = base + int64(total)
	return total, nil
}

// Size is the number of bytes accepted so far.
func (w *SparseWriter) Size() int64 { return w.off }

// Close extends the file to the total length when it ends in zeros that
// were not written. It does not close the file.
func (w *SparseWriter) Close() error {
	if w.off == w.end {
		return nil
	}
	if err := w.f.Truncate(w.off); err != nil {
		return fmt.Errorf("truncate %s to %d: %w", w.f.Name(), w.off, err)
	}
	return nil
}
