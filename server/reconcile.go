package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
)

// reconcile makes the index agree with the files after a crash:
//   - packs on disk the index lacks (saved, not yet indexed) are indexed
//     from their headers;
//   - packs the index lists but the disk lacks are dropped from the index;
//   - refs whose snapshot record is missing (an interrupted commit or
//     forget) are dropped;
//   - records without refs are remembered: prune refuses while any exist.
func (s *server) reconcile(ctx context.Context) error {
	// No other process can be writing: the index lock is ours.
	if err := s.st.CleanTemp(ctx, 0); err != nil {
		return err
	}
	indexed := 0
	err := s.st.List(ctx, storage.KindPacks, func(fi storage.Info) error {
		packID, err := id.Parse(fi.Handle.Name)
		if err != nil {
			s.logger.Warn("file in the packs directory is not named by a pack ID; ignored", "name", fi.Handle.Name)
			return nil
		}
		has, err := s.x.HasPack(ctx, packID)
		if err != nil || has {
			return err
		}
		entries, err := pack.ReadHeader(&storageReaderAt{ctx: ctx, st: s.st, h: fi.Handle}, fi.Size, s.sealer)
		if err != nil {
			s.logger.Warn("pack cannot be read with this server's pack key; left out of the index", "pack", packID.String(), "err", err)
			return nil
		}
		indexed++
		return s.x.AddPack(ctx, packID, fi.Size, entries)
	})
	if err != nil {
		return fmt.Errorf("index packs: %w", err)
	}
	if indexed > 0 {
		s.logger.Info("indexed packs saved before a crash", "packs", indexed)
	}

	var gone []id.ID
	err = s.x.ForEachPack(ctx, func(packID id.ID, _ int64, _ int) error {
		if _, err := s.st.Stat(ctx, packHandle(packID)); errors.Is(err, fs.ErrNotExist) {
			gone = append(gone, packID)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check indexed packs: %w", err)
	}
	for _, packID := range gone {
		s.logger.Warn("indexed pack is missing on disk; dropped from the index (run a check of the clients' snapshots)", "pack", packID.String())
		if err := s.x.RemovePack(ctx, packID); err != nil {
			return err
		}
	}

	var orphans []id.ID
	err = s.x.ForEachRefSnapshot(ctx, func(snap id.ID, _ string) error {
		if _, err := s.st.Stat(ctx, snapshotHandle(snap)); errors.Is(err, fs.ErrNotExist) {
			orphans = append(orphans, snap)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check snapshot refs: %w", err)
	}
	for _, snap := range orphans {
		if err := s.x.DropRefs(ctx, snap); err != nil {
			return err
		}
	}
	if len(orphans) > 0 {
		s.logger.Info("dropped refs of snapshots never committed or forgotten before a crash", "snapshots", len(orphans))
	}

	return s.st.List(ctx, storage.KindSnapshots, func(fi storage.Info) error {
		snap, err := id.Parse(fi.Handle.Name)
		if err != nil {
			return nil
		}
		_, ok, err := s.x.RefsHost(ctx, snap)
		if err != nil || ok {
			return err
		}
		s.logger.Error("snapshot record has no ref list in the index; prune is refused until it is forgotten", "snapshot", snap.String())
		s.unreffed[snap] = true
		return nil
	})
}

// storageReaderAt reads an object with one Load per ReadAt: pack.ReadHeader
// reads a pack's tail in one or two calls.
type storageReaderAt struct {
	ctx context.Context
	st  storage.Storage
	h   storage.Handle
}

func (r *storageReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	err := r.st.Load(r.ctx, r.h, off, int64(len(p)), func(rd io.Reader) error {
		var err error
		n, err = io.ReadFull(rd, p)
		return err
	})
	return n, err
}
