package pack

import "github.com/costor/costor/repo/id"

// BlobType says what a blob holds.
type BlobType uint8

// Blob types. Values are part of the on-disk format.
const (
	DataBlob BlobType = 0 // a file chunk, sealed under its convergent key
	TreeBlob BlobType = 1 // a directory listing, sealed under its host's key
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return "invalid"
}

// Entry locates one blob inside a pack.
type Entry struct {
	Type      BlobType
	ID        id.ID  // SHA-256 of the stored (sealed) bytes
	Offset    uint32 // from the start of the pack file
	Length    uint32 // stored length
	RawLength uint32 // plaintext length before compression and sealing
}
