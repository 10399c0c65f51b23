package fsmeta

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/costor/costor/repo/tree"
)

// xattrSource lists and reads the extended attributes of one object, by
// path (not following a final symlink) or by descriptor.
type xattrSource struct {
	path string
	fd   int
}

func pathXattrs(path string) xattrSource { return xattrSource{path: path, fd: -1} }
func fdXattrs(fd int) xattrSource        { return xattrSource{fd: fd} }

func (s xattrSource) list(buf []byte) (int, error) {
	if s.fd >= 0 {
		return unix.Flistxattr(s.fd, buf)
	}
	return unix.Llistxattr(s.path, buf)
}

func (s xattrSource) get(name string, buf []byte) (int, error) {
	if s.fd >= 0 {
		return unix.Fgetxattr(s.fd, name, buf)
	}
	return unix.Lgetxattr(s.path, name, buf)
}

// xattrBufs recycles scratch buffers: Lstat runs once per file of the tree,
// and almost every file has no xattrs, so the common path should not
// allocate.
var xattrBufs = sync.Pool{New: func() any {
	b := make([]byte, 1024)
	return &b
}}

// readXattrs returns every attribute the caller may read (trusted.* only as
// root), sorted by name. A filesystem without xattr support yields none.
func readXattrs(s xattrSource) ([]tree.Xattr, error) {
	bp := xattrBufs.Get().(*[]byte)
	defer xattrBufs.Put(bp)
	n, err := fill(bp, s.list)
	if err != nil {
		if noXattrs(err) {
			return nil, nil
		}
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	names := string((*bp)[:n]) // one copy; the names below are substrings of it
	var xattrs []tree.Xattr
	for len(names) > 0 {
		var name string
		name, names, _ = strings.Cut(names, "\x00")
		if name == "" {
			continue
		}
		vn, err := fill(bp, func(buf []byte) (int, error) { return s.get(name, buf) })
		if err != nil {
			if errors.Is(err, unix.ENODATA) || noXattrs(err) {
				continue // removed since the list was taken
			}
			return nil, err
		}
		xattrs = append(xattrs, tree.Xattr{Name: name, Value: slices.Clone((*bp)[:vn])})
	}
	slices.SortFunc(xattrs, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return xattrs, nil
}

// fill calls op with *bp, growing the buffer on ERANGE (the attribute grew
// between a size query and the read) until the result fits.
func fill(bp *[]byte, op func([]byte) (int, error)) (int, error) {
	for {
		n, err := op(*bp)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return 0, err
		}
		size, err := op(nil) // a nil buffer asks for the current size
		if err != nil {
			return 0, err
		}
		if size <= len(*bp) {
			size = 2 * len(*bp)
		}
		*bp = make([]byte, size)
	}
}

// noXattrs reports errors meaning "this filesystem or object has no xattrs".
func noXattrs(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}
