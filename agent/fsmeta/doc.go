// Package fsmeta reads and recreates filesystem metadata: the bridge between
// an on-disk object and a tree.Node.
//
// Reading (Lstat, Fstat) never follows a final symlink and fills every Node
// field except Subtree and Content. Recreating is split: the engine creates
// regular files, directories and symlinks itself, CreateSpecial makes FIFOs
// and device nodes, and Apply then sets owner, xattrs, mode and times, in that
// order (chown clears setuid/setgid and file capabilities; a POSIX ACL xattr
// rewrites the group bits; times go last because every other change bumps
// them). Apply on a directory must run after all of its children are written,
// or writing them would move the directory's mtime again: that ordering is the
// caller's job.
//
// Linux is the real implementation (golang.org/x/sys/unix). Every other
// platform builds against a portable fallback on package os that reports no
// owner, inode, xattrs or device numbers and cannot create special files.
package fsmeta
