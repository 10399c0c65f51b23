package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"path"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/tree"
)

// FileVersion is one distinct content of a file, named by the first
// snapshot that had it.
type FileVersion struct {
	Snapshot Snapshot
	Path     string
	Size     uint64
	MTime    int64
	Content  id.ID
}

// ContentID digests a file's chunk list: files with equal content have
// equal chunk lists (same chunker, same keys), hence equal digests.
func ContentID(n *tree.Node) id.ID {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n.Size)
	h.Write(b[:])
	for _, c := range n.Content {
		h.Write(c.ID[:])
	}
	var out id.ID
	h.Sum(out[:0])
	return out
}

// Versions lists the distinct versions of the file at p on host, oldest
// first. It reads one key range of the index, however many snapshots
// there are.
func (r *Repository) Versions(ctx context.Context, host, p string) ([]FileVersion, error) {
	p = path.Clean("/" + p)
	seen := map[id.ID]bool{}
	var out []FileVersion
	err := r.idx.Versions(ctx, host, p, func(v index.Version) error {
		if seen[v.Content] {
			return nil
		}
		record, ok, err := r.idx.Snapshot(ctx, v.Snapshot)
		if err != nil || !ok {
			return err // a forgotten snapshot's versions are dropped with it
		}
		pub, err := snapshot.DecodePublic(record)
		if err != nil {
			return err
		}
		seen[v.Content] = true
		out = append(out, FileVersion{
			Snapshot: Snapshot{ID: v.Snapshot, Public: pub}, Path: p,
			Size: v.Size, MTime: v.MTime, Content: v.Content,
		})
		return nil
	})
	return out, err
}

// HistoryEntry is a name ever seen in a directory of a host.
type HistoryEntry struct {
	Name  string
	IsDir bool
}

// HistoryChildren lists every name ever backed up directly in dir on host.
func (r *Repository) HistoryChildren(ctx context.Context, host, dir string) ([]HistoryEntry, error) {
	dir = path.Clean("/" + dir)
	var out []HistoryEntry
	err := r.idx.HistoryChildren(ctx, host, dir, func(name string, kind byte) error {
		if n := len(out); n > 0 && out[n-1].Name == name {
			out[n-1].IsDir = out[n-1].IsDir || kind == index.HistoryDir
			return nil
		}
		out = append(out, HistoryEntry{Name: name, IsDir: kind == index.HistoryDir})
		return nil
	})
	return out, err
}

// EnsureVersions records the version history of every snapshot that lacks
// it, oldest first, so that each can be diffed against its parent.
// Snapshots the keys cannot open are skipped.
func (r *Repository) EnsureVersions(ctx context.Context) error {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		done, err := r.idx.VersionsDone(ctx, s.Host, s.ID)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		if err := r.indexVersions(ctx, s); err != nil {
			r.log.Debug("version history not recorded", "snapshot", s.ID.Short(), "err", err)
		}
	}
	return nil
}

// forgetVersions drops a host's history after one of its snapshots is
// forgotten (versions may be named after it); EnsureVersions rebuilds it.
func (r *Repository) forgetVersions(host string) error {
	return r.idx.DropVersions(host)
}

// indexVersions records snapshot s: only what differs from its parent
// (when the parent's history is recorded) is written, and a subtree with
// the parent's tree ID is skipped whole, so an incremental snapshot costs
// what changed.
func (r *Repository) indexVersions(ctx context.Context, s Snapshot) error {
	det, hk, err := r.Details(ctx, s)
	if err != nil {
		return err
	}
	v := &versionWalker{r: r, host: s.Host, snap: s.ID, time: s.Time.UnixNano(), key: hk}
	if !s.Parent.IsNull() {
		if parent, ok := r.parentForVersions(ctx, s); ok {
			pdet, pkey, err := r.Details(ctx, parent)
			if err == nil {
				v.prevKey = pkey
				return v.run(ctx, det.Tree, pdet.Tree)
			}
		}
	}
	return v.run(ctx, det.Tree, id.ID{})
}

func (r *Repository) parentForVersions(ctx context.Context, s Snapshot) (Snapshot, bool) {
	record, ok, err := r.idx.Snapshot(ctx, s.Parent)
	if err != nil || !ok {
		return Snapshot{}, false
	}
	pub, err := snapshot.DecodePublic(record)
	if err != nil || pub.Host != s.Host {
		return Snapshot{}, false
	}
	done, err := r.idx.VersionsDone(ctx, s.Host, s.Parent)
	if err != nil || !done {
		return Snapshot{}, false
	}
	return Snapshot{ID: s.Parent, Public: pub}, true
}

type versionWalker struct {
	r        *Repository
	host     string
	snap     id.ID
	time     int64
	key      *HostKey
	prevKey  *HostKey
	names    []index.HistoryName
	versions []index.VersionRecord
}

// batch bounds what one snapshot's walk holds in memory.
const versionBatch = 8192

func (v *versionWalker) run(ctx context.Context, cur, prev id.ID) error {
	if err := v.dir(ctx, "/", cur, prev); err != nil {
		return err
	}
	return v.flush(ctx, true)
}

func (v *versionWalker) flush(ctx context.Context, done bool) error {
	err := v.r.idx.PutVersions(ctx, v.host, v.snap, v.names, v.versions, done)
	v.names, v.versions = v.names[:0], v.versions[:0]
	return err
}

func historyKind(t tree.NodeType) (byte, bool) {
	switch t {
	case tree.Dir:
		return index.HistoryDir, true
	case tree.File:
		return index.HistoryFile, true
	}
	return 0, false
}

func (v *versionWalker) dir(ctx context.Context, dir string, cur, prev id.ID) error {
	if !prev.IsNull() && cur == prev && v.prevKey == v.key {
		return nil
	}
	t, err := v.r.LoadTree(ctx, v.key, cur)
	if err != nil {
		return err
	}
	var pt *tree.Tree
	if !prev.IsNull() {
		if pt, err = v.r.LoadTree(ctx, v.prevKey, prev); err != nil {
			pt = nil // diff against nothing: slower, still right
		}
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		kind, shown := historyKind(n.Type)
		if !shown {
			continue
		}
		p := path.Join(dir, n.Name)
		var pn *tree.Node
		if pt != nil {
			if found, ok := pt.Find(n.Name); ok {
				pn = found
			}
		}
		if pk, ok := historyKindOf(pn); !ok || pk != kind {
			v.names = append(v.names, index.HistoryName{Dir: dir, Name: n.Name, Kind: kind})
		}
		switch n.Type {
		case tree.Dir:
			var prevSub id.ID
			if pn != nil && pn.Type == tree.Dir {
				prevSub = pn.Subtree
			}
			if err := v.dir(ctx, p, n.Subtree, prevSub); err != nil {
				return err
			}
		case tree.File:
			content := ContentID(n)
			if pn == nil || pn.Type != tree.File || ContentID(pn) != content {
				v.versions = append(v.versions, index.VersionRecord{Path: p, Version: index.Version{
					Snapshot: v.snap, Time: v.time, Size: n.Size, MTime: n.MTime, Content: content,
				}})
			}
		}
		if len(v.names)+len(v.versions) >= versionBatch {
			if err := v.flush(ctx, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func historyKindOf(n *tree.Node) (byte, bool) {
	if n == nil {
		return 0, false
	}
	return historyKind(n.Type)
}
