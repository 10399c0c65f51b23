// Package agent is the backup and restore engine: walk → reuse from the
// parent → read → chunk → compress + seal → hash → store missing blobs →
// snapshot record; and the way back, tree → files on disk.
//
// It reaches a repository only through the Repository interface declared
// here, so the local repository and (later) a server client are the same
// to it. Encryption happens here, on the machine being backed up: whatever
// sits behind the interface only ever sees sealed blobs.
//
// Concurrency: a walker goroutine lists directories, with up to one more
// lister per CPU taking subdirectories beside it (a no-change backup is all
// lstat and parent lookups), and hands files to a pool of file workers
// (read + chunk; a file below the chunker's minimum is sealed right there);
// large files' chunks go to a pool of seal workers (key, compress, seal,
// hash), so both cores stay busy even on a single large file. A directory's
// tree is sealed by a goroutine that waits for its children, so the walker
// never stalls on a slow file; a directory that encodes to the bytes of its
// tree in the parent snapshot names that tree instead of sealing it again.
// Channels are small, so memory stays bounded by a few chunks per worker.
package agent
