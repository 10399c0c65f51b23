package cli

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

func dumpCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "dump",
		Usage:     "a file's bytes to stdout (a directory as a tar stream)",
		ArgsUsage: "SNAP:PATH",
		Description: "Writes the content of file PATH of snapshot SNAP to stdout, streamed chunk by chunk.\n" +
			"A directory (PATH / or none: the whole snapshot) becomes a PAX tar stream of its contents,\n" +
			"named relative to it, with modes, owners, nanosecond mtimes, symlinks, hard links,\n" +
			"devices, FIFOs and extended attributes (SCHILY.xattr.*); sockets are left out.\n" +
			"A reader that stops early (`| head -c 10`) ends the dump quietly with exit status 0.",
		Flags: []ucli.Flag{hostFlag()},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("dump needs one argument, SNAP:PATH (got %d)", c.NArg())
			}
			// A closed pipe must come back as EPIPE from write, not kill the
			// process with SIGPIPE, so that it ends as a success.
			sigpipe := make(chan os.Signal, 1)
			signal.Notify(sigpipe, syscall.SIGPIPE)
			defer signal.Stop(sigpipe)
			err := dump(c, c.Args().First())
			if errors.Is(err, syscall.EPIPE) {
				return nil
			}
			return err
		},
	}
}

func dump(c *ucli.Context, arg string) error {
	e := newEnv(c)
	ctx := c.Context
	r, err := e.openRepo(ctx, "dump")
	if err != nil {
		return err
	}
	defer r.Close()
	spec, p := splitSnapPath(arg)
	s, err := findSnapshot(ctx, c, r, spec)
	if err != nil {
		return err
	}
	n, err := agent.Resolve(ctx, r, s.Key, s.Details.Tree, p)
	if err != nil {
		return err
	}
	p = path.Clean("/" + p)
	out := bufio.NewWriterSize(e.stdout, outputBufferSize)
	switch n.Type {
	case tree.File:
		err = dumpFile(ctx, r, n, p, out)
	case tree.Dir:
		if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return fmt.Errorf("%s is a directory: dump writes it as a tar stream, which a terminal cannot show; "+
				"redirect it (> dir.tar), pipe it into `tar -x`, or list it with `costor ls %s`", displayPath(p), arg)
		}
		err = dumpTar(ctx, r, s.Key, n.Subtree, out, func(msg string) { e.info("%s", msg) })
	case tree.Symlink:
		return fmt.Errorf("%s is a symlink to %s: dump writes files and directories; see it with `costor ls %s`",
			displayPath(p), displayPath(n.LinkTarget), arg)
	default:
		return fmt.Errorf("%s is a %s, which has no content to dump; see it with `costor ls %s`", displayPath(p), n.Type, arg)
	}
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write %s: %w", displayPath(p), ferr)
	}
	return err
}

// dumpFile writes a file's content, one chunk in memory at a time.
func dumpFile(ctx context.Context, r *repo.Repository, n *tree.Node, p string, w io.Writer) error {
	if err := checkContentSize(n, p); err != nil {
		return err
	}
	if err := agent.WriteContent(ctx, r, n.Content, w); err != nil {
		return fmt.Errorf("dump %s: %w", displayPath(p), err)
	}
	return nil
}

// checkContentSize rejects a node whose chunks do not add up to its size
// before anything is written: a tar header promises the size.
func checkContentSize(n *tree.Node, p string) error {
	var total uint64
	for _, c := range n.Content {
		total += uint64(c.Length)
	}
	if total != n.Size {
		return fmt.Errorf("%s: the snapshot lists %d bytes of content for a file of %d bytes (damaged tree? run `costor check`)",
			displayPath(p), total, n.Size)
	}
	return nil
}

// dumpTar writes the contents of a directory tree as a PAX tar stream.
func dumpTar(ctx context.Context, r *repo.Repository, hk *repo.HostKey, root id.ID, w io.Writer, warn func(string)) error {
	td := &tarDumper{r: r, hk: hk, tw: tar.NewWriter(w), links: map[[2]uint64]string{}, warn: warn}
	if err := td.dir(ctx, root, ""); err != nil {
		return err
	}
	if err := td.tw.Close(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}

type tarDumper struct {
	r     *repo.Repository
	hk    *repo.HostKey
	tw    *tar.Writer
	links map[[2]uint64]string // (device, inode) → name of the first entry
	buf   []byte
	warn  func(string)
}

func (td *tarDumper) dir(ctx context.Context, treeID id.ID, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := td.r.LoadTree(ctx, td.hk, treeID)
	if err != nil {
		return fmt.Errorf("dump %s: %w", displayPath(rel), err)
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		// A hostile tree must not put "../x" into an archive that is
		// then extracted.
		if err := tree.ValidateName(n.Name); err != nil {
			return fmt.Errorf("dump %s: %w", displayPath(rel), err)
		}
		name := n.Name
		if rel != "" {
			name = rel + "/" + n.Name
		}
		if err := td.entry(ctx, n, name); err != nil {
			return err
		}
	}
	return nil
}

func (td *tarDumper) entry(ctx context.Context, n *tree.Node, name string) error {
	hdr := &tar.Header{
		Format: tar.FormatPAX,
		Name:   name,
		Mode:   int64(n.Mode & 0o7777),
		Uid:    int(n.UID), Gid: int(n.GID),
		Uname: n.User, Gname: n.Group,
		ModTime: time.Unix(0, n.MTime),
	}
	for _, x := range n.Xattrs {
		if x.Name == "" || strings.ContainsAny(x.Name, "=\x00") {
			td.warn(fmt.Sprintf("%s: extended attribute %q cannot be stored in tar, left out", displayPath(name), x.Name))
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	switch n.Type {
	case tree.Dir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := td.header(hdr); err != nil {
			return err
		}
		return td.dir(ctx, n.Subtree, name)
	case tree.File:
		if n.Links > 1 {
			key := [2]uint64{n.Device, n.Inode}
			if first, ok := td.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return td.header(hdr)
			}
			td.links[key] = name
		}
		if err := checkContentSize(n, name); err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(n.Size)
		if err := td.header(hdr); err != nil {
			return err
		}
		return td.content(ctx, n, name)
	case tree.Symlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, n.LinkTarget
	case tree.Fifo:
		hdr.Typeflag = tar.TypeFifo
	case tree.CharDev, tree.BlockDev:
		hdr.Typeflag = tar.TypeChar
		if n.Type == tree.BlockDev {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = devMajor(n.Rdev), devMinor(n.Rdev)
	default:
		td.warn(fmt.Sprintf("%s: a %s cannot be stored in tar, left out", displayPath(name), n.Type))
		return nil
	}
	return td.header(hdr)
}

func (td *tarDumper) header(hdr *tar.Header) error {
	if err := td.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write tar entry %s: %w", displayPath(hdr.Name), err)
	}
	return nil
}

func (td *tarDumper) content(ctx context.Context, n *tree.Node, name string) error {
	for _, c := range n.Content {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		td.buf, err = td.r.ReadChunk(ctx, c, td.buf[:0])
		if err != nil {
			return fmt.Errorf("read %s: %w", displayPath(name), err)
		}
		if _, err := td.tw.Write(td.buf); err != nil {
			return fmt.Errorf("write tar entry %s: %w", displayPath(name), err)
		}
	}
	return nil
}

// devMajor and devMinor split a device number in Linux's encoding (the
// platform costor's device nodes come from).
func devMajor(dev uint64) int64 { return int64((dev>>8)&0xfff | (dev>>32)&0xfffff000) }
func devMinor(dev uint64) int64 { return int64(dev&0xff | (dev>>12)&0xffffff00) }
