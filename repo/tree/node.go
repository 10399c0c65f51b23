package tree

import "github.com/costor/costor/repo/id"

// NodeType is the kind of filesystem object a Node describes.
// Values are part of the on-disk format.
type NodeType uint8

// Node types.
const (
	File     NodeType = 1
	Dir      NodeType = 2
	Symlink  NodeType = 3
	Fifo     NodeType = 4
	CharDev  NodeType = 5
	BlockDev NodeType = 6
	Socket   NodeType = 7
)

func (t NodeType) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case Fifo:
		return "fifo"
	case CharDev:
		return "chardev"
	case BlockDev:
		return "blockdev"
	case Socket:
		return "socket"
	}
	return "invalid"
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Chunk is one content-defined piece of a file. Key is the convergent key
// the chunk was sealed under: whoever can read this tree can read the file,
// and nobody else can.
type Chunk struct {
	ID     id.ID    // blob ID (hash of the sealed bytes)
	Key    [32]byte // convergent chunk key
	Length uint32   // plaintext length
}

// Node is one directory entry with everything needed to recreate it.
// Name and LinkTarget are arbitrary byte strings (not necessarily UTF-8).
type Node struct {
	Name       string
	Type       NodeType
	Mode       uint32 // permission bits plus setuid (04000), setgid (02000), sticky (01000)
	UID, GID   uint32
	User       string // owner name at backup time, "" if unknown
	Group      string
	Size       uint64 // file size in bytes (apparent, including holes)
	MTime      int64  // nanoseconds since the Unix epoch
	ATime      int64
	CTime      int64
	Inode      uint64 // with Device, identifies hard links and unchanged files
	Device     uint64 // st_dev of the containing filesystem
	Links      uint64 // st_nlink
	Rdev       uint64 // device number, for CharDev and BlockDev
	LinkTarget string // for Symlink
	Xattrs     []Xattr
	Subtree    id.ID   // for Dir: the tree blob listing its children
	Content    []Chunk // for File, in order
}

// Tree is the listing of one directory, Nodes sorted by Name (bytewise),
// names unique.
type Tree struct {
	Nodes []Node
}
