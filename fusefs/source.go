package fusefs

import (
	"context"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// Source is what the mount needs of a repository. The CLI adapts a
// repository to it; tests may use any implementation.
type Source interface {
	// Refresh brings the view up to date with snapshots written since the
	// last call (cheap when nothing changed; the mount rate-limits it).
	Refresh(ctx context.Context) error
	// Snapshots lists every snapshot readable with the mount's keys,
	// oldest first.
	Snapshots(ctx context.Context) ([]Snapshot, error)
	// LoadTree returns the directory listing treeID of the snapshot's host.
	LoadTree(ctx context.Context, snap *Snapshot, treeID id.ID) (*tree.Tree, error)
	// ReadChunk appends the plaintext of one chunk of a file to dst.
	ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error)
	// HistoryChildren lists the names directly below dir ("/" for the
	// root) that were ever backed up on host, with whether each is a
	// directory (a name that was both is reported as a directory).
	HistoryChildren(ctx context.Context, host, dir string) ([]HistoryEntry, error)
	// Versions lists the distinct versions of the regular file at path on
	// host, oldest first, each named by the first snapshot that had it.
	Versions(ctx context.Context, host, path string) ([]Version, error)
}

// Snapshot is one snapshot as the mount shows it.
type Snapshot struct {
	ID   id.ID
	Host string
	Time time.Time
	Tree id.ID // root tree
	// Key is opaque to fusefs: the Source uses it to open the snapshot's
	// trees.
	Key any
}

// HistoryEntry is one name in a history directory.
type HistoryEntry struct {
	Name  string
	IsDir bool
}

// Version is one distinct content of a file.
type Version struct {
	Snapshot *Snapshot // the first snapshot that had this content
	Node     tree.Node // the file as that snapshot recorded it
}
