package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/tree"
)

// CheckOptions choose how much data check reads.
type CheckOptions struct {
	// ReadDataPercent is the share of packs read in full and verified blob
	// by blob: 0 reads none, 100 reads all.
	ReadDataPercent float64
	// Progress, if set, is called after each pack read.
	Progress func(done, total int)
}

// CheckReport lists every problem found. An empty Problems means healthy.
type CheckReport struct {
	Snapshots, Trees, Packs, PacksRead int
	Problems                           []string
	// DamagedPacks maps a damaged pack to the damaged blobs found in it.
	DamagedPacks map[id.ID][]id.ID
	// Affected lists "snapshot <short>: <path>" for every file or directory
	// that a damaged or missing blob breaks.
	Affected []string
}

// Check verifies the repository: every snapshot opens, every tree it
// references exists and decodes, every chunk it references is indexed in a
// stored pack; with ReadDataPercent > 0, packs are read and every blob is
// hashed against its ID, and damaged blobs are traced to the snapshots and
// files they break.
func (r *Repository) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	rep := &CheckReport{DamagedPacks: map[id.ID][]id.ID{}}
	bad := map[id.ID]string{} // blob → why
	if r.remote != nil {
		return r.checkRemote(ctx, opts, rep)
	}
	if opts.ReadDataPercent > 0 {
		if err := r.checkPacks(ctx, opts, rep, bad); err != nil {
			return nil, err
		}
	}
	if err := r.checkSnapshotRecords(ctx, rep); err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	rep.Snapshots = len(snaps)
	seenTrees := map[id.ID]bool{}
	for _, s := range snaps {
		det, hk, err := r.Details(ctx, s)
		if err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			continue
		}
		w := &checkWalker{r: r, hk: hk, snap: s, rep: rep, bad: bad, seen: seenTrees}
		if err := w.tree(ctx, det.Tree, "/"); err != nil {
			return nil, err
		}
	}
	rep.Trees = len(seenTrees)
	return rep, nil
}

type checkWalker struct {
	r    *Repository
	hk   *HostKey
	snap Snapshot
	rep  *CheckReport
	bad  map[id.ID]string
	seen map[id.ID]bool
}

func (w *checkWalker) affected(p, why string) {
	w.rep.Affected = append(w.rep.Affected, fmt.Sprintf("snapshot %s: %s (%s)", w.snap.ID.Short(), p, why))
}

func (w *checkWalker) tree(ctx context.Context, treeID id.ID, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if why, ok := w.bad[treeID]; ok {
		w.affected(dir, "directory listing "+treeID.Short()+" "+why)
		return nil
	}
	// A tree already verified is verified for every snapshot; but with
	// damaged blobs we still walk it so every affected snapshot is named.
	if w.seen[treeID] && len(w.bad) == 0 {
		return nil
	}
	first := !w.seen[treeID]
	w.seen[treeID] = true
	t, err := w.r.LoadTree(ctx, w.hk, treeID)
	if err != nil {
		if first {
			w.rep.Problems = append(w.rep.Problems, fmt.Sprintf("snapshot %s: directory %s: %v", w.snap.ID.Short(), dir, err))
		}
		w.affected(dir, "directory listing unreadable")
		return nil
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := path.Join(dir, n.Name)
		switch n.Type {
		case tree.Dir:
			if err := w.tree(ctx, n.Subtree, p); err != nil {
				return err
			}
		case tree.File:
			for _, c := range n.Content {
				if why, ok := w.bad[c.ID]; ok {
					w.affected(p, "chunk "+c.ID.Short()+" "+why)
					break
				}
				if !first {
					continue
				}
				has, err := w.r.idx.Has(ctx, c.ID)
				if err != nil {
					return err
				}
				if !has {
					w.bad[c.ID] = "is missing"
					w.rep.Problems = append(w.rep.Problems, fmt.Sprintf("snapshot %s: %s: chunk %s is missing", w.snap.ID.Short(), p, c.ID.Short()))
					w.affected(p, "chunk "+c.ID.Short()+" is missing")
					break
				}
			}
		}
	}
	return nil
}

// checkPacks reads the chosen packs in full and verifies every blob.
func (r *Repository) checkPacks(ctx context.Context, opts CheckOptions, rep *CheckReport, bad map[id.ID]string) error {
	var packs []storage.Info
	if err := r.st.List(ctx, storage.KindPacks, func(fi storage.Info) error {
		packs = append(packs, fi)
		return nil
	}); err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	rep.Packs = len(packs)
	if opts.ReadDataPercent < 100 {
		rand.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
		n := int(float64(len(packs))*opts.ReadDataPercent/100 + 0.999999)
		packs = packs[:min(n, len(packs))]
	}
	for i, fi := range packs {
		if err := r.checkPack(ctx, fi, rep, bad); err != nil {
			return err
		}
		rep.PacksRead++
		if opts.Progress != nil {
			opts.Progress(i+1, len(packs))
		}
	}
	return nil
}

func (r *Repository) checkPack(ctx context.Context, fi storage.Info, rep *CheckReport, bad map[id.ID]string) error {
	packID, err := id.Parse(fi.Handle.Name)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("pack file %q has a name that is not a pack ID", fi.Handle.Name))
		return nil
	}
	var buf bytes.Buffer
	err = r.st.Load(ctx, fi.Handle, 0, 0, func(rd io.Reader) error {
		_, err := buf.ReadFrom(rd)
		return err
	})
	if err != nil {
		return fmt.Errorf("read pack %s: %w", packID.Short(), err)
	}
	data := buf.Bytes()
	damaged := func(blobs []id.ID, why string) {
		rep.DamagedPacks[packID] = append(rep.DamagedPacks[packID], blobs...)
		for _, b := range blobs {
			bad[b] = why
		}
	}
	if id.Hash(data) != packID {
		rep.Problems = append(rep.Problems, fmt.Sprintf("pack %s: content does not match its name (damaged)", packID))
	}
	indexed, err := r.indexedBlobsOf(ctx, packID)
	if err != nil {
		return err
	}
	entries, err := pack.ReadHeader(bytes.NewReader(data), int64(len(data)), headerSealer{r.keys.pack})
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("pack %s: header unreadable: %v", packID, err))
		var ids []id.ID
		for b := range indexed {
			ids = append(ids, b)
		}
		damaged(ids, "is in damaged pack "+packID.Short())
		return nil
	}
	var broken []id.ID
	for _, e := range entries {
		end := int(e.Offset) + int(e.Length)
		if end > len(data) || id.Hash(data[e.Offset:end]) != e.ID {
			broken = append(broken, e.ID)
			rep.Problems = append(rep.Problems, fmt.Sprintf("pack %s: %s blob %s is damaged (does not hash to its ID)", packID, e.Type, e.ID.Short()))
		}
	}
	if len(broken) > 0 {
		damaged(broken, "is damaged in pack "+packID.Short())
	}
	return nil
}

// indexedBlobsOf lists the blobs the index places in packID.
func (r *Repository) indexedBlobsOf(ctx context.Context, packID id.ID) (map[id.ID]bool, error) {
	blobs := map[id.ID]bool{}
	entries, err := r.idx.PackBlobs(ctx, packID)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		blobs[e.ID] = true
	}
	return blobs, nil
}

// checkSnapshotRecords verifies every snapshot record in storage against
// its name: the index keeps a copy of each, which would otherwise hide a
// damaged record until the index is rebuilt and the snapshot silently lost.
func (r *Repository) checkSnapshotRecords(ctx context.Context, rep *CheckReport) error {
	return r.st.List(ctx, storage.KindSnapshots, func(fi storage.Info) error {
		snapID, err := id.Parse(fi.Handle.Name)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: not a snapshot record name", fi.Handle))
			return nil
		}
		data, err := loadAll(ctx, r.st, fi.Handle)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("snapshot %s: %v", snapID.Short(), err))
			return nil
		}
		if id.Hash(data) != snapID {
			msg := fmt.Sprintf("snapshot record %s is damaged (its content does not match its name)", fi.Handle)
			if cached, ok, _ := r.idx.Snapshot(ctx, snapID); ok && id.Hash(cached) == snapID {
				msg += "; the index still holds an intact copy: do not run `repair index` before restoring the file from a copy"
			}
			rep.Problems = append(rep.Problems, msg)
		}
		return nil
	})
}
