package pack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/costor/costor/repo/id"
)

// tailGuess is how much of a pack's end ReadHeader reads at first: enough for
// the header of a typical pack, so remote storage answers in one request.
const tailGuess = 16 << 10

// ReadHeader reads and validates the header of the pack r of size bytes and
// returns its entries in offset order. Errors about the bytes themselves
// match ErrCorrupt; I/O errors from r are returned wrapped.
func ReadHeader(r io.ReaderAt, size int64, sealer HeaderSealer) ([]Entry, error) {
	if size < preambleSize+trailerSize+1 {
		return nil, corrupt("pack of %d bytes is too small to be a pack", size)
	}
	tail := make([]byte, min(size, tailGuess))
	tailStart := size - int64(len(tail))
	if err := readFull(r, tail, tailStart); err != nil {
		return nil, fmt.Errorf("read pack trailer: %w", err)
	}
	trailer := tail[len(tail)-trailerSize:]
	if !bytes.Equal(trailer[4:], magic[:]) {
		return nil, corrupt("pack trailer: bad magic %q", trailer[4:])
	}
	sealedLen := int64(binary.LittleEndian.Uint32(trailer))
	if sealedLen == 0 || sealedLen > size-preambleSize-trailerSize || sealedLen > maxSealedHeader {
		return nil, corrupt("pack trailer: header length %d does not fit a pack of %d bytes", sealedLen, size)
	}
	headerStart := size - trailerSize - sealedLen

	var sealed []byte
	if headerStart >= tailStart {
		sealed = tail[headerStart-tailStart : int64(len(tail))-trailerSize]
	} else {
		sealed = make([]byte, sealedLen)
		if err := readFull(r, sealed, headerStart); err != nil {
			return nil, fmt.Errorf("read pack header: %w", err)
		}
	}

	var preamble []byte
	if tailStart == 0 {
		preamble = tail[:preambleSize]
	} else {
		preamble = make([]byte, preambleSize)
		if err := readFull(r, preamble, 0); err != nil {
			return nil, fmt.Errorf("read pack preamble: %w", err)
		}
	}
	if err := checkPreamble(preamble); err != nil {
		return nil, err
	}

	plain, err := sealer.Open(sealed)
	if err != nil {
		return nil, &corruptError{msg: "pack header: cannot open (tampered, or sealed under another key)", err: err}
	}
	return parseHeader(plain, preambleSize, headerStart)
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil // io.ReaderAt may report io.EOF with a full read at the end
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%d bytes at offset %d: %w", len(p), off, err)
}

func checkPreamble(p []byte) error {
	if !bytes.Equal(p[:4], magic[:]) {
		return corrupt("pack preamble: bad magic %q", p[:4])
	}
	if p[4] != Version {
		return corrupt("pack preamble: unsupported format version %d (this costor reads version %d)", p[4], Version)
	}
	if p[5] != 0 || p[6] != 0 || p[7] != 0 {
		return corrupt("pack preamble: reserved bytes %x are not zero", p[5:8])
	}
	return nil
}

// parseHeader decodes a plaintext header and checks that its entries tile
// [blobStart, blobEnd) exactly, in offset order.
func parseHeader(plain []byte, blobStart, blobEnd int64) ([]Entry, error) {
	if len(plain) < 2 {
		return nil, corrupt("pack header: %d bytes is too short", len(plain))
	}
	if plain[0] != headerVersion {
		return nil, corrupt("pack header: unsupported version %d", plain[0])
	}
	rest := plain[1:]
	count, ok := uvarint(&rest)
	if !ok {
		return nil, corrupt("pack header: bad entry count")
	}
	if count == 0 {
		return nil, corrupt("pack header: no entries")
	}
	// Bounding count by the bytes present keeps a hostile header from making
	// us allocate more than it is long.
	if count > uint64(len(rest)/minEntrySize) || count > MaxEntries {
		return nil, corrupt("pack header: %d entries cannot fit in %d bytes", count, len(rest))
	}
	entries := make([]Entry, count)
	next := blobStart
	for i := range entries {
		e := &entries[i]
		if len(rest) < 1+id.Size {
			return nil, corrupt("pack header: entry %d is truncated", i)
		}
		e.Type = BlobType(rest[0])
		if e.Type != DataBlob && e.Type != TreeBlob {
			return nil, corrupt("pack header: entry %d has unknown blob type %d", i, rest[0])
		}
		copy(e.ID[:], rest[1:1+id.Size])
		rest = rest[1+id.Size:]
		var ok bool
		if e.Offset, ok = uvarint32(&rest); !ok {
			return nil, corrupt("pack header: entry %d has a bad offset", i)
		}
		if e.Length, ok = uvarint32(&rest); !ok {
			return nil, corrupt("pack header: entry %d has a bad length", i)
		}
		if e.RawLength, ok = uvarint32(&rest); !ok {
			return nil, corrupt("pack header: entry %d has a bad raw length", i)
		}
		if e.Length == 0 {
			return nil, corrupt("pack header: entry %d is empty", i)
		}
		switch off := int64(e.Offset); {
		case off < next:
			return nil, corrupt("pack header: entry %d at offset %d overlaps what precedes it (ends at %d)", i, off, next)
		case off > next:
			return nil, corrupt("pack header: entry %d at offset %d leaves a gap after offset %d", i, off, next)
		}
		next += int64(e.Length)
		if next > blobEnd {
			return nil, corrupt("pack header: entry %d extends past blob region (to %d, region ends at %d)", i, next, blobEnd)
		}
	}
	if len(rest) != 0 {
		return nil, corrupt("pack header: %d bytes after the last entry", len(rest))
	}
	if next != blobEnd {
		return nil, corrupt("pack header: entries end at %d but the blob region ends at %d", next, blobEnd)
	}
	return entries, nil
}

// uvarint decodes a canonical (shortest-form) uvarint from the front of *b,
// so every header has exactly one encoding.
func uvarint(b *[]byte) (uint64, bool) {
	v, n := binary.Uvarint(*b)
	if n <= 0 || n != max(1, (bits.Len64(v)+6)/7) {
		return 0, false
	}
	*b = (*b)[n:]
	return v, true
}

func uvarint32(b *[]byte) (uint32, bool) {
	v, ok := uvarint(b)
	if !ok || v > math.MaxUint32 {
		return 0, false
	}
	return uint32(v), true
}

// VerifyBlob checks that data is the blob e describes.
func VerifyBlob(e Entry, data []byte) error {
	if int64(len(data)) != int64(e.Length) {
		return corrupt("%s blob %s: %d bytes, header says %d", e.Type, e.ID.Short(), len(data), e.Length)
	}
	if got := id.Hash(data); got != e.ID {
		return corrupt("%s blob %s: content hashes to %s", e.Type, e.ID.Short(), got.Short())
	}
	return nil
}
