// Package client is the HTTPS client of a costor site server: what the
// CLI and a repository opened in server mode use to reach it.
//
// A Client implements repo.Remote (missing blobs, blob batches, blob
// reads, snapshot commits with their reference lists) and, through
// Storage, the storage.Storage contract for the objects the server
// exposes to clients (config, host key envelopes, snapshot records, and
// packs for a replication peer). It also speaks the admin endpoints
// (tokens, audit, prune) and whoami.
//
// Invariants:
//   - TLS always, HTTP/2 when the server offers it, TLS 1.2 at least.
//     The server's certificate is trusted only through an explicit
//     --cacert file or a pinned SHA-256 fingerprint; there is no mode that
//     skips verification.
//   - Every response body is read through a limit taken from server/api;
//     a hostile or broken server gives an error, never an unbounded
//     allocation or a panic.
//   - Only idempotent requests are retried (GETs, missing queries, blob
//     batches, host-envelope PUTs), on connection errors and 5xx answers,
//     with backoff, honouring ctx; a 4xx is never retried.
//   - Every error names the server URL and, where there is one, the fix.
package client
