package pack

import (
	"errors"
	"fmt"

	"github.com/costor/costor/repo/id"
)

// Version is the pack format version this package writes and reads.
const Version = 1

// HeaderSealer seals and opens pack headers (AEAD with a random nonce under
// the repository's pack key).
type HeaderSealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Layout constants. All of them are part of the on-disk format.
const (
	preambleSize  = 8 // magic, version, 3 reserved zero bytes
	trailerSize   = 8 // uint32 LE sealed header length, magic
	headerVersion = 1

	// minEntrySize is the smallest encoded entry (every varint one byte). It
	// bounds how many entries a header of a given size can claim.
	minEntrySize = 1 + id.Size + 3
)

var magic = [4]byte{'C', 'S', 'T', 'P'}

// Limits. Offsets and lengths are uint32 on disk, so a pack's blob region
// ends at or before 4 GiB; the header limit bounds what ReadHeader allocates
// for a header a hostile trailer asks for.
const (
	MaxEntries      = 1 << 20
	maxBlobRegion   = 1<<32 - 1
	maxSealedHeader = 64 << 20
)

// ErrCorrupt is matched (errors.Is) by every error that reports malformed pack
// bytes or a blob that does not match its entry, as opposed to an I/O error.
var ErrCorrupt = errors.New("corrupt pack")

// ErrFull is returned (wrapped) by Writer.Add when the blob would not fit in
// the pack's format limits; finish the pack and start another.
var ErrFull = errors.New("pack full")

// corruptError describes malformed pack bytes in its own words while still
// matching ErrCorrupt.
type corruptError struct {
	msg string
	err error // optional cause
}

func (e *corruptError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *corruptError) Unwrap() error        { return e.err }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf(format, args...)}
}
