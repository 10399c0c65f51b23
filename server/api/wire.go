package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// ErrMalformed is wrapped by every decoding error: the request is bad (a
// 400), not the server.
var ErrMalformed = errors.New("malformed request")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// An ID list is the IDs concatenated, 32 bytes each, nothing else.

// AppendIDs appends the encoding of ids to dst.
func AppendIDs(dst []byte, ids []id.ID) []byte {
	for _, b := range ids {
		dst = append(dst, b[:]...)
	}
	return dst
}

// DecodeIDs decodes an ID list of at most max IDs.
func DecodeIDs(data []byte, max int) ([]id.ID, error) {
	if len(data)%id.Size != 0 {
		return nil, malformed("ID list of %d bytes is not a multiple of %d", len(data), id.Size)
	}
	n := len(data) / id.Size
	if n > max {
		return nil, malformed("ID list of %d IDs exceeds the limit of %d", n, max)
	}
	out := make([]id.ID, n)
	for i := range out {
		copy(out[i][:], data[i*id.Size:])
	}
	return out, nil
}

// ReadIDs streams an ID list of unbounded length from r, calling fn for
// each ID: the refs of a snapshot may be millions long.
func ReadIDs(r io.Reader, fn func(id.ID) error) error {
	var b id.ID
	for {
		_, err := io.ReadFull(r, b[:])
		if err == io.EOF {
			return nil
		}
		if err == io.ErrUnexpectedEOF {
			return malformed("ID list ends inside an ID")
		}
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// A blob batch is a sequence of blobs, each
//
//	type (1 byte: 0 data, 1 tree) | ID (32) | raw length (uint32 BE) | length (uint32 BE) | sealed bytes
//
// and nothing after the last one. The raw length is the plaintext length
// the pack header records; the server checks SHA-256(sealed) == ID.

// BatchBlob is one blob of a batch.
type BatchBlob struct {
	Type      pack.BlobType
	ID        id.ID
	RawLength uint32
	Data      []byte
}

const batchHeaderLen = 1 + id.Size + 4 + 4

// BatchOverhead is the encoded size of a batch blob beyond its data.
const BatchOverhead = batchHeaderLen

// AppendBatchBlob appends one blob's encoding to dst.
func AppendBatchBlob(dst []byte, b BatchBlob) []byte {
	dst = append(dst, byte(b.Type))
	dst = append(dst, b.ID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, b.RawLength)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b.Data)))
	return append(dst, b.Data...)
}

// BatchReader decodes a blob batch from a stream one blob at a time, so a
// server holds at most one blob of a request beyond what it has stored.
type BatchReader struct {
	r     io.Reader
	count int
	total int64
}

// NewBatchReader reads a batch from r.
func NewBatchReader(r io.Reader) *BatchReader { return &BatchReader{r: r} }

// Next returns the next blob, reusing buf for its data, or io.EOF after
// the last one. Any other error wraps ErrMalformed or is the reader's.
func (br *BatchReader) Next(buf []byte) (BatchBlob, error) {
	var h [batchHeaderLen]byte
	n, err := io.ReadFull(br.r, h[:])
	if err == io.EOF && n == 0 {
		return BatchBlob{}, io.EOF
	}
	if err == io.ErrUnexpectedEOF {
		return BatchBlob{}, malformed("blob batch ends inside a blob header")
	}
	if err != nil {
		return BatchBlob{}, err
	}
	br.count++
	if br.count > MaxBatchBlobs {
		return BatchBlob{}, malformed("blob batch holds more than %d blobs", MaxBatchBlobs)
	}
	b := BatchBlob{Type: pack.BlobType(h[0])}
	if b.Type != pack.DataBlob && b.Type != pack.TreeBlob {
		return BatchBlob{}, malformed("blob %d: unknown blob type %d", br.count, h[0])
	}
	copy(b.ID[:], h[1:1+id.Size])
	b.RawLength = binary.BigEndian.Uint32(h[1+id.Size:])
	length := binary.BigEndian.Uint32(h[1+id.Size+4:])
	if length > MaxBlobSize {
		return BatchBlob{}, malformed("blob %s: %d bytes exceeds the limit of %d", b.ID.Short(), length, MaxBlobSize)
	}
	br.total += int64(length) + batchHeaderLen
	if br.total > MaxBatchBytes {
		return BatchBlob{}, malformed("blob batch exceeds %d bytes", MaxBatchBytes)
	}
	data, err := readGrowing(br.r, buf[:0], int(length))
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return BatchBlob{}, malformed("blob %s: batch ends inside its %d bytes", b.ID.Short(), length)
		}
		return BatchBlob{}, err
	}
	b.Data = data
	return b, nil
}

// growStep is how much readGrowing reserves ahead of the bytes that have
// arrived: a 41-byte request that announces a 256 MiB blob costs 1 MiB,
// not 256.
const growStep = 1 << 20

// readGrowing reads exactly n bytes from r, appending to dst, and grows
// dst only as the bytes arrive.
func readGrowing(r io.Reader, dst []byte, n int) ([]byte, error) {
	for n > 0 {
		step := min(n, growStep)
		if cap(dst)-len(dst) < step {
			grown := make([]byte, len(dst), len(dst)+max(step, min(n, 2*cap(dst))))
			copy(grown, dst)
			dst = grown
		}
		start := len(dst)
		dst = dst[:start+step]
		if _, err := io.ReadFull(r, dst[start:]); err != nil {
			return nil, err
		}
		n -= step
	}
	return dst, nil
}

// A snapshot commit is
//
//	record length (uint32 BE) | snapshot record | ID list of referenced blobs (to the end)
//
// The record is the exact bytes stored under snapshots/<SHA-256 of it>.
// The ID list may repeat IDs; the server counts each blob once.

// AppendCommitHeader appends the part of a commit before its ID list.
func AppendCommitHeader(dst, record []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(record)))
	return append(dst, record...)
}

// ReadCommitHeader reads a commit's record from r; the ID list follows in r.
func ReadCommitHeader(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, malformed("snapshot commit shorter than its length field")
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > MaxRecordSize {
		return nil, malformed("snapshot record length %d is outside 1..%d", n, MaxRecordSize)
	}
	rec, err := readGrowing(r, nil, int(n))
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, malformed("snapshot commit ends inside its %d-byte record", n)
		}
		return nil, err
	}
	return rec, nil
}
