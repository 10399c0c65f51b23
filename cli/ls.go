package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// outputBufferSize is the stdout buffer of the listing and streaming
// commands: big enough that a pipe sees few, large writes.
const outputBufferSize = 1 << 20

func lsCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "ls",
		Usage:     "list a snapshot's contents",
		ArgsUsage: "SNAP[:PATH]",
		Description: "Lists the entries of directory PATH (default /) of snapshot SNAP, or the entry PATH\n" +
			"itself if it is not a directory; with --recursive everything below it, a directory\n" +
			"followed by its contents. One line per entry, like `ls -l`, with the full path in the\n" +
			"snapshot; a path holding a control character (a newline…) is printed Go-quoted so that\n" +
			"one line is always one entry. With the global --json: an array of objects.",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Usage: "list everything below PATH"},
			hostFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("ls needs one argument, SNAP[:PATH] (got %d)", c.NArg())
			}
			e := newEnv(c)
			ctx := c.Context
			r, err := e.openRepo(ctx, "ls")
			if err != nil {
				return err
			}
			defer r.Close()
			snapSpec, p := splitSnapPath(c.Args().First())
			s, err := findSnapshot(ctx, c, r, snapSpec)
			if err != nil {
				return err
			}
			node, err := agent.Resolve(ctx, r, s.Key, s.Details.Tree, p)
			if err != nil {
				return err
			}
			out := bufio.NewWriterSize(e.stdout, outputBufferSize)
			var lw entryWriter = &plainEntryWriter{w: out}
			if jsonOutput(c) {
				lw = &jsonEntryWriter{w: out}
			}
			l := &lister{r: r, hk: s.Key, out: lw, recursive: c.Bool("recursive")}
			if err := lw.begin(); err != nil {
				return err
			}
			err = l.list(ctx, node, path.Clean("/"+p))
			if err == nil {
				err = lw.end()
			}
			if ferr := out.Flush(); err == nil && ferr != nil {
				err = fmt.Errorf("write listing: %w", ferr)
			}
			return err
		},
	}
}

func hostFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "host", Usage: "the host whose newest snapshot `latest` means (default: this machine)"}
}

// jsonOutput reports whether --json was given, before the command or
// after it: a command may carry its own copy of the global flag.
func jsonOutput(c *ucli.Context) bool {
	for _, cc := range c.Lineage() {
		if cc.Bool("json") {
			return true
		}
	}
	return false
}

// lister walks a snapshot tree for ls.
type lister struct {
	r         *repo.Repository
	hk        *repo.HostKey
	out       entryWriter
	recursive bool
}

// list prints the entries of dir node n at snapshot path p, or n itself if
// it is not a directory.
func (l *lister) list(ctx context.Context, n *tree.Node, p string) error {
	if n.Type != tree.Dir {
		return l.out.entry(n, p)
	}
	return l.contents(ctx, n.Subtree, p)
}

func (l *lister) contents(ctx context.Context, treeID id.ID, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := l.r.LoadTree(ctx, l.hk, treeID)
	if err != nil {
		return fmt.Errorf("list %s: %w", displayPath(dir), err)
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := path.Join(dir, n.Name)
		if err := l.out.entry(n, p); err != nil {
			return err
		}
		if l.recursive && n.Type == tree.Dir {
			if err := l.contents(ctx, n.Subtree, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// entryWriter formats ls output one entry at a time, so that a listing of
// any size streams.
type entryWriter interface {
	begin() error
	entry(n *tree.Node, p string) error
	end() error
}

type plainEntryWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (pw *plainEntryWriter) begin() error { return nil }
func (pw *plainEntryWriter) end() error   { return nil }

func (pw *plainEntryWriter) entry(n *tree.Node, p string) error {
	b := pw.buf[:0]
	b = append(b, modeString(n)...)
	b = append(b, ' ')
	b = appendPadded(b, ownerName(n.User, n.UID), 8)
	b = append(b, ' ')
	b = appendPadded(b, ownerName(n.Group, n.GID), 8)
	b = append(b, ' ')
	size := strconv.FormatUint(n.Size, 10)
	for i := len(size); i < 12; i++ {
		b = append(b, ' ')
	}
	b = append(b, size...)
	b = append(b, ' ')
	b = time.Unix(0, n.MTime).AppendFormat(b, "2006-01-02 15:04:05")
	b = append(b, ' ')
	b = append(b, displayPath(p)...)
	if n.Type == tree.Symlink {
		b = append(b, " -> "...)
		b = append(b, displayPath(n.LinkTarget)...)
	}
	b = append(b, '\n')
	pw.buf = b
	_, err := pw.w.Write(b)
	return err
}

func appendPadded(b []byte, s string, width int) []byte {
	b = append(b, s...)
	for i := utf8.RuneCountInString(s); i < width; i++ {
		b = append(b, ' ')
	}
	return b
}

func ownerName(name string, numeric uint32) string {
	if name != "" {
		return displayPath(name)
	}
	return strconv.FormatUint(uint64(numeric), 10)
}

// displayPath returns s as is, or Go-quoted if it holds a control character
// (a newline would split one entry over two lines, an escape sequence would
// drive the terminal). Snapshot paths start with '/', so a quoted one, which
// starts with '"', cannot be mistaken for a raw one.
func displayPath(s string) string {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return strconv.Quote(s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError && unicode.IsControl(r) {
			return strconv.Quote(s)
		}
		i += size
	}
	return s
}

// modeString renders a node's type and mode like ls -l.
func modeString(n *tree.Node) string {
	var b [10]byte
	switch n.Type {
	case tree.Dir:
		b[0] = 'd'
	case tree.Symlink:
		b[0] = 'l'
	case tree.Fifo:
		b[0] = 'p'
	case tree.CharDev:
		b[0] = 'c'
	case tree.BlockDev:
		b[0] = 'b'
	case tree.Socket:
		b[0] = 's'
	case tree.File:
		b[0] = '-'
	default:
		b[0] = '?'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if n.Mode&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		} else {
			b[i+1] = '-'
		}
	}
	special := func(bit uint32, pos int, set, setNoExec byte) {
		if n.Mode&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = set
		} else {
			b[pos] = setNoExec
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b[:])
}

// lsEntry is one element of `ls --json`. Field names are a contract.
type lsEntry struct {
	Path string `json:"path"`
	// PathBase64 holds the raw bytes of a path that is not valid UTF-8
	// (JSON strings cannot carry them; Path then has U+FFFD in their place).
	PathBase64 string `json:"path_base64,omitempty"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	// Mode is the permission bits plus setuid/setgid/sticky as a number
	// (0o755 is 493), without the type.
	Mode       uint32 `json:"mode"`
	ModeString string `json:"mode_string"`
	Size       uint64 `json:"size"`
	UID        uint32 `json:"uid"`
	GID        uint32 `json:"gid"`
	User       string `json:"user"`
	Group      string `json:"group"`
	MTime      string `json:"mtime"`
	ATime      string `json:"atime"`
	Links      uint64 `json:"links"`
	LinkTarget string `json:"link_target,omitempty"`
	// LinkTargetBase64 is like PathBase64, for a symlink target.
	LinkTargetBase64 string `json:"link_target_base64,omitempty"`
	// ContentChunks is the number of chunks the file's content is stored
	// in.
	ContentChunks int `json:"content_chunks"`
}

type jsonEntryWriter struct {
	w     *bufio.Writer
	count int
	buf   bytes.Buffer
	enc   *json.Encoder
}

func (jw *jsonEntryWriter) begin() error {
	_, err := jw.w.WriteString("[")
	return err
}

func (jw *jsonEntryWriter) end() error {
	if jw.count > 0 {
		_, err := jw.w.WriteString("\n]\n")
		return err
	}
	_, err := jw.w.WriteString("]\n")
	return err
}

func (jw *jsonEntryWriter) entry(n *tree.Node, p string) error {
	e := lsEntry{
		Path: p, PathBase64: base64IfNotUTF8(p), Name: n.Name, Type: n.Type.String(),
		Mode: n.Mode, ModeString: modeString(n), Size: n.Size, UID: n.UID, GID: n.GID,
		User: n.User, Group: n.Group, MTime: jsonTime(n.MTime), ATime: jsonTime(n.ATime),
		Links: n.Links, LinkTarget: n.LinkTarget, LinkTargetBase64: base64IfNotUTF8(n.LinkTarget),
		ContentChunks: len(n.Content),
	}
	return jw.element(&e)
}

// element writes one array element; the encoder and its buffer are reused
// because a listing can hold millions of them.
func (jw *jsonEntryWriter) element(v any) error {
	if jw.enc == nil {
		jw.enc = json.NewEncoder(&jw.buf)
		jw.enc.SetEscapeHTML(false)
	}
	jw.buf.Reset()
	if err := jw.enc.Encode(v); err != nil {
		return err
	}
	data := bytes.TrimSuffix(jw.buf.Bytes(), []byte("\n"))
	sep := ",\n"
	if jw.count == 0 {
		sep = "\n"
	}
	jw.count++
	if _, err := jw.w.WriteString(sep); err != nil {
		return err
	}
	_, err := jw.w.Write(data)
	return err
}

func jsonTime(ns int64) string {
	return time.Unix(0, ns).Format(time.RFC3339Nano)
}

func base64IfNotUTF8(s string) string {
	if utf8.ValidString(s) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s))
}
