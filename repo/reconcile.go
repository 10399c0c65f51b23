package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
)

// reconcile brings the index up to date with storage, which is the truth:
// packs a killed process saved but never indexed are read in, and packs or
// snapshots that are gone are dropped.
func (r *Repository) reconcile(ctx context.Context) error {
	if r.remote != nil {
		// The server keeps its own index of packs; a client caches only
		// snapshot records and the version history.
		if err := r.reconcileSnapshots(ctx); err != nil {
			return err
		}
		return r.EnsureVersions(ctx)
	}
	if c, ok := r.st.(interface {
		CleanTemp(context.Context, time.Duration) error
	}); ok && !r.cache {
		// We hold the exclusive index lock, so any temporary file is a
		// leftover of a process that died.
		if err := c.CleanTemp(ctx, 0); err != nil {
			return fmt.Errorf("remove leftover temporary files: %w", err)
		}
	}
	stored := map[id.ID]int64{}
	if err := r.st.List(ctx, storage.KindPacks, func(fi storage.Info) error {
		p, err := id.Parse(fi.Handle.Name)
		if err != nil {
			return nil // not ours; check reports it
		}
		stored[p] = fi.Size
		return nil
	}); err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	var gone []id.ID
	if err := r.idx.ForEachPack(ctx, func(p id.ID, _ int64, _ int) error {
		if _, ok := stored[p]; ok {
			delete(stored, p)
		} else {
			gone = append(gone, p)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, p := range gone {
		r.log.Warn("pack in index is missing from storage; dropping it from the index", "pack", p.String())
		if err := r.idx.RemovePack(ctx, p); err != nil {
			return err
		}
	}
	// Headers are read a few at a time: each is a small ranged read, and a
	// first open of a cache index (the mount) reads thousands of them.
	var g errgroup.Group
	g.SetLimit(4)
	for p, size := range stored {
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // interrupted: the next open indexes the rest
			}
			if err := r.indexPack(ctx, p, size); err != nil && ctx.Err() == nil {
				r.log.Warn("pack cannot be indexed", "pack", p.String(), "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.reconcileSnapshots(ctx); err != nil {
		return err
	}
	return r.EnsureVersions(ctx)
}

// indexPack reads a pack's header and adds it to the index.
func (r *Repository) indexPack(ctx context.Context, p id.ID, size int64) error {
	entries, err := r.readPackHeader(ctx, p, size)
	if err != nil {
		return err
	}
	return r.idx.AddPack(ctx, p, size, entries)
}

func (r *Repository) readPackHeader(ctx context.Context, p id.ID, size int64) ([]pack.Entry, error) {
	key := r.keys.pack
	if r.cache {
		key = r.packKey
	}
	if !r.keys.full && !r.cache {
		return nil, fmt.Errorf("pack %s: reading a pack header needs the repository password", p.Short())
	}
	entries, err := pack.ReadHeader(&storageReaderAt{ctx: ctx, st: r.st, h: packHandle(p)}, size, headerSealer{key})
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p.Short(), err)
	}
	return entries, nil
}

// DamagedSnapshotRecords lists the snapshot records the last open or
// refresh found damaged and left out of the index.
func (r *Repository) DamagedSnapshotRecords() []id.ID { return r.damagedRecords }

func (r *Repository) reconcileSnapshots(ctx context.Context) error {
	r.damagedRecords = r.damagedRecords[:0]
	stored := map[id.ID]bool{}
	if err := r.st.List(ctx, storage.KindSnapshots, func(fi storage.Info) error {
		s, err := id.Parse(fi.Handle.Name)
		if err == nil {
			stored[s] = true
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var gone []id.ID
	if err := r.idx.ForEachSnapshot(ctx, func(s id.ID, _ []byte) error {
		if stored[s] {
			delete(stored, s)
		} else {
			gone = append(gone, s)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, s := range gone {
		// Forgotten by another process: the same as ForgetSnapshot, less
		// the record, which is already gone.
		record, _, err := r.idx.Snapshot(ctx, s)
		if err != nil {
			return err
		}
		if err := r.idx.DeleteSnapshot(ctx, s); err != nil {
			return err
		}
		if pub, err := snapshot.DecodePublic(record); err == nil {
			if err := r.forgetVersions(pub.Host); err != nil {
				return err
			}
		}
	}
	for s := range stored {
		data, err := loadAll(ctx, r.st, snapshotHandle(s))
		if err != nil {
			return err
		}
		if id.Hash(data) != s {
			r.log.Warn("snapshot record does not match its name; ignoring it", "snapshot", s.String())
			r.damagedRecords = append(r.damagedRecords, s)
			continue
		}
		if err := r.idx.PutSnapshot(ctx, s, data); err != nil {
			return err
		}
	}
	return nil
}

// storageReaderAt adapts a stored object to io.ReaderAt for pack.ReadHeader.
type storageReaderAt struct {
	ctx context.Context
	st  storage.Storage
	h   storage.Handle
}

func (s *storageReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	err := s.st.Load(s.ctx, s.h, off, int64(len(p)), func(rd io.Reader) error {
		var err error
		n, err = io.ReadFull(rd, p)
		return err
	})
	return n, err
}

// lockRecord tells other processes who holds the repository.
type lockRecord struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Time    time.Time `json:"time"`
}

func (r *Repository) writeLock(ctx context.Context, command string) error {
	// Holding the index lock makes every existing lock record stale: its
	// process cannot hold the repository. Drop them.
	var stale []storage.Handle
	_ = r.st.List(ctx, storage.KindLocks, func(fi storage.Info) error {
		stale = append(stale, fi.Handle)
		return nil
	})
	for _, h := range stale {
		_ = r.st.Remove(ctx, h)
	}
	host, _ := os.Hostname()
	data, _ := json.Marshal(lockRecord{Host: host, PID: os.Getpid(), Command: command, Time: time.Now()})
	name, err := randomName()
	if err != nil {
		return err
	}
	if err := saveBytes(ctx, r.st, storage.Handle{Kind: storage.KindLocks, Name: name}, data); err != nil {
		if !r.keys.full {
			return nil // a reader of a read-only copy needs no record
		}
		return fmt.Errorf("write lock record: %w", err)
	}
	r.lockID = name
	return nil
}

// lockHolders describes the processes that hold the repository.
func (r *Repository) lockHolders(ctx context.Context) string {
	var who []string
	_ = r.st.List(ctx, storage.KindLocks, func(fi storage.Info) error {
		data, err := loadAll(ctx, r.st, fi.Handle)
		if err != nil {
			return nil
		}
		var l lockRecord
		if json.Unmarshal(data, &l) == nil {
			who = append(who, fmt.Sprintf("costor %s (pid %d on %s, since %s)", l.Command, l.PID, l.Host, l.Time.Format("15:04:05")))
		}
		return nil
	})
	if len(who) == 0 {
		return "another costor process"
	}
	return strings.Join(who, ", ")
}
