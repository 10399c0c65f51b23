package snapshot

import (
	"time"

	"github.com/costor/costor/repo/id"
)

// Public is the part of a snapshot record that a server may see: enough to
// list, retain, prune and verify without any key. It never holds a file
// name, a path or a tree ID.
type Public struct {
	Version int       // format version of the record
	Host    string    // hostname the snapshot belongs to
	Time    time.Time // when the backup started
	Tags    []string
	Parent  id.ID // the snapshot this one was based on, or null
	// HostKey names the host key envelope (storage.KindHostKeys) whose data
	// key seals Details.
	HostKey string
	// Sealed is Details, encoded and sealed under the host data key.
	Sealed []byte
}

// Details is the private part of a snapshot record, sealed to the host.
type Details struct {
	Paths    []string // absolute source paths as given (arbitrary bytes)
	Tree     id.ID    // root tree: one Dir node per top-level path component
	Hostname string   // the machine's hostname when taken
	Username string
	Excludes []string
	Method   string // how the point-in-time view was taken: "none", "btrfs", "lvm", ...
	Program  string // "costor 0.1.0"
	Stats    Stats
	Errors   []string // paths that could not be read, with the reason
}

// Stats counts what a backup saw and added.
type Stats struct {
	Files        uint64
	Dirs         uint64
	Bytes        uint64 // total size of files in the snapshot
	FilesNew     uint64
	FilesChanged uint64
	FilesSame    uint64 // reused from the parent without reading
	BlobsAdded   uint64
	BytesAdded   uint64 // stored bytes added to the repository
	Duration     time.Duration
}
