package repo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
)

// checkRemote checks a server's repository from a client: every snapshot
// the caller may read opens, every tree decodes, every chunk is on the
// server; with ReadDataPercent, chunks are fetched, hashed against their
// IDs and opened with their keys (all of them, or a random share). The
// server holds no key, so only a client can check that data decrypts.
func (r *Repository) checkRemote(ctx context.Context, opts CheckOptions, rep *CheckReport) (*CheckReport, error) {
	if err := r.checkSnapshotRecords(ctx, rep); err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	rep.Snapshots = len(snaps)
	// The stored-blob set doubles as the set of chunks already checked, so
	// memory stays bounded whatever the repository size.
	if err := r.idx.ClearStored(ctx); err != nil {
		return nil, err
	}
	c := &remoteChecker{r: r, opts: opts, rep: rep, seenTrees: map[id.ID]bool{}}
	g, gctx := errgroup.WithContext(ctx)
	c.jobs = make(chan chunkJob, 64)
	for range 4 {
		g.Go(func() error { return c.chunkWorker(gctx) })
	}
	g.Go(func() error {
		defer close(c.jobs)
		for _, s := range snaps {
			det, hk, err := r.Details(gctx, s)
			if err != nil {
				c.problem(err.Error())
				continue
			}
			if err := c.tree(gctx, s, hk, det.Tree, "/"); err != nil {
				return err
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := c.flushExists(ctx); err != nil {
		return nil, err
	}
	rep.Trees = len(c.seenTrees)
	// Starting from an empty set, the next backup asks the server again.
	if err := r.idx.ClearStored(ctx); err != nil {
		return nil, err
	}
	return rep, nil
}

type chunkJob struct {
	snap  Snapshot
	path  string
	chunk tree.Chunk
}

type remoteChecker struct {
	r    *Repository
	opts CheckOptions
	jobs chan chunkJob

	mu        sync.Mutex
	rep       *CheckReport
	seenTrees map[id.ID]bool
	exists    []chunkJob // chunks to ask the server about, in one batch
}

func (c *remoteChecker) problem(msg string) {
	c.mu.Lock()
	c.rep.Problems = append(c.rep.Problems, msg)
	c.mu.Unlock()
}

func (c *remoteChecker) affected(s Snapshot, p, why string) {
	c.mu.Lock()
	c.rep.Affected = append(c.rep.Affected, fmt.Sprintf("snapshot %s: %s (%s)", s.ID.Short(), p, why))
	c.mu.Unlock()
}

func (c *remoteChecker) tree(ctx context.Context, s Snapshot, hk *HostKey, treeID id.ID, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.seenTrees[treeID] {
		return nil
	}
	c.seenTrees[treeID] = true
	t, err := c.loadTree(ctx, hk, treeID)
	if err != nil {
		c.problem(fmt.Sprintf("snapshot %s: directory %s: %v", s.ID.Short(), dir, err))
		c.affected(s, dir, "directory listing unreadable")
		return nil
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := path.Join(dir, n.Name)
		switch n.Type {
		case tree.Dir:
			if err := c.tree(ctx, s, hk, n.Subtree, p); err != nil {
				return err
			}
		case tree.File:
			for _, ch := range n.Content {
				select {
				case c.jobs <- chunkJob{snap: s, path: p, chunk: ch}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	return nil
}

// loadTree fetches a tree once; reading data, it also hashes the fetched
// bytes against the ID before opening them.
func (c *remoteChecker) loadTree(ctx context.Context, hk *HostKey, treeID id.ID) (*tree.Tree, error) {
	if c.opts.ReadDataPercent <= 0 {
		return c.r.LoadTree(ctx, hk, treeID)
	}
	sealed, err := c.r.LoadBlob(ctx, treeID) // verified against its ID
	if err != nil {
		return nil, err
	}
	plain, err := openTreeBlob(hk, treeID, sealed, "on the server", 0)
	if err != nil {
		return nil, err
	}
	t, err := tree.Decode(plain)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", treeID.Short(), err)
	}
	return t, nil
}

func (c *remoteChecker) chunkWorker(ctx context.Context) error {
	for j := range c.jobs {
		done, err := c.r.idx.KnownStored(ctx, j.chunk.ID)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		read := c.opts.ReadDataPercent >= 100 || (c.opts.ReadDataPercent > 0 && rand.Float64()*100 < c.opts.ReadDataPercent)
		if !read {
			c.mu.Lock()
			c.exists = append(c.exists, j)
			full := len(c.exists) >= 4096
			c.mu.Unlock()
			if full {
				if err := c.flushExists(ctx); err != nil {
					return err
				}
			}
			continue
		}
		sealed, err := c.r.LoadBlob(ctx, j.chunk.ID)
		if err == nil {
			_, err = OpenChunk(j.chunk, sealed, nil)
		}
		c.mu.Lock()
		c.rep.PacksRead++ // with a server, one read is one blob
		nRead := c.rep.PacksRead
		c.mu.Unlock()
		if err != nil {
			c.problem(fmt.Sprintf("snapshot %s: %s: chunk %s: %v", j.snap.ID.Short(), j.path, j.chunk.ID.Short(), err))
			c.affected(j.snap, j.path, "chunk "+j.chunk.ID.Short()+" unreadable")
			continue
		}
		if err := c.r.idx.MarkStored(ctx, []id.ID{j.chunk.ID}); err != nil {
			return err
		}
		if c.opts.Progress != nil {
			c.opts.Progress(nRead, 0)
		}
	}
	return nil
}

// flushExists asks the server about the batched chunks in one request.
func (c *remoteChecker) flushExists(ctx context.Context) error {
	c.mu.Lock()
	batch := c.exists
	c.exists = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ids := make([]id.ID, len(batch))
	for i, j := range batch {
		ids[i] = j.chunk.ID
	}
	missing, err := c.r.remote.Missing(ctx, ids)
	if err != nil {
		return fmt.Errorf("ask the server which chunks it lacks: %w", err)
	}
	gone := make(map[id.ID]bool, len(missing))
	for _, m := range missing {
		gone[m] = true
	}
	var present []id.ID
	for _, j := range batch {
		if gone[j.chunk.ID] {
			c.problem(fmt.Sprintf("snapshot %s: %s: chunk %s is missing on the server", j.snap.ID.Short(), j.path, j.chunk.ID.Short()))
			c.affected(j.snap, j.path, "chunk "+j.chunk.ID.Short()+" is missing")
			continue
		}
		present = append(present, j.chunk.ID)
	}
	return c.r.idx.MarkStored(ctx, present)
}
