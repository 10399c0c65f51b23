//go:build linux

package fusefs

import (
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// typeBits maps a node type to the S_IFMT bits of st_mode.
func typeBits(t tree.NodeType) uint32 {
	switch t {
	case tree.Dir:
		return syscall.S_IFDIR
	case tree.Symlink:
		return syscall.S_IFLNK
	case tree.Fifo:
		return syscall.S_IFIFO
	case tree.CharDev:
		return syscall.S_IFCHR
	case tree.BlockDev:
		return syscall.S_IFBLK
	case tree.Socket:
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}

// fillAttr sets a to the attributes n recorded, under inode number ino.
func fillAttr(a *fuse.Attr, n *tree.Node, ino uint64) {
	a.Ino = ino
	a.Mode = typeBits(n.Type) | n.Mode&0o7777
	a.Size = n.Size
	if n.Type == tree.Symlink {
		a.Size = uint64(len(n.LinkTarget))
	}
	a.Blksize = 4096
	a.Blocks = (a.Size + 511) / 512
	a.Nlink = uint32(min(max(n.Links, 1), 1<<32-1))
	a.Uid, a.Gid = n.UID, n.GID
	a.Atime, a.Atimensec = splitNanos(n.ATime)
	a.Mtime, a.Mtimensec = splitNanos(n.MTime)
	a.Ctime, a.Ctimensec = splitNanos(n.CTime)
	a.Rdev = 0
	if n.Type == tree.CharDev || n.Type == tree.BlockDev {
		a.Rdev = encodeDev(n.Rdev)
	}
}

// splitNanos turns nanoseconds since the epoch into the seconds and
// nanoseconds of a FUSE attribute. The kernel reads the seconds as signed,
// so times before 1970 survive the two's complement.
func splitNanos(ns int64) (uint64, uint32) {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	return uint64(sec), uint32(nsec)
}

// encodeDev converts st_rdev as stat(2) reports it (glibc's encoding) to the
// 32-bit "new" encoding the FUSE protocol carries (the kernel's
// new_encode_dev: 12 bits of major, 20 of minor).
func encodeDev(rdev uint64) uint32 {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// dirAttr sets a to a synthetic read-only directory owned by the mount's
// owner.
func (f *filesystem) dirAttr(a *fuse.Attr, ino uint64, mtime time.Time) {
	n := tree.Node{Type: tree.Dir, Mode: 0o555, UID: f.uid, GID: f.gid, Links: 1}
	if mtime.IsZero() {
		mtime = f.started
	}
	n.MTime = mtime.UnixNano()
	n.ATime, n.CTime = n.MTime, n.MTime
	fillAttr(a, &n, ino)
}

// getxattr implements NodeGetxattrer over recorded attributes.
func getxattr(xattrs []tree.Xattr, name string, dest []byte) (uint32, syscall.Errno) {
	i, ok := slices.BinarySearchFunc(xattrs, name, func(x tree.Xattr, name string) int {
		return strings.Compare(x.Name, name)
	})
	if !ok {
		// A Source need not sort; fall back to a scan.
		i = slices.IndexFunc(xattrs, func(x tree.Xattr) bool { return x.Name == name })
		if i < 0 {
			return 0, syscall.ENODATA
		}
	}
	v := xattrs[i].Value
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// listxattr implements NodeListxattrer: NUL-terminated names.
func listxattr(xattrs []tree.Xattr, dest []byte) (uint32, syscall.Errno) {
	size := 0
	for _, x := range xattrs {
		size += len(x.Name) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	n := 0
	for _, x := range xattrs {
		n += copy(dest[n:], x.Name)
		dest[n] = 0
		n++
	}
	return uint32(n), 0
}

// Inode numbers are FNV-1a hashes over what identifies a node, each kind
// under its own tag so that kinds never collide by construction.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	// A terminator keeps ("ab", "c") apart from ("a", "bc").
	h ^= 0xff
	h *= fnvPrime
	return h
}

func hashUint(h, x uint64) uint64 {
	for range 8 {
		h ^= x & 0xff
		h *= fnvPrime
		x >>= 8
	}
	return h
}

func hashID(h uint64, i id.ID) uint64 {
	for _, b := range i {
		h ^= uint64(b)
		h *= fnvPrime
	}
	return h
}

// ino makes h a usable inode number: 0 means "allocate one", 1 is the root
// and ^0 is reserved by go-fuse.
func ino(h uint64) uint64 {
	switch h {
	case 0, 1, ^uint64(0):
		return h ^ 0x5bd1e995_00000002
	}
	return h
}

func tagged(tag string) uint64 { return hashString(fnvOffset, tag) }

// childIno is the inode number of node n listed in the directory with inode
// number parent in snapshot snap. A file with other hard links in the
// snapshot is numbered by its source device and inode, so all its names
// share one inode, as they did on the source.
func childIno(snap id.ID, parent uint64, n *tree.Node) uint64 {
	if n.Type == tree.File && n.Links > 1 && n.Inode != 0 {
		return ino(hashUint(hashUint(hashID(tagged("hardlink"), snap), n.Device), n.Inode))
	}
	return ino(hashString(hashUint(tagged("child"), parent), n.Name))
}
