// Package fusefs is the read-only FUSE view of a repository behind
// `costor mount`: hosts/<host>/<time>/…, hosts/<host>/latest, ids/<short
// id>/… and history/<host>/…, served by go-fuse from a Source.
//
// Invariants:
//   - Nothing is ever written: the mount is "ro" and every node is a view of
//     immutable repository data, so entries and attributes in snapshot trees
//     are cached by the kernel for long (FOPEN_KEEP_CACHE, 1 h timeouts);
//     only the top-level listings, which grow as snapshots arrive, use short
//     timeouts.
//   - Inode numbers are derived from content identity (snapshot ID, parent
//     inode and name; snapshot ID, device and inode for hard links), so they
//     are the same in every mount of the same repository.
//   - A directory is listed by streaming over its decoded tree; trees and
//     decrypted chunks live in shared byte-bounded LRU caches whose loads
//     are deduplicated and run detached from the request that asked, so an
//     interrupted reader never poisons a load that others wait for.
//   - Read-ahead only follows reads, never lookups or stats: a file read
//     sequentially has its next chunks loaded in the background, and a
//     small file read from its start loads the first chunks of the small
//     files after it in its directory (readers such as cp -r or tar take
//     them in name order), so `ls -l` of a large directory loads no content.
//   - Errors keep their meaning: a cancelled request is EINTR, a missing
//     name ENOENT, and a repository failure EIO, logged once.
package fusefs
