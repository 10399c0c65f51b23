package tree

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every error that reports a malformed tree or an
// unacceptable node, from Encode, Decode, DecodeEach and ValidateName.
var ErrInvalid = errors.New("invalid tree")

// invalidError names the offending entry so that a user can find it; the
// fix for a bad tree is usually "find who wrote it", so say where.
type invalidError struct {
	entry  int    // index of the node, or -1 for the tree as a whole
	name   string // the node's name if it was read, else ""
	reason string
}

func (e *invalidError) Error() string {
	switch {
	case e.entry < 0:
		return "tree: " + e.reason
	case e.name == "":
		return fmt.Sprintf("tree entry %d: %s", e.entry, e.reason)
	}
	return fmt.Sprintf("tree entry %d (%s): %s", e.entry, quote(e.name), e.reason)
}

func (e *invalidError) Unwrap() error { return ErrInvalid }

// quote keeps error messages readable for hostile names of any length.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// modeBits are the only bits Node.Mode may hold: the type lives in
// Node.Type, so a stray S_IFMT bit is a caller bug worth reporting.
const modeBits = 0o7777

// ValidateName reports whether name can be a directory entry in a tree:
// non-empty, not "." or "..", without '/' or NUL. Any other bytes,
// including newlines and invalid UTF-8, are valid.
func ValidateName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return &invalidError{entry: -1, reason: fmt.Sprintf("name %s: %s", quote(name), reason)}
	}
	return nil
}

func nameProblem(name string) string {
	switch {
	case name == "":
		return "invalid name: empty"
	case name == "." || name == "..":
		return `invalid name: "." and ".." are reserved`
	case strings.IndexByte(name, '/') >= 0:
		return "invalid name: contains '/'"
	case strings.IndexByte(name, 0) >= 0:
		return "invalid name: contains a NUL byte"
	}
	return ""
}

// nodeProblem checks everything about one node that does not depend on its
// neighbours. Encode and Decode share it so they accept exactly the same
// trees. It returns "" for a valid node.
func nodeProblem(n *Node) string {
	if reason := nameProblem(n.Name); reason != "" {
		return reason
	}
	if n.Type < File || n.Type > Socket {
		return fmt.Sprintf("unknown type %d", n.Type)
	}
	if n.Mode&^modeBits != 0 {
		return fmt.Sprintf("mode %#o has bits outside %#o (the file type belongs in Type)", n.Mode, modeBits)
	}
	if reason := xattrProblem(n.Xattrs); reason != "" {
		return reason
	}
	isDev := n.Type == CharDev || n.Type == BlockDev
	switch {
	case n.Type == Dir && n.Subtree.IsNull():
		return "directory without a subtree (an empty directory has an empty tree)"
	case n.Type != Dir && !n.Subtree.IsNull():
		return fmt.Sprintf("%s has a subtree", n.Type)
	case n.Type != File && len(n.Content) > 0:
		return fmt.Sprintf("%s has content chunks", n.Type)
	case n.Type != Symlink && n.LinkTarget != "":
		return fmt.Sprintf("%s has a link target", n.Type)
	case !isDev && n.Rdev != 0:
		return fmt.Sprintf("%s has a device number", n.Type)
	}
	if n.Type == File {
		return contentProblem(n.Size, n.Content)
	}
	return ""
}

func xattrProblem(xattrs []Xattr) string {
	for i := range xattrs {
		name := xattrs[i].Name
		switch {
		case name == "":
			return fmt.Sprintf("xattr %d: empty name", i)
		case strings.IndexByte(name, 0) >= 0:
			return fmt.Sprintf("xattr %d (%s): name contains a NUL byte", i, quote(name))
		case i > 0 && name <= xattrs[i-1].Name:
			return fmt.Sprintf("xattr %d (%s): not sorted or duplicate", i, quote(name))
		}
	}
	return ""
}

func contentProblem(size uint64, chunks []Chunk) string {
	var sum, carry uint64
	for i := range chunks {
		if chunks[i].Length == 0 {
			return fmt.Sprintf("chunk %d: zero length", i)
		}
		sum, carry = bits.Add64(sum, uint64(chunks[i].Length), 0)
		if carry != 0 || sum > size {
			break
		}
	}
	if carry != 0 || sum != size {
		return fmt.Sprintf("size %d does not match its chunks", size)
	}
	return ""
}

// orderProblem checks that name strictly follows prev (bytewise).
func orderProblem(prev, name string) string {
	switch {
	case name == prev:
		return "duplicate name"
	case name < prev:
		return fmt.Sprintf("not sorted: follows %s", quote(prev))
	}
	return ""
}

// Sort puts the tree into the order Encode requires: nodes by name and each
// node's xattrs by name, both bytewise. It does not remove duplicates.
func (t *Tree) Sort() {
	byName := func(a, b Node) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(t.Nodes, byName) {
		slices.SortFunc(t.Nodes, byName)
	}
	for i := range t.Nodes {
		x := t.Nodes[i].Xattrs
		slices.SortFunc(x, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	}
}

// Find returns the node called name by binary search; t must be sorted.
// The pointer aliases t.Nodes.
func (t *Tree) Find(name string) (*Node, bool) {
	i, ok := t.Index(name)
	if !ok {
		return nil, false
	}
	return &t.Nodes[i], true
}

// Index returns the position in t.Nodes of the node called name by binary
// search; t must be sorted.
func (t *Tree) Index(name string) (int, bool) {
	return slices.BinarySearchFunc(t.Nodes, name, func(n Node, name string) int {
		return strings.Compare(n.Name, name)
	})
}
