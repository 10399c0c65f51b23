// Package server is costor's site server: one HTTPS port that stores a
// site's sealed blobs in its own packs, verifies them, keeps per-snapshot
// reference lists, and enforces tokens and roles, writing an audit log of
// every request that reads data or changes state. It holds no key that
// decrypts anything it stores, so it starts unattended.
//
// The wire protocol is server/api; the data directory is laid out as
//
//	tls/cert.pem, tls/key.pem   the certificate clients pin (generated on first start)
//	admin.token                 the first admin token, written once (0600)
//	server.key                  pack-header key and audit HMAC key (0600)
//	tokens.json                 tokens: secrets only as SHA-256
//	audit.log                   JSON lines of api.AuditEntry, HMAC-chained
//	repo/                       a repo/storage/local layout: config, hostkeys, snapshots, packs
//	index/                      the Badger index (repo/index): blobs, packs, refs
//
// Invariants:
//   - An acknowledged upload is durable: its new blobs are one pack, saved
//     (temp, fsync, rename, fsync dir) and indexed before the 200.
//   - Every stored blob was checked: SHA-256 of its sealed bytes is its ID.
//   - A snapshot record file exists only with all its refs in the index:
//     a commit writes and syncs the refs, then saves the record; a forget
//     removes the record, then the refs. Refs whose record is missing are
//     leftovers and are dropped when the server starts (reconcile).
//   - A pack on disk that the index lacks is indexed on start from its
//     header, sealed under the server's own pack key.
//   - A blob is served to a host-bound token only if a committed snapshot
//     of that host references it.
//   - Prune runs alone (gcMu): the index work of uploads, commits, missing
//     queries and forgets waits, but never the reading of a request body, so
//     a slow client cannot hold off prune and, behind it, everyone else.
//     A blob with a ref (even of a commit in progress) is kept; so is one a
//     client was told is stored within the grace period (MarkTold: missing
//     answers, uploads of known blobs, forgotten snapshots' blobs), and every
//     blob of a pack younger than the grace period.
//   - Memory is bounded whatever the repository size: ref lists are
//     streamed into the index in slices, uploads are bounded by a shared
//     byte budget, listings of refs and the audit log are streamed.
package server
