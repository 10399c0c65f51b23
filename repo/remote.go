package repo

import (
	"context"
	"io"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// Remote is a site server as a repository sees it from a client: blobs
// live on the server, in the server's packs under the server's index, and
// never in local packs. The server holds no key: it stores sealed blobs,
// checks each against its ID, and keeps, per snapshot, the list of blobs
// it references.
//
// A repository opened with Options.Remote reads config, host envelopes
// and snapshot records through Options.Storage (which the same client
// provides, the server filtering them by the caller's role), keeps a
// private cache index in Options.IndexDir, and sends blobs through Remote.
//
// server/client implements it; repo only declares what it needs.
type Remote interface {
	// Missing returns those of blobs (at most api.MaxIDs) the server lacks.
	Missing(ctx context.Context, blobs []id.ID) ([]id.ID, error)
	// Upload stores blobs durably; when it returns nil every one of them
	// survives a crash of the server.
	Upload(ctx context.Context, blobs []RemoteBlob) error
	// LoadBlob returns a blob's sealed bytes (not verified against the ID:
	// the reader authenticates them).
	LoadBlob(ctx context.Context, blob id.ID) ([]byte, error)
	// Refs calls fn for every blob the committed snapshot snap references.
	Refs(ctx context.Context, snap id.ID, fn func(id.ID) error) error
	// Commit stores a snapshot record together with the IDs of every blob
	// it references (refs: 32 bytes each, repeats allowed). The server
	// commits it only if it holds every one of them durably; otherwise it
	// answers an error wrapping ErrMissingBlobs.
	Commit(ctx context.Context, record []byte, refs io.Reader, refsLen int64) error
}

// RemoteBlob is one sealed blob on its way to a server.
type RemoteBlob struct {
	Type      pack.BlobType
	ID        id.ID
	RawLength uint32
	Data      []byte
}
