// Package repo is the repository: it ties a Storage (where packs, snapshot
// records and key files live) to the Badger index and to the keys, and
// offers blob, tree and snapshot operations to the agent, the CLI and
// later the server and the mount.
//
// Invariants:
//   - The packs are the truth. A pack is saved (durably, atomically) before
//     the index learns of it; on every open, packs the index lacks are read
//     back in, so a killed process never loses a complete pack and the next
//     backup re-sends nothing that one holds.
//   - A snapshot record is saved only after every blob it references sits in
//     a durable pack.
//   - Only one process opens a repository's index at a time (Badger's
//     directory lock, which the kernel drops when a process dies, so a stale
//     lock can never block a later run); others wait for it.
package repo
