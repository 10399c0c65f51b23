package fsmeta

import (
	"errors"

	"github.com/costor/costor/repo/tree"
)

// ApplyOptions controls what Apply restores beyond mode and times.
type ApplyOptions struct {
	// Owner tries to restore UID and GID. Without root only files whose
	// UID is ours (and GID one of our groups) can be given away; other
	// owners are skipped with a warning.
	Owner bool
}

// Same reports whether two stats of one file show it unchanged in between:
// same size, mtime, ctime and inode. The device is deliberately not
// compared: a filesystem snapshot mounts the same data under a new st_dev
// each time, and the engine also uses Same against the parent snapshot.
func Same(a, b *tree.Node) bool {
	return a.Size == b.Size && a.MTime == b.MTime && a.CTime == b.CTime && a.Inode == b.Inode
}

// errNotSpecial is returned by CreateSpecial for a type it does not create
// (regular files, directories and symlinks are the engine's).
var errNotSpecial = errors.New("not a special file type")
