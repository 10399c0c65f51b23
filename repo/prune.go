package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/tree"
)

// PruneOptions tune a prune.
type PruneOptions struct {
	// RepackPercent: a pack whose unused bytes exceed this share of its
	// size is rewritten without them. Zero means DefaultRepackPercent.
	RepackPercent float64
	// DryRun plans and reports without changing anything.
	DryRun bool
	// Progress, if set, is told the stage and how far it is.
	Progress func(stage string, done, total int)
}

// DefaultRepackPercent is the unused share above which a pack is repacked.
const DefaultRepackPercent = 20

// PruneReport says what a prune found and did (or would do, on a dry run).
type PruneReport struct {
	Snapshots                   int
	BlobsUsed, BlobsUnused      uint64
	PacksKept, PacksDeleted     int
	PacksRepacked, PacksWritten int
	BytesUnused                 int64 // stored bytes no snapshot references
	BytesFreed                  int64 // storage released (deleted - written)
	BytesRepacked               int64 // used bytes copied into new packs
}

// ErrPruneUnsafe: the prune found something that stops it from proving a
// blob unused (an unreadable snapshot or tree), so it deletes nothing.
var ErrPruneUnsafe = errors.New("prune stopped before deleting anything")

// Prune deletes what no snapshot references. It runs under the
// repository's exclusive lock (the index flock), so no backup can add or
// rely on blobs while it decides: a backup that wants the repository waits
// for the prune to finish, and a prune waits for running backups.
//
// Order, so that a crash at any moment loses nothing still referenced:
//  1. mark every blob reachable from a snapshot (scratch marks in Badger);
//  2. copy the used blobs of mostly-unused packs into new packs, saved
//     durably and indexed, and point the index at the copies;
//  3. make the index durable, then for each old pack drop it from the
//     index and only then delete its file.
//
// A crash before 3 leaves duplicates (garbage for the next prune); in 3,
// an undeleted file is re-indexed by the next open and pruned next time.
func (r *Repository) Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	if !r.keys.full {
		return nil, ErrReadOnly
	}
	if opts.RepackPercent == 0 {
		opts.RepackPercent = DefaultRepackPercent
	}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	rep := &PruneReport{}
	if err := r.EnsureVersions(ctx); err != nil {
		return nil, err
	}
	if err := r.idx.ClearMarks(ctx); err != nil {
		return nil, err
	}
	defer r.idx.ClearMarks(r.closeCtx)
	if err := r.markUsed(ctx, rep, opts); err != nil {
		return nil, err
	}
	plan, err := r.planPrune(ctx, rep, opts)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		return rep, nil
	}
	if err := r.repack(ctx, plan.repack, rep, opts); err != nil {
		return nil, err
	}
	if err := r.idx.Sync(); err != nil {
		return nil, err
	}
	doomed := append(plan.delete, plan.repack...)
	for i, p := range doomed {
		if err := r.idx.RemovePack(ctx, p.id); err != nil {
			return nil, err
		}
		if err := r.st.Remove(ctx, packHandle(p.id)); err != nil {
			return nil, fmt.Errorf("delete pack %s: %w", p.id.Short(), err)
		}
		rep.BytesFreed += p.size
		if opts.Progress != nil {
			opts.Progress("delete", i+1, len(doomed))
		}
	}
	return rep, nil
}

// markUsed marks every blob reachable from any snapshot. A tree already
// marked is not walked again: its whole subtree was marked with it.
func (r *Repository) markUsed(ctx context.Context, rep *PruneReport, opts PruneOptions) error {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	rep.Snapshots = len(snaps)
	// Open indexed every readable record in storage; one it left out is
	// damaged, and the blobs it references cannot be known.
	indexed := make(map[id.ID]bool, len(snaps))
	for _, s := range snaps {
		indexed[s.ID] = true
	}
	if err := r.st.List(ctx, storage.KindSnapshots, func(fi storage.Info) error {
		if s, err := id.Parse(fi.Handle.Name); err == nil && !indexed[s] {
			return fmt.Errorf("%w: snapshot record %s is damaged (it does not match its name); restore it from a copy, or delete that file if the snapshot is lost", ErrPruneUnsafe, fi.Handle)
		}
		return nil
	}); err != nil {
		if errors.Is(err, ErrPruneUnsafe) {
			return err
		}
		return fmt.Errorf("list snapshots: %w", err)
	}
	m := &marker{r: r}
	for i, s := range snaps {
		det, hk, err := r.Details(ctx, s)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPruneUnsafe, err)
		}
		if err := m.tree(ctx, hk, det.Tree); err != nil {
			return fmt.Errorf("%w: snapshot %s: %v", ErrPruneUnsafe, s.ID.Short(), err)
		}
		if opts.Progress != nil {
			opts.Progress("mark", i+1, len(snaps))
		}
	}
	return m.flush(ctx)
}

type marker struct {
	r       *Repository
	pending []id.ID
}

func (m *marker) add(ctx context.Context, b id.ID) error {
	m.pending = append(m.pending, b)
	if len(m.pending) >= 4096 {
		return m.flush(ctx)
	}
	return nil
}

func (m *marker) flush(ctx context.Context) error {
	if len(m.pending) == 0 {
		return nil
	}
	err := m.r.idx.Mark(ctx, m.pending)
	m.pending = m.pending[:0]
	return err
}

func (m *marker) tree(ctx context.Context, hk *HostKey, treeID id.ID) error {
	// Pending marks must be visible to Marked before we rely on it.
	if err := m.flush(ctx); err != nil {
		return err
	}
	done, err := m.r.idx.Marked(ctx, treeID)
	if err != nil || done {
		return err
	}
	t, err := m.r.LoadTree(ctx, hk, treeID)
	if err != nil {
		return err
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		switch n.Type {
		case tree.Dir:
			if err := m.tree(ctx, hk, n.Subtree); err != nil {
				return err
			}
		case tree.File:
			for _, c := range n.Content {
				if err := m.add(ctx, c.ID); err != nil {
					return err
				}
			}
		}
	}
	// The tree is marked last: a tree marked means its subtree is done.
	return m.add(ctx, treeID)
}

type packInfo struct {
	id   id.ID
	size int64
}

type prunePlan struct {
	delete, repack []packInfo
}

// planPrune sorts packs into keep, delete and repack. A blob counts as used
// in a pack only if it is marked and the index locates it there: another
// copy of it elsewhere is garbage. Usage is summed per pack in one pass
// over the locations and the marks side by side, so memory is bounded by
// the number of packs, not blobs.
func (r *Repository) planPrune(ctx context.Context, rep *PruneReport, opts PruneOptions) (*prunePlan, error) {
	used := map[id.ID]usage{}
	err := r.idx.ForEachBlobMarked(ctx, func(_ id.ID, loc index.Location, marked bool) error {
		if marked {
			u := used[loc.Pack]
			u.blobs++
			u.bytes += int64(loc.Length)
			used[loc.Pack] = u
		}
		return nil
	}, func(blob id.ID) error {
		return fmt.Errorf("%w: blob %s is in use but the index has no location for it (a pack is missing or the index is stale); run `costor repair index` first", ErrPruneUnsafe, blob.Short())
	})
	if err != nil {
		return nil, err
	}
	var packs []packInfo
	if err := r.idx.ForEachPack(ctx, func(p id.ID, size int64, _ int) error {
		packs = append(packs, packInfo{p, size})
		return nil
	}); err != nil {
		return nil, err
	}
	plan := &prunePlan{}
	for i, p := range packs {
		blobs, length, err := r.idx.PackLength(ctx, p.id)
		if err != nil {
			return nil, err
		}
		u := used[p.id]
		unused := usage{blobs: blobs - u.blobs, bytes: length - u.bytes}
		rep.BlobsUsed += u.blobs
		rep.BlobsUnused += unused.blobs
		rep.BytesUnused += unused.bytes
		switch {
		case u.blobs == 0:
			plan.delete = append(plan.delete, p)
			rep.PacksDeleted++
		case float64(unused.bytes) > float64(length)*opts.RepackPercent/100:
			plan.repack = append(plan.repack, p)
			rep.PacksRepacked++
		default:
			rep.PacksKept++
		}
		if opts.Progress != nil {
			opts.Progress("plan", i+1, len(packs))
		}
	}
	return plan, nil
}

type usage struct {
	blobs uint64
	bytes int64
}

// liveIn reports whether blob is used and its indexed copy is in packID.
func (r *Repository) liveIn(ctx context.Context, blob, packID id.ID) (bool, error) {
	marked, err := r.idx.Marked(ctx, blob)
	if err != nil || !marked {
		return false, err
	}
	loc, ok, err := r.idx.Lookup(ctx, blob)
	if err != nil {
		return false, err
	}
	if !ok {
		// The pack the index placed it in is gone, but this one holds a
		// copy: treating it as garbage would delete the last copy.
		return false, fmt.Errorf("%w: blob %s is used and stored in pack %s, but the index has no location for it; run `costor repair index` first",
			ErrPruneUnsafe, blob.Short(), packID.Short())
	}
	return loc.Pack == packID, nil
}

// repack copies the used blobs of the given packs into new packs.
func (r *Repository) repack(ctx context.Context, packs []packInfo, rep *PruneReport, opts PruneOptions) error {
	w := pack.NewWriter(headerSealer{r.keys.pack})
	write := func() error {
		if w.Count() == 0 {
			return nil
		}
		data, entries, packID, err := w.Finish()
		if err != nil {
			return fmt.Errorf("finish repacked pack: %w", err)
		}
		if err := r.st.Save(ctx, packHandle(packID), bytes.NewReader(data), int64(len(data))); err != nil {
			return fmt.Errorf("save repacked pack %s: %w", packID.Short(), err)
		}
		if err := r.idx.AddPack(ctx, packID, int64(len(data)), entries); err != nil {
			return err
		}
		if err := r.idx.Relocate(ctx, packID, entries); err != nil {
			return err
		}
		rep.PacksWritten++
		rep.BytesFreed -= int64(len(data))
		w = pack.NewWriter(headerSealer{r.keys.pack})
		return nil
	}
	for i, p := range packs {
		var buf bytes.Buffer
		if err := r.st.Load(ctx, packHandle(p.id), 0, 0, func(rd io.Reader) error {
			_, err := buf.ReadFrom(rd)
			return err
		}); err != nil {
			return fmt.Errorf("read pack %s to repack: %w", p.id.Short(), err)
		}
		data := buf.Bytes()
		entries, err := r.idx.PackBlobs(ctx, p.id)
		if err != nil {
			return err
		}
		for _, e := range entries {
			live, err := r.liveIn(ctx, e.ID, p.id)
			if err != nil {
				return err
			}
			if !live {
				continue
			}
			end := int64(e.Offset) + int64(e.Length)
			if end > int64(len(data)) || id.Hash(data[e.Offset:end]) != e.ID {
				return fmt.Errorf("%w: blob %s in pack %s is damaged; run `costor check --read-data`", ErrPruneUnsafe, e.ID.Short(), p.id.Short())
			}
			if _, err := w.Add(e.Type, e.ID, data[e.Offset:end], e.RawLength); err != nil {
				return fmt.Errorf("repack blob %s: %w", e.ID.Short(), err)
			}
			rep.BytesRepacked += int64(e.Length)
			if w.Size() >= r.cfg.PackSize {
				if err := write(); err != nil {
					return err
				}
			}
		}
		if opts.Progress != nil {
			opts.Progress("repack", i+1, len(packs))
		}
	}
	return write()
}
