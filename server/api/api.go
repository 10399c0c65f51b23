package api

import (
	"time"
)

// Paths. {kind} is a storage kind (config, hostkeys, snapshots, packs),
// {name} an object name, {id} a 64-hex-digit ID.
const (
	// GET: the caller's identity (Whoami).
	PathWhoami = "/v1/whoami"
	// GET /v1/objects/{kind}: a JSON []ObjectInfo the caller may see.
	// GET /v1/objects/{kind}/{name}: the object's bytes (optional query
	// offset= and length= for a range).
	// PUT /v1/objects/hostkeys/{name}: store a host envelope.
	// DELETE /v1/objects/snapshots/{name}: forget a snapshot (admin).
	PathObjects = "/v1/objects/"
	// POST: body an ID list; answer the IDs of that list the server lacks.
	PathMissing = "/v1/blobs/missing"
	// POST: body a blob batch; 200 once every blob of it is durable.
	PathBlobs = "/v1/blobs"
	// GET /v1/blobs/{id}: a blob's sealed bytes; header BlobTypeHeader.
	PathBlob = "/v1/blobs/"
	// POST: body a snapshot commit; 201 with a JSON CommitResult; 409 with
	// a JSON Error whose Missing lists referenced blobs the server lacks.
	PathSnapshots = "/v1/snapshots"
	// GET /v1/snapshots/{id}/refs: the ID list the snapshot references.
	PathSnapshotRefsPrefix = "/v1/snapshots/"
	PathSnapshotRefsSuffix = "/refs"
	// POST: JSON TokenRequest → JSON TokenCreated. GET: JSON []Token.
	// DELETE /v1/tokens/{id}: revoke.
	PathTokens = "/v1/tokens"
	// GET ?since=RFC3339: JSON []AuditEntry.
	PathAudit = "/v1/audit"
	// POST: JSON PruneRequest → JSON PruneResult (admin).
	PathPrune = "/v1/prune"
)

// BlobTypeHeader names the type of a served blob: "data" or "tree".
const BlobTypeHeader = "Costor-Blob-Type"

// Roles.
const (
	RoleAdmin  = "admin"
	RoleAgent  = "agent"
	RoleReader = "reader"
	RolePeer   = "peer"
)

// Limits every server enforces and every client respects.
const (
	// MaxIDs is the most IDs in one ID list (a missing query, say).
	MaxIDs = 1 << 16
	// MaxBlobSize bounds one sealed blob (a tree of a directory with a few
	// million entries still fits).
	MaxBlobSize = 256 << 20
	// MaxBatchBytes bounds a blob batch body; a client sends a blob larger
	// than its usual batch size alone.
	MaxBatchBytes = MaxBlobSize + 1<<20
	// MaxBatchBlobs bounds the blobs in one batch.
	MaxBatchBlobs = 1 << 16
	// MaxRecordSize bounds a snapshot record in a commit.
	MaxRecordSize = 16 << 20
	// MaxObjectSize bounds an object PUT (a host envelope).
	MaxObjectSize = 1 << 20
	// MaxJSONBody bounds a JSON request body.
	MaxJSONBody = 64 << 10
)

// Error is the JSON body of every 4xx/5xx answer.
type Error struct {
	Error string `json:"error"`
	// Missing: on a 409 to a commit, referenced blobs the server lacks
	// (hex IDs, at most 1,000 of them).
	Missing []string `json:"missing,omitempty"`
}

// Whoami is the identity a token stands for.
type Whoami struct {
	TokenID string `json:"token_id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Host    string `json:"host,omitempty"` // empty: every host (admin, reader of all)
	// RepositoryID is the server repository's config ID: clients key
	// their local caches by it.
	RepositoryID string `json:"repository_id"`
}

// ObjectInfo is one entry of an object listing.
type ObjectInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// CommitResult answers a successful snapshot commit.
type CommitResult struct {
	ID   string `json:"id"`
	Refs int    `json:"refs"` // distinct blobs the snapshot references
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Role string `json:"role"`
	Host string `json:"host,omitempty"`
	Name string `json:"name,omitempty"`
}

// Token describes a token; the secret is never part of it.
type Token struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Role    string     `json:"role"`
	Host    string     `json:"host"`
	Created time.Time  `json:"created"`
	Revoked *time.Time `json:"revoked,omitempty"`
}

// TokenCreated answers a token creation: Secret is shown this once.
type TokenCreated struct {
	Token
	Secret string `json:"secret"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Token   string    `json:"token"` // token name, or "-" when none was valid
	TokenID string    `json:"token_id,omitempty"`
	Role    string    `json:"role,omitempty"`
	Host    string    `json:"host"` // the host the token is bound to, or the host acted on
	Remote  string    `json:"remote,omitempty"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	Result  string    `json:"result"` // "allowed" or "refused"
	Status  int       `json:"status"`
	Detail  string    `json:"detail,omitempty"`
	// Prev and Hash chain the entries: Hash = HMAC-SHA256(audit key,
	// Prev || the entry's canonical JSON without Hash).
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// Audit results.
const (
	ResultAllowed = "allowed"
	ResultRefused = "refused"
)

// PruneRequest asks the server to forget nothing and delete what no
// snapshot references.
type PruneRequest struct {
	DryRun bool `json:"dry_run"`
	// GraceSeconds, if set, replaces the server's grace period: packs
	// younger than it, and blobs a client was told are stored within it,
	// are kept for backups still running. 0 frees everything unreferenced
	// now, at the price that a backup running meanwhile may have to be
	// run again (its commit is refused; nothing committed is lost).
	GraceSeconds *int64 `json:"grace_seconds,omitempty"`
}

// PruneResult reports a server-side prune.
type PruneResult struct {
	BlobsDeleted uint64 `json:"blobs_deleted"`
	BytesFreed   uint64 `json:"bytes_freed"`
	PacksDeleted int    `json:"packs_deleted"`
	PacksWritten int    `json:"packs_written"`
	// PacksYoung were left alone because they are younger than the grace
	// period, GraceSeconds.
	PacksYoung   int   `json:"packs_young"`
	GraceSeconds int64 `json:"grace_seconds"`
}
