package fsmeta

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/costor/costor/repo/tree"
)

// CreateSpecial creates the FIFO or device node n at path, with permission
// bits from n (Apply sets the exact mode later). Device nodes need root
// (CAP_MKNOD). Sockets are not recreated: a socket file is only meaningful
// to the process that bound it, so CreateSpecial returns nil without
// creating anything and Apply skips them too.
func CreateSpecial(path string, n *tree.Node) error {
	perm := n.Mode & 0o777
	var err error
	switch n.Type {
	case tree.Socket:
		return nil
	case tree.Fifo:
		err = unix.Mkfifo(path, perm)
	case tree.CharDev:
		err = unix.Mknod(path, unix.S_IFCHR|perm, int(n.Rdev))
	case tree.BlockDev:
		err = unix.Mknod(path, unix.S_IFBLK|perm, int(n.Rdev))
	default:
		return fmt.Errorf("create %q: %w: %s", path, errNotSpecial, n.Type)
	}
	if err == nil {
		return nil
	}
	if n.Type != tree.Fifo && errors.Is(err, unix.EPERM) {
		return fmt.Errorf("create %s %q (%d:%d): %w (device nodes need root or CAP_MKNOD)",
			n.Type, path, unix.Major(n.Rdev), unix.Minor(n.Rdev), err)
	}
	return fmt.Errorf("create %s %q: %w", n.Type, path, err)
}

// Apply sets path's owner (if opts.Owner), xattrs, mode and times from n.
// The order is deliberate: chown clears setuid/setgid and file
// capabilities, so it goes first; xattrs go before chmod because setting
// user.* needs write permission and a system.posix_acl_access value
// rewrites the group bits, which chmod then puts back as recorded; times go
// last because every other change touches ctime/mtime. Symlinks get owner,
// xattrs and times but no mode (Linux has none for them).
//
// What could not be restored for lack of privilege or filesystem support
// (an owner, an xattr) is returned as a warning; err is for real failures.
// Directories must be applied after their children are written.
func Apply(path string, n *tree.Node, opts ApplyOptions) (warnings []string, err error) {
	if n.Type == tree.Socket {
		return nil, nil
	}
	if opts.Owner {
		w, err := applyOwner(path, n)
		if err != nil {
			return warnings, err
		}
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	for _, x := range n.Xattrs {
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			if noXattrs(err) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				warnings = append(warnings, fmt.Sprintf("set xattr %s on %q: %v", x.Name, path, err))
				continue
			}
			return warnings, fmt.Errorf("set xattr %s on %q: %w", x.Name, path, err)
		}
	}
	if n.Type != tree.Symlink {
		if err := unix.Chmod(path, n.Mode&0o7777); err != nil {
			return warnings, fmt.Errorf("chmod %q: %w", path, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.ATime), unix.NsecToTimespec(n.MTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return warnings, fmt.Errorf("set times of %q: %w", path, err)
	}
	return warnings, nil
}

// ApplyFile is Apply for a regular file the caller holds open (for
// writing, say): the same steps in the same order, through the descriptor
// instead of the path, so no path is looked up again and nothing the
// restore does not hold (a symlink swapped in) can be touched. path names
// the file in messages (other platforms apply through it).
func ApplyFile(f *os.File, path string, n *tree.Node, opts ApplyOptions) (warnings []string, err error) {
	name := path
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("apply metadata to %q: %w", name, err)
	}
	var opErr error
	if cerr := sc.Control(func(fd uintptr) {
		warnings, opErr = applyFD(int(fd), name, n, opts)
	}); cerr != nil {
		return warnings, fmt.Errorf("apply metadata to %q: %w", name, cerr)
	}
	return warnings, opErr
}

func applyFD(fd int, name string, n *tree.Node, opts ApplyOptions) (warnings []string, err error) {
	if opts.Owner {
		w, err := ownerWith(name, n, func(uid, gid int) error { return unix.Fchown(fd, uid, gid) })
		if err != nil {
			return warnings, err
		}
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	for _, x := range n.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
			if noXattrs(err) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				warnings = append(warnings, fmt.Sprintf("set xattr %s on %q: %v", x.Name, name, err))
				continue
			}
			return warnings, fmt.Errorf("set xattr %s on %q: %w", x.Name, name, err)
		}
	}
	if err := unix.Fchmod(fd, n.Mode&0o7777); err != nil {
		return warnings, fmt.Errorf("chmod %q: %w", name, err)
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(n.ATime), unix.NsecToTimespec(n.MTime)}
	// utimensat(fd, NULL, ts, 0) is futimens(fd, ts).
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return warnings, fmt.Errorf("set times of %q: %w", name, e)
	}
	return warnings, nil
}

// applyOwner changes path's owner when allowed: as root always, otherwise
// only to our own UID and one of our groups (which the kernel permits).
func applyOwner(path string, n *tree.Node) (warning string, err error) {
	return ownerWith(path, n, func(uid, gid int) error { return unix.Lchown(path, uid, gid) })
}

// ownerWith is applyOwner with the chown call given.
func ownerWith(path string, n *tree.Node, chown func(uid, gid int) error) (warning string, err error) {
	uid, gid := int(n.UID), int(n.GID)
	if euid := os.Geteuid(); euid != 0 {
		if uid != euid {
			return fmt.Sprintf("owner of %q not restored: uid %d needs root", path, uid), nil
		}
		uid = -1
		if !inOurGroups(gid) {
			return fmt.Sprintf("group of %q not restored: gid %d is not one of ours", path, gid), nil
		}
	}
	if err := chown(uid, gid); err != nil {
		// EPERM/EINVAL: no privilege after all, or an ID unmapped in this
		// user namespace. Neither is worth failing a restore over.
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			return fmt.Sprintf("owner of %q not restored: %v", path, err), nil
		}
		return "", fmt.Errorf("chown %q: %w", path, err)
	}
	return "", nil
}

var ourGroups = sync.OnceValue(func() []int {
	groups, _ := unix.Getgroups()
	return append(groups, unix.Getegid())
})

func inOurGroups(gid int) bool {
	return slices.Contains(ourGroups(), gid)
}

// HasHoles reports whether f has a hole before its end, via SEEK_HOLE. The
// file position is restored. A filesystem without hole reporting treats the
// whole file as data and so reports false.
func HasHoles(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %q: %w", f.Name(), err)
	}
	if fi.Size() == 0 {
		return false, nil
	}
	pos, err := f.Seek(0, 1)
	if err != nil {
		return false, fmt.Errorf("seek %q: %w", f.Name(), err)
	}
	hole, err := f.Seek(0, unix.SEEK_HOLE)
	if _, rerr := f.Seek(pos, 0); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return false, fmt.Errorf("seek hole in %q: %w", f.Name(), err)
	}
	return hole < fi.Size(), nil
}
