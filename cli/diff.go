package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

func diffCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "diff",
		Usage:     "added / removed / modified paths",
		ArgsUsage: "SNAP1[:PATH] SNAP2[:PATH]",
		Description: "Compares two snapshots (or one directory in each) and prints one line per changed path:\n" +
			"  + PATH   added              - PATH   removed\n" +
			"  M PATH   content changed (file content or size, symlink target, device number)\n" +
			"  T PATH   type changed (a file became a directory…)\n" +
			"  U PATH   metadata only: mode, owner (uid/gid), mtime, extended attributes\n" +
			"Every path inside an added or removed directory is listed too, so that you see what\n" +
			"is gone. A directory's mtime is not compared: it moves whenever an entry is added or\n" +
			"removed, which the listing already shows. Paths come in tree order: each directory's\n" +
			"entries sorted by name, a directory followed by its contents. Unchanged subtrees are\n" +
			"skipped without being read. A summary goes to stderr unless --quiet. With the\n" +
			"global --json: an array of {path, change} with change one of added, removed,\n" +
			"modified, metadata, type.",
		Flags: []ucli.Flag{hostFlag()},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 2 {
				return fmt.Errorf("diff needs two arguments, SNAP1 and SNAP2 (got %d)", c.NArg())
			}
			e := newEnv(c)
			ctx := c.Context
			r, err := e.openRepo(ctx, "diff")
			if err != nil {
				return err
			}
			defer r.Close()
			var sides [2]diffSide
			for i, arg := range c.Args().Slice() {
				if sides[i], err = openDiffSide(ctx, c, r, arg); err != nil {
					return err
				}
			}
			out := bufio.NewWriterSize(e.stdout, outputBufferSize)
			var cw changeWriter = &plainChangeWriter{w: out}
			if jsonOutput(c) {
				cw = &jsonChangeWriter{jsonEntryWriter{w: out}}
			}
			d := &differ{r: r, hkA: sides[0].key, hkB: sides[1].key, out: cw}
			if err := cw.begin(); err != nil {
				return err
			}
			err = d.top(ctx, sides[0].path, sides[0].node, sides[1].node)
			if err == nil {
				err = cw.end()
			}
			if ferr := out.Flush(); err == nil && ferr != nil {
				err = fmt.Errorf("write diff: %w", ferr)
			}
			if err != nil {
				return err
			}
			e.info("%d added, %d removed, %d modified, %d type changed, %d metadata only",
				d.counts[changeAdded], d.counts[changeRemoved], d.counts[changeModified],
				d.counts[changeType], d.counts[changeMetadata])
			return nil
		},
	}
}

type diffSide struct {
	key  *repo.HostKey
	node *tree.Node
	path string
}

func openDiffSide(ctx context.Context, c *ucli.Context, r *repo.Repository, arg string) (diffSide, error) {
	spec, p := splitSnapPath(arg)
	s, err := findSnapshot(ctx, c, r, spec)
	if err != nil {
		return diffSide{}, err
	}
	n, err := agent.Resolve(ctx, r, s.Key, s.Details.Tree, p)
	if err != nil {
		return diffSide{}, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	return diffSide{key: s.Key, node: n, path: path.Clean("/" + p)}, nil
}

// changeKind is one kind of difference; its value is the plain-output
// marker.
type changeKind int

const (
	changeAdded changeKind = iota
	changeRemoved
	changeModified
	changeType
	changeMetadata
	numChangeKinds
)

var (
	changeMarkers = [numChangeKinds]byte{'+', '-', 'M', 'T', 'U'}
	changeNames   = [numChangeKinds]string{"added", "removed", "modified", "type", "metadata"}
)

// differ walks two snapshot trees together. Trees with equal IDs hold equal
// contents (Merkle), so they are skipped unread: a diff costs what changed,
// not what exists.
type differ struct {
	r        treeLoader
	hkA, hkB *repo.HostKey
	out      changeWriter
	counts   [numChangeKinds]uint64
}

func (d *differ) emit(kind changeKind, p string) error {
	d.counts[kind]++
	return d.out.change(kind, p)
}

// treeLoader is what diff needs of a repository.
type treeLoader interface {
	LoadTree(ctx context.Context, hk *repo.HostKey, treeID id.ID) (*tree.Tree, error)
}

// top compares the two nodes the arguments resolved to.
func (d *differ) top(ctx context.Context, p string, a, b *tree.Node) error {
	if a.Type == tree.Dir && b.Type == tree.Dir {
		return d.trees(ctx, p, a.Subtree, b.Subtree)
	}
	return d.pair(ctx, p, a, b)
}

func (d *differ) trees(ctx context.Context, dir string, a, b id.ID) error {
	if a == b {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ta, err := d.r.LoadTree(ctx, d.hkA, a)
	if err != nil {
		return fmt.Errorf("diff %s: %w", displayPath(dir), err)
	}
	tb, err := d.r.LoadTree(ctx, d.hkB, b)
	if err != nil {
		return fmt.Errorf("diff %s: %w", displayPath(dir), err)
	}
	na, nb := ta.Nodes, tb.Nodes
	for i, j := 0, 0; i < len(na) || j < len(nb); {
		switch {
		case j == len(nb) || (i < len(na) && na[i].Name < nb[j].Name):
			err = d.whole(ctx, changeRemoved, d.hkA, path.Join(dir, na[i].Name), &na[i])
			i++
		case i == len(na) || nb[j].Name < na[i].Name:
			err = d.whole(ctx, changeAdded, d.hkB, path.Join(dir, nb[j].Name), &nb[j])
			j++
		default:
			err = d.pair(ctx, path.Join(dir, na[i].Name), &na[i], &nb[j])
			i++
			j++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// pair compares two nodes at the same path.
func (d *differ) pair(ctx context.Context, p string, a, b *tree.Node) error {
	if a.Type != b.Type {
		if err := d.emit(changeType, p); err != nil {
			return err
		}
		if a.Type == tree.Dir {
			if err := d.below(ctx, changeRemoved, d.hkA, p, a.Subtree); err != nil {
				return err
			}
		}
		if b.Type == tree.Dir {
			return d.below(ctx, changeAdded, d.hkB, p, b.Subtree)
		}
		return nil
	}
	switch {
	case contentDiffers(a, b):
		if err := d.emit(changeModified, p); err != nil {
			return err
		}
	case metadataDiffers(a, b):
		if err := d.emit(changeMetadata, p); err != nil {
			return err
		}
	}
	if a.Type == tree.Dir {
		return d.trees(ctx, p, a.Subtree, b.Subtree)
	}
	return nil
}

// whole reports n and, if it is a directory, everything below it.
func (d *differ) whole(ctx context.Context, kind changeKind, hk *repo.HostKey, p string, n *tree.Node) error {
	if err := d.emit(kind, p); err != nil {
		return err
	}
	if n.Type != tree.Dir {
		return nil
	}
	return d.below(ctx, kind, hk, p, n.Subtree)
}

func (d *differ) below(ctx context.Context, kind changeKind, hk *repo.HostKey, dir string, treeID id.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := d.r.LoadTree(ctx, hk, treeID)
	if err != nil {
		return fmt.Errorf("diff %s: %w", displayPath(dir), err)
	}
	for i := range t.Nodes {
		if err := d.whole(ctx, kind, hk, path.Join(dir, t.Nodes[i].Name), &t.Nodes[i]); err != nil {
			return err
		}
	}
	return nil
}

// contentDiffers compares what a node holds, for nodes of one type. Chunk
// IDs are convergent, so equal IDs mean equal bytes.
func contentDiffers(a, b *tree.Node) bool {
	switch a.Type {
	case tree.File:
		if a.Size != b.Size || len(a.Content) != len(b.Content) {
			return true
		}
		for i := range a.Content {
			if a.Content[i].ID != b.Content[i].ID {
				return true
			}
		}
	case tree.Symlink:
		return a.LinkTarget != b.LinkTarget
	case tree.CharDev, tree.BlockDev:
		return a.Rdev != b.Rdev
	}
	return false
}

// metadataDiffers compares what a user sets on a node. Times that change
// by themselves (atime, ctime) and identity (inode, device, link count) are
// not compared, nor a directory's mtime (see the command's description).
func metadataDiffers(a, b *tree.Node) bool {
	if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID {
		return true
	}
	if a.Type != tree.Dir && a.MTime != b.MTime {
		return true
	}
	if len(a.Xattrs) != len(b.Xattrs) {
		return true
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || !bytes.Equal(a.Xattrs[i].Value, b.Xattrs[i].Value) {
			return true
		}
	}
	return false
}

// changeWriter formats diff output one change at a time.
type changeWriter interface {
	begin() error
	change(kind changeKind, p string) error
	end() error
}

type plainChangeWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (pw *plainChangeWriter) begin() error { return nil }
func (pw *plainChangeWriter) end() error   { return nil }

func (pw *plainChangeWriter) change(kind changeKind, p string) error {
	b := append(pw.buf[:0], changeMarkers[kind], ' ')
	b = append(b, displayPath(p)...)
	b = append(b, '\n')
	pw.buf = b
	_, err := pw.w.Write(b)
	return err
}

// diffEntry is one element of `diff --json`. Field names are a contract.
type diffEntry struct {
	Path       string `json:"path"`
	PathBase64 string `json:"path_base64,omitempty"` // raw bytes of a non-UTF-8 path
	Change     string `json:"change"`
}

type jsonChangeWriter struct{ jsonEntryWriter }

func (jw *jsonChangeWriter) change(kind changeKind, p string) error {
	return jw.element(&diffEntry{Path: p, PathBase64: base64IfNotUTF8(p), Change: changeNames[kind]})
}
