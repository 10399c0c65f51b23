package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

// repackThreshold: a pack whose unneeded blobs make up more than this
// share of its blob bytes is rewritten with the needed ones only; below
// it, copying would cost more than the space it frees.
const repackThreshold = 0.5

type pruneRefusedError struct{ snaps []string }

func (e *pruneRefusedError) Error() string {
	return fmt.Sprintf("prune refused: %d snapshot records have no ref list in the index (%s), so prune cannot know which blobs they need; forget them or restore the index",
		len(e.snaps), strings.Join(e.snaps, ", "))
}

type packInfo struct {
	id   id.ID
	size int64
}

// runPrune deletes the packs none of whose blobs a snapshot needs and
// rewrites the packs mostly made of unneeded blobs. A blob is needed in a
// pack if some snapshot (of any host, committed or being committed)
// references it and its index location is that pack; a second copy in
// another pack is not needed. Packs younger than the grace period are
// left alone: their blobs may belong to a backup not yet committed.
//
// It runs alone (gcMu), so no upload or commit sees a blob disappear
// between its check and its use.
func (s *server) runPrune(ctx context.Context, dryRun bool, grace time.Duration) (api.PruneResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	res := api.PruneResult{GraceSeconds: int64(grace / time.Second)}
	s.mu.Lock()
	var unreffed []string
	for snap := range s.unreffed {
		unreffed = append(unreffed, snap.Short())
	}
	s.mu.Unlock()
	if len(unreffed) > 0 {
		slices.Sort(unreffed)
		return res, &pruneRefusedError{snaps: unreffed}
	}
	// The pack list is small next to the blob list (a few thousand blobs
	// per pack), so it is collected before anything is changed.
	var packs []packInfo
	if err := s.x.ForEachPack(ctx, func(packID id.ID, size int64, _ int) error {
		packs = append(packs, packInfo{packID, size})
		return nil
	}); err != nil {
		return res, fmt.Errorf("list packs: %w", err)
	}
	cutoff := s.now().Add(-grace)
	for _, p := range packs {
		if fi, err := os.Stat(s.packPath(p.id)); err == nil && fi.ModTime().After(cutoff) {
			res.PacksYoung++
			continue
		}
		needed, located, neededBytes, totalBytes, err := s.packUse(ctx, p.id, cutoff)
		if err != nil {
			return res, err
		}
		unneeded := totalBytes - neededBytes
		switch {
		case len(needed) == 0:
			res.PacksDeleted++
			res.BlobsDeleted += uint64(located)
			res.BytesFreed += uint64(p.size)
			if !dryRun {
				if err := s.deletePack(ctx, p.id); err != nil {
					return res, err
				}
			}
		case float64(unneeded) > repackThreshold*float64(totalBytes):
			res.PacksDeleted++
			res.PacksWritten++
			res.BlobsDeleted += uint64(located - len(needed))
			if dryRun {
				res.BytesFreed += uint64(unneeded)
				continue
			}
			newSize, err := s.repack(ctx, p.id, needed)
			if err != nil {
				return res, err
			}
			if p.size > newSize {
				res.BytesFreed += uint64(p.size - newSize)
			}
		}
	}
	if !dryRun {
		if _, err := s.x.DropToldBefore(ctx, cutoff); err != nil {
			return res, err
		}
		s.logger.Info("pruned", "packs_deleted", res.PacksDeleted, "packs_written", res.PacksWritten, "blobs_deleted", res.BlobsDeleted, "bytes_freed", res.BytesFreed)
	}
	return res, nil
}

// packPath is where repo/storage/local keeps a pack; prune reads its
// modification time, which storage.Info does not carry.
func (s *server) packPath(packID id.ID) string {
	name := packID.String()
	return filepath.Join(s.st.Location(), string(storage.KindPacks), name[:2], name)
}

// packUse returns the entries of a pack that are needed there (referenced,
// or told stored to a client after cutoff), how many
// of its blobs the index locates in it, and the byte totals.
func (s *server) packUse(ctx context.Context, packID id.ID, cutoff time.Time) (needed []pack.Entry, located int, neededBytes, totalBytes int64, err error) {
	entries, err := s.x.PackBlobs(ctx, packID)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	for _, e := range entries {
		totalBytes += int64(e.Length)
		loc, found, err := s.x.Lookup(ctx, e.ID)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		if !found || loc.Pack != packID {
			continue // a copy; the located one is judged in its own pack
		}
		located++
		ref, err := s.x.Referenced(ctx, e.ID)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		if !ref {
			// A client told after cutoff that the blob is stored may
			// commit a snapshot that references it.
			if ref, err = s.x.ToldSince(ctx, e.ID, cutoff); err != nil {
				return nil, 0, 0, 0, err
			}
		}
		if ref {
			needed = append(needed, e)
			neededBytes += int64(e.Length)
		}
	}
	return needed, located, neededBytes, totalBytes, nil
}

// deletePack forgets a pack in the index, durably, before deleting the
// file, so that no crash leaves the index pointing into a deleted pack.
func (s *server) deletePack(ctx context.Context, packID id.ID) error {
	if err := s.x.RemovePack(ctx, packID); err != nil {
		return err
	}
	if err := s.x.Sync(); err != nil {
		return err
	}
	if err := s.st.Remove(ctx, packHandle(packID)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delete pack %s: %w", packID.Short(), err)
	}
	return nil
}

// repack copies the needed blobs of a pack into a new one (each checked
// against its ID on the way), points the index at the copies, then
// deletes the old pack.
func (s *server) repack(ctx context.Context, old id.ID, needed []pack.Entry) (newSize int64, err error) {
	pw := pack.NewWriter(s.sealer)
	var buf []byte
	for _, e := range needed {
		if cap(buf) < int(e.Length) {
			buf = make([]byte, e.Length)
		}
		data := buf[:e.Length]
		err := s.st.Load(ctx, packHandle(old), int64(e.Offset), int64(e.Length), func(r io.Reader) error {
			_, err := io.ReadFull(r, data)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("repack %s: read blob %s: %w", old.Short(), e.ID.Short(), err)
		}
		if err := pack.VerifyBlob(e, data); err != nil {
			return 0, fmt.Errorf("repack %s: %w; the pack is damaged, run a check", old.Short(), err)
		}
		if _, err := pw.Add(e.Type, e.ID, data, e.RawLength); err != nil {
			return 0, fmt.Errorf("repack %s: %w", old.Short(), err)
		}
	}
	packBytes, entries, packID, err := pw.Finish()
	if err != nil {
		return 0, fmt.Errorf("repack %s: %w", old.Short(), err)
	}
	newSize = int64(len(packBytes))
	if err := s.st.Save(ctx, packHandle(packID), bytes.NewReader(packBytes), newSize); err != nil {
		return 0, fmt.Errorf("repack %s: save pack %s: %w", old.Short(), packID.Short(), err)
	}
	if err := s.x.AddPack(ctx, packID, newSize, entries); err != nil {
		return 0, fmt.Errorf("repack %s: %w", old.Short(), err)
	}
	if err := s.x.Relocate(ctx, packID, entries); err != nil {
		return 0, fmt.Errorf("repack %s: %w", old.Short(), err)
	}
	if err := s.deletePack(ctx, old); err != nil {
		return 0, err
	}
	return newSize, nil
}
