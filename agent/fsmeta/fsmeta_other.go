//go:build !linux

package fsmeta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/costor/costor/repo/tree"
)

// This file is the portable fallback for every platform but Linux (macOS
// included, for now): it sees only what os.FileInfo offers. Owner, inode,
// device, link count, ctime, atime and xattrs are not read (Links is 1,
// ATime and CTime equal MTime, so Same falls back to size + mtime), special
// files cannot be created, and holes are not reported.

// Lstat describes the object at path, not following a final symlink.
func Lstat(path, name string) (tree.Node, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return tree.Node{}, err
	}
	n := nodeFromFileInfo(fi, name)
	if n.Type == tree.Symlink {
		if n.LinkTarget, err = os.Readlink(path); err != nil {
			return tree.Node{}, err
		}
	}
	return n, nil
}

// LstatAt describes the entry name of the open directory dir, whose path
// is path; here it is Lstat of path.
func LstatAt(_ *os.File, path, name string) (tree.Node, error) {
	return Lstat(path, name)
}

// Fstat describes the already-open file f.
func Fstat(f *os.File, name string) (tree.Node, error) {
	fi, err := f.Stat()
	if err != nil {
		return tree.Node{}, fmt.Errorf("fstat %q: %w", f.Name(), err)
	}
	return nodeFromFileInfo(fi, name), nil
}

// DeviceOf always returns 0 here: without device numbers every path looks
// like one filesystem, so --one-file-system does not cut anything.
func DeviceOf(path string) (uint64, error) {
	if _, err := os.Lstat(path); err != nil {
		return 0, err
	}
	return 0, nil
}

func nodeFromFileInfo(fi fs.FileInfo, name string) tree.Node {
	m := fi.Mode()
	mtime := fi.ModTime().UnixNano()
	n := tree.Node{
		Name:  name,
		Mode:  uint32(m.Perm()),
		MTime: mtime,
		ATime: mtime,
		CTime: mtime,
		Links: 1,
	}
	if m&fs.ModeSetuid != 0 {
		n.Mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n.Mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n.Mode |= 0o1000
	}
	switch {
	case m.IsDir():
		n.Type = tree.Dir
	case m&fs.ModeSymlink != 0:
		n.Type = tree.Symlink
	case m&fs.ModeNamedPipe != 0:
		n.Type = tree.Fifo
	case m&fs.ModeSocket != 0:
		n.Type = tree.Socket
	case m&fs.ModeCharDevice != 0:
		n.Type = tree.CharDev
	case m&fs.ModeDevice != 0:
		n.Type = tree.BlockDev
	default:
		n.Type = tree.File
		n.Size = uint64(fi.Size())
	}
	return n
}

// CreateSpecial cannot create FIFOs or device nodes here; sockets are
// skipped (nil) as on Linux.
func CreateSpecial(path string, n *tree.Node) error {
	switch n.Type {
	case tree.Socket:
		return nil
	case tree.Fifo, tree.CharDev, tree.BlockDev:
		return fmt.Errorf("create %s %q: %w on this platform", n.Type, path, errors.ErrUnsupported)
	}
	return fmt.Errorf("create %q: %w: %s", path, errNotSpecial, n.Type)
}

// Apply sets owner (if opts.Owner and the platform allows), mode and
// mtime/atime. Symlinks keep their own mode and times here, because package
// os only offers calls that follow them. Directories must be applied after
// their children are written.
func Apply(path string, n *tree.Node, opts ApplyOptions) (warnings []string, err error) {
	if n.Type == tree.Socket {
		return nil, nil
	}
	if opts.Owner {
		if err := os.Lchown(path, int(n.UID), int(n.GID)); err != nil {
			warnings = append(warnings, fmt.Sprintf("owner of %q not restored: %v", path, err))
		}
	}
	if len(n.Xattrs) > 0 {
		warnings = append(warnings, fmt.Sprintf("xattrs of %q not restored: unsupported on this platform", path))
	}
	if n.Type == tree.Symlink {
		return warnings, nil
	}
	mode := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := os.Chmod(path, mode); err != nil {
		return warnings, fmt.Errorf("chmod %q: %w", path, err)
	}
	if err := os.Chtimes(path, time.Unix(0, n.ATime), time.Unix(0, n.MTime)); err != nil {
		return warnings, fmt.Errorf("set times of %q: %w", path, err)
	}
	return warnings, nil
}

// ApplyFile is Apply for a regular file the caller holds open; here it
// applies through path, after the same checks.
func ApplyFile(f *os.File, path string, n *tree.Node, opts ApplyOptions) (warnings []string, err error) {
	return Apply(path, n, opts)
}

// HasHoles cannot tell here and reports false.
func HasHoles(f *os.File) (bool, error) { return false, nil }
