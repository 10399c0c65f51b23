package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/fusefs"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/storage/local"
	"github.com/costor/costor/repo/tree"
)

func mountCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "mount",
		Usage:     "browse every snapshot and every version of a file as a read-only folder",
		ArgsUsage: "MOUNTPOINT",
		Description: "Runs in the foreground until Ctrl-C, SIGTERM or `umount MOUNTPOINT`, then unmounts cleanly.\n" +
			"Backups may run while it is mounted; new snapshots appear without remounting.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "host", Usage: "show only snapshots of `HOST`"},
			&ucli.BoolFlag{Name: "allow-other", Usage: "let other users see the mount (needs user_allow_other in /etc/fuse.conf)"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			ctx := c.Context
			if c.NArg() != 1 {
				return errors.New("mount: give exactly one MOUNTPOINT")
			}
			mnt, err := filepath.Abs(c.Args().First())
			if err != nil {
				return err
			}
			if fi, err := os.Stat(mnt); err != nil || !fi.IsDir() {
				return fmt.Errorf("mount point %s is not a directory (create it first: mkdir -p %s)", mnt, mnt)
			}
			r, err := e.openForMount(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			src := &mountSource{r: r, snaps: map[id.ID]*fusefs.Snapshot{}}
			err = fusefs.Mount(ctx, mnt, src, fusefs.Options{
				Host: c.String("host"), AllowOther: c.Bool("allow-other"), Logger: e.log,
				OnMount: func() { e.info("mounted at %s; Ctrl-C or `umount %s` to stop", mnt, mnt) },
			})
			if err != nil {
				return fmt.Errorf("mount %s: %w", mnt, err)
			}
			return nil
		},
	}
}

// openForMount opens the repository with a private cache index under the
// user's cache directory, so that backups keep running while it is mounted.
// With only a recovery key (no pack key to read pack headers into a cache)
// it opens the repository's own index, holding the repository meanwhile.
// On a server the mount has a cache index of its own beside the one other
// commands use, so that they run while it is mounted.
func (e *env) openForMount(ctx context.Context) (*repo.Repository, error) {
	if u, remote, err := remoteURL(e.c.String("repo")); err != nil {
		return nil, err
	} else if remote {
		r, _, err := e.openRemote(ctx, u, remoteOpen{command: "mount", purpose: purposeMount})
		return r, err
	}
	if e.c.String("recovery-key") != "" {
		return e.openRepo(ctx, "mount")
	}
	dir, isDefault, err := e.repoLocation()
	if err != nil {
		return nil, err
	}
	st, err := local.Open(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := repo.LoadConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("find your cache directory for the mount's index: %w", err)
	}
	creds, err := e.credentials(isDefault)
	if err != nil {
		return nil, err
	}
	return repo.Open(ctx, repo.Options{
		Storage: st, IndexDir: filepath.Join(cacheRoot, "costor", cfg.ID, "index"),
		Logger: e.log, Command: "mount", CacheIndex: true,
		OnWait: func(holder string) { e.info("waiting for the mount cache, held by %s", holder) },
	}, creds)
}

// mountSource adapts a repository to what fusefs needs.
type mountSource struct {
	r *repo.Repository

	mu    sync.Mutex
	snaps map[id.ID]*fusefs.Snapshot // unsealed details, by snapshot ID
}

var _ fusefs.Source = (*mountSource)(nil)

func (m *mountSource) Refresh(ctx context.Context) error { return m.r.Refresh(ctx) }

func (m *mountSource) Snapshots(ctx context.Context) ([]fusefs.Snapshot, error) {
	list, err := m.r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]fusefs.Snapshot, 0, len(list))
	for _, s := range list {
		fs, err := m.snapshot(ctx, s)
		if err != nil {
			continue // not readable with these keys: not shown
		}
		out = append(out, *fs)
	}
	return out, nil
}

func (m *mountSource) snapshot(ctx context.Context, s repo.Snapshot) (*fusefs.Snapshot, error) {
	m.mu.Lock()
	fs, ok := m.snaps[s.ID]
	m.mu.Unlock()
	if ok {
		return fs, nil
	}
	det, hk, err := m.r.Details(ctx, s)
	if err != nil {
		return nil, err
	}
	fs = &fusefs.Snapshot{ID: s.ID, Host: s.Host, Time: s.Time, Tree: det.Tree, Key: hk}
	m.mu.Lock()
	m.snaps[s.ID] = fs
	m.mu.Unlock()
	return fs, nil
}

func (m *mountSource) LoadTree(ctx context.Context, snap *fusefs.Snapshot, treeID id.ID) (*tree.Tree, error) {
	hk, ok := snap.Key.(*repo.HostKey)
	if !ok {
		return nil, fmt.Errorf("snapshot %s has no key", snap.ID.Short())
	}
	return m.r.LoadTree(ctx, hk, treeID)
}

func (m *mountSource) ReadChunk(ctx context.Context, c tree.Chunk, dst []byte) ([]byte, error) {
	return m.r.ReadChunk(ctx, c, dst)
}

func (m *mountSource) HistoryChildren(ctx context.Context, host, dir string) ([]fusefs.HistoryEntry, error) {
	list, err := m.r.HistoryChildren(ctx, host, dir)
	if err != nil {
		return nil, err
	}
	out := make([]fusefs.HistoryEntry, len(list))
	for i, h := range list {
		out[i] = fusefs.HistoryEntry{Name: h.Name, IsDir: h.IsDir}
	}
	return out, nil
}

func (m *mountSource) Versions(ctx context.Context, host, path string) ([]fusefs.Version, error) {
	list, err := m.r.Versions(ctx, host, path)
	if err != nil {
		return nil, err
	}
	out := make([]fusefs.Version, 0, len(list))
	for _, v := range list {
		snap, err := m.snapshot(ctx, v.Snapshot)
		if err != nil {
			continue
		}
		node, err := agent.Resolve(ctx, m.r, snap.Key.(*repo.HostKey), snap.Tree, path)
		if err != nil || node.Type != tree.File {
			continue
		}
		out = append(out, fusefs.Version{Snapshot: snap, Node: *node})
	}
	return out, nil
}
