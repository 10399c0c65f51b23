package fsmeta

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/costor/costor/repo/tree"
)

// defaultNames is the cache Lstat and Fstat use.
var defaultNames = NewNameCache()

// Lstat describes the object at path, not following a final symlink, as a
// Node without Subtree or Content. name becomes Node.Name.
func Lstat(path, name string) (tree.Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return tree.Node{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return describe(&st, unix.AT_FDCWD, path, path, name)
}

// LstatAt is Lstat of the entry name of the open directory dir, whose path
// is path: one fstatat beside the directory, where Lstat walks every
// component of path again (on a cold cache here 12.8 µs an entry instead
// of 15.6). Extended attributes are still read through path: their calls
// relative to a directory (listxattrat, getxattrat) need Linux 6.13.
func LstatAt(dir *os.File, path, name string) (tree.Node, error) {
	defer runtime.KeepAlive(dir)
	fd := int(dir.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return tree.Node{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return describe(&st, fd, name, path, name)
}

// describe completes the node of st, the object at path (rel from the
// directory fd), with its symlink target and its extended attributes.
func describe(st *unix.Stat_t, fd int, rel, path, name string) (tree.Node, error) {
	n := nodeFromStat(st, name)
	if n.Type == tree.Symlink {
		target, err := readlink(func(buf []byte) (int, error) { return unix.Readlinkat(fd, rel, buf) }, int(st.Size))
		if err != nil {
			return tree.Node{}, &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		n.LinkTarget = target
	}
	xattrs, err := readXattrs(pathXattrs(path))
	if err != nil {
		return tree.Node{}, fmt.Errorf("read xattrs of %q: %w", path, err)
	}
	n.Xattrs = xattrs
	return n, nil
}

// Fstat describes the already-open file f, so that a file being read is
// described from the same descriptor its content comes from.
func Fstat(f *os.File, name string) (tree.Node, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return tree.Node{}, fmt.Errorf("fstat %q: %w", f.Name(), err)
	}
	var n tree.Node
	var opErr error
	ctlErr := rc.Control(func(fdp uintptr) {
		fd := int(fdp)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			opErr = fmt.Errorf("fstat %q: %w", f.Name(), err)
			return
		}
		n = nodeFromStat(&st, name)
		if n.Type == tree.Symlink { // only reachable through an O_PATH|O_NOFOLLOW descriptor
			target, err := readlink(func(buf []byte) (int, error) { return unix.Readlinkat(fd, "", buf) }, int(st.Size))
			if err != nil {
				opErr = fmt.Errorf("readlink %q: %w", f.Name(), err)
				return
			}
			n.LinkTarget = target
		}
		xattrs, err := readXattrs(fdXattrs(fd))
		if err != nil {
			opErr = fmt.Errorf("read xattrs of %q: %w", f.Name(), err)
			return
		}
		n.Xattrs = xattrs
	})
	if ctlErr != nil {
		return tree.Node{}, fmt.Errorf("fstat %q: %w", f.Name(), ctlErr)
	}
	if opErr != nil {
		return tree.Node{}, opErr
	}
	return n, nil
}

// DeviceOf returns st_dev of path (not following a final symlink), for
// --one-file-system.
func DeviceOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return uint64(st.Dev), nil
}

func nodeFromStat(st *unix.Stat_t, name string) tree.Node {
	// The conversions matter: Dev, Nlink and Rdev are narrower on some
	// architectures.
	n := tree.Node{
		Name:   name,
		Type:   typeFromMode(st.Mode),
		Mode:   st.Mode & 0o7777,
		UID:    st.Uid,
		GID:    st.Gid,
		User:   defaultNames.User(st.Uid),
		Group:  defaultNames.Group(st.Gid),
		MTime:  st.Mtim.Nano(),
		ATime:  st.Atim.Nano(),
		CTime:  st.Ctim.Nano(),
		Inode:  st.Ino,
		Device: uint64(st.Dev),
		Links:  uint64(st.Nlink),
	}
	switch n.Type {
	case tree.File:
		n.Size = uint64(st.Size)
	case tree.CharDev, tree.BlockDev:
		n.Rdev = uint64(st.Rdev)
	}
	return n
}

func typeFromMode(mode uint32) tree.NodeType {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return tree.Dir
	case unix.S_IFLNK:
		return tree.Symlink
	case unix.S_IFIFO:
		return tree.Fifo
	case unix.S_IFCHR:
		return tree.CharDev
	case unix.S_IFBLK:
		return tree.BlockDev
	case unix.S_IFSOCK:
		return tree.Socket
	}
	return tree.File
}

// readlink reads a symlink target. size is st_size, the target length on
// most filesystems; some (procfs) report 0, so the buffer grows until the
// target fits with room to spare (a full buffer may mean truncation).
func readlink(read func([]byte) (int, error), size int) (string, error) {
	n := max(size+1, 128)
	for {
		buf := make([]byte, n)
		got, err := read(buf)
		if err != nil {
			return "", err
		}
		if got < len(buf) {
			return string(buf[:got]), nil
		}
		n *= 2
	}
}
