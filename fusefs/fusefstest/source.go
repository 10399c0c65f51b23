// Package fusefstest provides an in-memory fusefs.Source for tests: real
// trees (encoded with repo/tree, so they obey its rules), content split into
// chunks, history computed by walking the snapshots. It is a small but
// complete implementation of the interface, not a recording of calls.
package fusefstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costor/costor/fusefs"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// File is one entry of a snapshot being added.
type File struct {
	// Path is relative to the snapshot root, '/'-separated
	// ("home/alice/notes.txt"). Parent directories that are not listed
	// themselves are created with mode 0755.
	Path string
	// Node holds the metadata; Name, Size, Content and Subtree are filled
	// in. A zero Type means a regular file.
	Node tree.Node
	// Data is the content of a regular file.
	Data []byte
}

// Source is an in-memory fusefs.Source. Snapshots added with Add become
// visible at the next Refresh, as in a repository a snapshot written by
// another process does. All methods are safe for concurrent use.
type Source struct {
	// ChunkSize is the length of the chunks content is split into; the
	// last chunk of a file may be shorter. 0 means 1000.
	ChunkSize int
	// ReadDelay, if set, is slept in every ReadChunk, so concurrent readers
	// overlap.
	ReadDelay time.Duration

	mu        sync.Mutex
	visible   []*fusefs.Snapshot // oldest first
	pending   []*fusefs.Snapshot
	trees     map[id.ID]*tree.Tree
	chunks    map[id.ID][]byte
	failing   map[id.ID]error
	refreshes int

	chunkReads atomic.Int64
	treeLoads  atomic.Int64
}

// New returns an empty Source.
func New() *Source {
	return &Source{
		trees:   make(map[id.ID]*tree.Tree),
		chunks:  make(map[id.ID][]byte),
		failing: make(map[id.ID]error),
	}
}

// Add stores a snapshot of host taken at t holding files, and returns it.
// It is listed from the next Refresh on.
func (s *Source) Add(host string, t time.Time, files ...File) (fusefs.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root := newDirBuilder()
	for _, f := range files {
		if err := root.add(strings.Split(strings.Trim(f.Path, "/"), "/"), f); err != nil {
			return fusefs.Snapshot{}, fmt.Errorf("add %q: %w", f.Path, err)
		}
	}
	treeID, err := s.storeTree(root)
	if err != nil {
		return fusefs.Snapshot{}, err
	}
	snapID := id.Hash(fmt.Appendf(nil, "%s\x00%d\x00%s", host, t.UnixNano(), treeID))
	snap := &fusefs.Snapshot{ID: snapID, Host: host, Time: t, Tree: treeID}
	s.pending = append(s.pending, snap)
	return *snap, nil
}

// FailChunk makes every read of the chunk with this ID fail with err (nil
// heals it).
func (s *Source) FailChunk(chunk id.ID, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.failing, chunk)
	} else {
		s.failing[chunk] = err
	}
}

// Refreshes is the number of Refresh calls so far.
func (s *Source) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// ChunkReads is the number of ReadChunk calls so far.
func (s *Source) ChunkReads() int64 { return s.chunkReads.Load() }

// TreeLoads is the number of LoadTree calls so far.
func (s *Source) TreeLoads() int64 { return s.treeLoads.Load() }

// Refresh makes the snapshots added so far visible.
func (s *Source) Refresh(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	s.visible = append(s.visible, s.pending...)
	s.pending = nil
	sort.SliceStable(s.visible, func(i, j int) bool { return s.visible[i].Time.Before(s.visible[j].Time) })
	return nil
}

// Snapshots lists the visible snapshots, oldest first.
func (s *Source) Snapshots(ctx context.Context) ([]fusefs.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]fusefs.Snapshot, len(s.visible))
	for i, snap := range s.visible {
		out[i] = *snap
	}
	return out, nil
}

// LoadTree returns a stored tree; callers must not modify it.
func (s *Source) LoadTree(ctx context.Context, _ *fusefs.Snapshot, treeID id.ID) (*tree.Tree, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.treeLoads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trees[treeID]
	if !ok {
		return nil, fmt.Errorf("tree %s: %w", treeID.Short(), errNotStored)
	}
	return t, nil
}

var errNotStored = errors.New("not stored")

// ReadChunk appends a chunk's content to dst.
func (s *Source) ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error) {
	s.chunkReads.Add(1)
	if s.ReadDelay > 0 {
		select {
		case <-time.After(s.ReadDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failing[c.ID]; err != nil {
		return nil, err
	}
	data, ok := s.chunks[c.ID]
	if !ok {
		return nil, fmt.Errorf("chunk %s: %w", c.ID.Short(), errNotStored)
	}
	return append(dst, data...), nil
}

// HistoryChildren walks every visible snapshot of host.
func (s *Source) HistoryChildren(ctx context.Context, host, dir string) ([]fusefs.HistoryEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	isDir := map[string]bool{}
	for _, snap := range s.visible {
		if snap.Host != host {
			continue
		}
		n := s.resolve(snap, dir)
		if n == nil || n.Type != tree.Dir {
			continue
		}
		for _, c := range s.trees[n.Subtree].Nodes {
			isDir[c.Name] = isDir[c.Name] || c.Type == tree.Dir
		}
	}
	out := make([]fusefs.HistoryEntry, 0, len(isDir))
	for name, d := range isDir {
		out = append(out, fusefs.HistoryEntry{Name: name, IsDir: d})
	}
	slices.SortFunc(out, func(a, b fusefs.HistoryEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Versions walks every visible snapshot of host, oldest first, keeping the
// first snapshot of each distinct content.
func (s *Source) Versions(ctx context.Context, host, p string) ([]fusefs.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []fusefs.Version
	for _, snap := range s.visible {
		if snap.Host != host {
			continue
		}
		n := s.resolve(snap, p)
		if n == nil || n.Type != tree.File {
			continue
		}
		var key bytes.Buffer
		for _, c := range n.Content {
			key.Write(c.ID[:])
		}
		if seen[key.String()] {
			continue
		}
		seen[key.String()] = true
		out = append(out, fusefs.Version{Snapshot: snap, Node: *n})
	}
	return out, nil
}

// resolve finds the node at p ("/" is the root) in snap, or nil.
func (s *Source) resolve(snap *fusefs.Snapshot, p string) *tree.Node {
	n := &tree.Node{Type: tree.Dir, Subtree: snap.Tree}
	for _, name := range strings.Split(strings.Trim(path.Clean(p), "/"), "/") {
		if name == "" {
			continue
		}
		if n.Type != tree.Dir {
			return nil
		}
		child, ok := s.trees[n.Subtree].Find(name)
		if !ok {
			return nil
		}
		n = child
	}
	return n
}

// dirBuilder collects a directory's entries before its tree is encoded.
type dirBuilder struct {
	node     tree.Node
	explicit bool
	children map[string]*dirBuilder
	file     *File
}

func newDirBuilder() *dirBuilder {
	return &dirBuilder{node: tree.Node{Type: tree.Dir, Mode: 0o755, Links: 2}, children: map[string]*dirBuilder{}}
}

func (d *dirBuilder) add(names []string, f File) error {
	child := d.children[names[0]]
	if len(names) > 1 {
		if child == nil {
			child = newDirBuilder()
			child.node.Name = names[0]
			d.children[names[0]] = child
		}
		if child.node.Type != tree.Dir {
			return fmt.Errorf("%q is not a directory", names[0])
		}
		return child.add(names[1:], f)
	}
	if child != nil && child.explicit {
		return fmt.Errorf("%q added twice", names[0])
	}
	node := f.Node
	node.Name = names[0]
	if node.Type == 0 {
		node.Type = tree.File
	}
	if child == nil {
		child = newDirBuilder()
		d.children[names[0]] = child
	}
	child.node, child.explicit = node, true
	if node.Type == tree.File {
		child.file = &f
	}
	return nil
}

// storeTree encodes d's tree bottom-up, storing trees and chunks; s.mu is
// held.
func (s *Source) storeTree(d *dirBuilder) (id.ID, error) {
	t := &tree.Tree{Nodes: make([]tree.Node, 0, len(d.children))}
	for _, c := range d.children {
		n := c.node
		switch n.Type {
		case tree.Dir:
			sub, err := s.storeTree(c)
			if err != nil {
				return id.ID{}, err
			}
			n.Subtree = sub
		case tree.File:
			n.Size, n.Content = 0, nil
			if c.file != nil {
				n.Content = s.storeChunks(c.file.Data)
				n.Size = uint64(len(c.file.Data))
			}
		}
		t.Nodes = append(t.Nodes, n)
	}
	t.Sort()
	enc, err := t.Encode(nil)
	if err != nil {
		return id.ID{}, err
	}
	treeID := id.Hash(enc)
	s.trees[treeID] = t
	return treeID, nil
}

func (s *Source) storeChunks(data []byte) []tree.Chunk {
	size := s.ChunkSize
	if size <= 0 {
		size = 1000
	}
	var chunks []tree.Chunk
	for len(data) > 0 {
		n := min(size, len(data))
		c := tree.Chunk{ID: id.Hash(data[:n]), Length: uint32(n)}
		s.chunks[c.ID] = bytes.Clone(data[:n])
		chunks = append(chunks, c)
		data = data[n:]
	}
	return chunks
}

var _ fusefs.Source = (*Source)(nil)
