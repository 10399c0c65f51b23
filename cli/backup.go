package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/btrfs"
	"github.com/costor/costor/internal/cpus"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
)

func backupCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "backup",
		Usage:     "back up files and directories; prints the new snapshot's ID last",
		ArgsUsage: "PATH…",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "host", Usage: "record the snapshot under `HOST` (default: this machine's hostname)"},
			&ucli.StringSliceFlag{Name: "tag", Usage: "add `TAG` to the snapshot (repeatable)"},
			&ucli.StringSliceFlag{Name: "exclude", Usage: "skip paths matching `GLOB` (a base name, or a whole path if it has a /)"},
			&ucli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "do not cross into other filesystems"},
			&ucli.StringFlag{Name: "snapshot", Value: "none", Usage: "point-in-time view to read from: auto, none, btrfs, lvm, zfs (Linux), vss (Windows), apfs (macOS)"},
			&ucli.StringFlag{Name: "pre-hook", Usage: "run `COMMAND` (sh -c) before the backup, e.g. to flush or pause an application; a failure stops the backup"},
			&ucli.StringFlag{Name: "post-hook", Usage: "run `COMMAND` after the backup, or right after the filesystem snapshot; always runs once the pre hook ran"},
			&ucli.BoolFlag{Name: "stdin", Usage: "back up standard input as the file /NAME (see --stdin-filename)"},
			&ucli.StringFlag{Name: "stdin-filename", Value: "stdin", Usage: "`NAME` of the file a stream is stored as"},
			&ucli.BoolFlag{Name: "stdin-from-command", Usage: "back up the output of the command given after --; if it fails, no snapshot is written"},
		},
		Action: runBackup,
	}
}

func runBackup(c *ucli.Context) error {
	moreProcsForFileIO()
	e := newEnv(c)
	ctx := c.Context
	if c.Bool("stdin") || c.Bool("stdin-from-command") {
		return runStreamBackup(c, e)
	}
	if c.NArg() == 0 {
		return errors.New("backup: give at least one PATH to back up")
	}
	var paths []string
	for _, p := range c.Args().Slice() {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("backup path %q: %w", p, err)
		}
		if _, err := os.Lstat(abs); err != nil {
			return fmt.Errorf("backup path %s: %w", abs, err)
		}
		paths = append(paths, abs)
	}
	host, err := hostname(c)
	if err != nil {
		return err
	}
	r, repoDir, opts, err := backupBase(c, e, host)
	if err != nil {
		return err
	}
	defer r.Close()
	parent, err := findParent(ctx, r, host, paths)
	if err != nil {
		return err
	}
	if parent != nil {
		// On a server: fetch what the parent references, so unchanged
		// files are reused without asking the server about each blob.
		if err := r.PrepareParent(ctx, parent.ID); err != nil {
			return fmt.Errorf("backup: parent snapshot %s: %w", parent.ID.Short(), err)
		}
	}
	adapter, err := chooseSnapshotMethod(e, c.String("snapshot"), paths)
	if err != nil {
		return err
	}
	runPost, err := hooks(ctx, e, c.String("pre-hook"), c.String("post-hook"))
	if err != nil {
		return err
	}
	defer runPost(true) // on an early return; a no-op once it ran
	method := "none"
	var view fsView
	var snapshotProblems []string
	var problems []string
	if adapter != nil {
		// pre hook → snapshot → post hook → backup: an application paused by
		// the hooks is paused only while the snapshot is taken.
		view, problems, err = takeSnapshot(ctx, e, adapter, paths, c.Bool("one-file-system"))
		if err != nil && c.String("snapshot") == "auto" && ctx.Err() == nil {
			// auto promises a fallback: a user without the privileges
			// (btrfs needs root) still gets a backup, said loudly.
			e.info("warning: %v; backing up the live files instead (--snapshot none)", err)
			adapter, err = nil, nil
		}
	}
	if adapter != nil {
		for _, p := range problems {
			fmt.Fprintln(e.stderr, "warning: "+p)
		}
		snapshotProblems = problems
		if perr := runPost(err != nil); perr != nil && err == nil {
			// The point-in-time view is good; only resuming the
			// application failed. Keep the backup, and say so (exit 3).
			fmt.Fprintln(e.stderr, "warning: "+perr.Error())
			snapshotProblems = append(snapshotProblems, perr.Error())
		}
		if err != nil {
			if view != nil {
				releaseSnapshot(ctx, e, adapter.name, view)
			}
			return err
		}
		defer releaseSnapshot(ctx, e, adapter.name, view)
		method = adapter.name
	}
	var progress *agent.Progress
	stop := func() {}
	if e.showProgress() {
		progress = &agent.Progress{}
		stop = startProgress(e, progress, "backup")
	}
	// The btrfs adapter's snapshot directory holds other runs' snapshots
	// (whole copies of the volume): never part of a backup.
	excludes := append(c.StringSlice("exclude"), btrfs.SnapshotDir)
	opts.Paths, opts.Excludes, opts.ExcludePaths = paths, excludes, []string{repoDir}
	opts.OneFileSystem, opts.Parent, opts.Method, opts.Progress = c.Bool("one-file-system"), parent, method, progress
	opts.Warn = func(msg string) {
		stop()
		fmt.Fprintln(e.stderr, "warning: "+msg)
	}
	if view != nil {
		opts.View = view
	}
	opts.Problems = snapshotProblems
	res, err := agent.Backup(ctx, r, opts)
	stop()
	perr := runPost(err != nil)
	if err != nil {
		if perr != nil {
			e.info("warning: %v", perr)
		}
		return fmt.Errorf("backup: %w", err)
	}
	if err := printBackup(e, res, parent); err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("snapshot %s saved, but %w", res.SnapshotID.Short(), perr)
	}
	if len(res.Errors) > 0 {
		return partial(fmt.Errorf("snapshot %s saved, but %d path(s) could not be read (listed above and recorded in the snapshot)", res.SnapshotID.Short(), len(res.Errors)))
	}
	return nil
}

// openOrCreateForBackup opens the repository; the embedded default is
// created on the first backup. It returns the directory a backup must
// never include: the repository, or a server's local index.
func (e *env) openOrCreateForBackup(ctx context.Context, host string, hostKey *crypto.HostKey) (*repo.Repository, string, error) {
	if u, remote, err := remoteURL(e.c.String("repo")); err != nil {
		return nil, "", err
	} else if remote {
		return e.openRemote(ctx, u, remoteOpen{command: "backup", purpose: purposeClient, backupHost: host, hostKey: hostKey})
	}
	dir, isDefault, err := e.repoLocation()
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); isDefault && errors.Is(err, os.ErrNotExist) {
		pw, err := e.newPassword(true)
		if err != nil {
			return nil, "", err
		}
		r, err := initRepo(e.c, e, dir, pw, repo.InitOptions{})
		if err != nil {
			return nil, "", err
		}
		r.Close()
		e.info("costor: created your repository at %s", dir)
	}
	r, err := e.openRepoWithHostKey(ctx, "backup", hostKey)
	return r, dir, err
}

// findParent picks the newest snapshot of host with the same paths.
func findParent(ctx context.Context, r *repo.Repository, host string, paths []string) (*agent.Parent, error) {
	list, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	want := slices.Clone(paths)
	sort.Strings(want)
	for i := len(list) - 1; i >= 0; i-- {
		s := list[i]
		if s.Host != host {
			continue
		}
		det, key, err := r.Details(ctx, s)
		if err != nil {
			continue // unreadable with our keys: not a parent
		}
		got := slices.Clone(det.Paths)
		sort.Strings(got)
		if slices.Equal(got, want) {
			return &agent.Parent{ID: s.ID, Tree: det.Tree, Key: key}, nil
		}
	}
	return nil, nil
}

type backupJSON struct {
	SnapshotID      string   `json:"snapshot_id"`
	ShortID         string   `json:"short_id"`
	Parent          string   `json:"parent,omitempty"`
	FilesNew        uint64   `json:"files_new"`
	FilesChanged    uint64   `json:"files_changed"`
	FilesUnmodified uint64   `json:"files_unmodified"`
	TotalFiles      uint64   `json:"total_files"`
	TotalDirs       uint64   `json:"total_dirs"`
	TotalBytes      uint64   `json:"total_bytes"`
	BlobsAdded      uint64   `json:"blobs_added"`
	BytesAdded      uint64   `json:"bytes_added"`
	DurationSeconds float64  `json:"duration_seconds"`
	Errors          []string `json:"errors"`
	Changed         []string `json:"changed_while_read"`
}

func printBackup(e *env, res *agent.BackupResult, parent *agent.Parent) error {
	st := res.Stats
	if e.c.Bool("json") {
		out := backupJSON{
			SnapshotID: res.SnapshotID.String(), ShortID: res.SnapshotID.Short(),
			FilesNew: st.FilesNew, FilesChanged: st.FilesChanged, FilesUnmodified: st.FilesSame,
			TotalFiles: st.Files, TotalDirs: st.Dirs, TotalBytes: st.Bytes,
			BlobsAdded: st.BlobsAdded, BytesAdded: st.BytesAdded,
			DurationSeconds: st.Duration.Seconds(), Errors: res.Errors, Changed: res.Changed,
		}
		if parent != nil {
			out.Parent = parent.ID.String()
		}
		if out.Errors == nil {
			out.Errors = []string{}
		}
		if out.Changed == nil {
			out.Changed = []string{}
		}
		enc := json.NewEncoder(e.stdout)
		return enc.Encode(out)
	}
	e.info("files: %d new, %d changed, %d unmodified; %d directories", st.FilesNew, st.FilesChanged, st.FilesSame, st.Dirs)
	e.info("processed %d files, %s in %s; added %s to the repository",
		st.Files, humanBytes(st.Bytes), st.Duration.Round(1e7), humanBytes(st.BytesAdded))
	e.info("snapshot %s saved", res.SnapshotID.Short())
	_, err := fmt.Fprintln(e.stdout, res.SnapshotID.String())
	return err
}

// backupBase opens (or, for the embedded default, creates) the repository
// for a backup of host and fills the options every backup shares: keys,
// names, program. The caller closes the repository.
func backupBase(c *ucli.Context, e *env, host string) (*repo.Repository, string, agent.BackupOptions, error) {
	ctx := c.Context
	var opts agent.BackupOptions
	if u, remote, err := remoteURL(c.String("repo")); err != nil {
		return nil, "", opts, err
	} else if remote {
		// Refuse a token that may not write host before making a key or
		// reading any file.
		s, err := e.dialServer(ctx, u)
		if err != nil {
			return nil, "", opts, err
		}
		if err := checkBackupToken(s.who, host); err != nil {
			e.closeServer()
			return nil, "", opts, err
		}
	}
	hostKey, err := e.hostKeyForBackup(host)
	if err != nil {
		e.closeServer()
		return nil, "", opts, err
	}
	r, repoDir, err := e.openOrCreateForBackup(ctx, host, hostKey)
	if err != nil {
		return nil, "", opts, err
	}
	fail := func(err error) (*repo.Repository, string, agent.BackupOptions, error) {
		r.Close()
		return nil, "", opts, err
	}
	secret, err := r.OrgSecret()
	if err != nil {
		return fail(err)
	}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		return fail(err)
	}
	hk, err := r.HostKeyFor(ctx, host)
	if err != nil {
		return fail(err)
	}
	if u, err := user.Current(); err == nil {
		opts.Username = u.Username
	}
	opts.Hostname, _ = os.Hostname()
	opts.Keyer, opts.Polynomial, opts.HostKey = crypto.NewChunkKeyer(secret), pol, hk
	opts.Tags, opts.Program = c.StringSlice("tag"), "costor "+Version
	return r, repoDir, opts, nil
}

// moreProcsForFileIO gives a backup twice as many Ps as CPUs (unless
// GOMAXPROCS is set). A goroutine in a file system call keeps its P until
// the scheduler notices, tens of microseconds and more, and a cold small
// file costs several such calls: with one P per CPU, a backup of 100,000
// cold small files kept the two CPUs only 70 % busy. With twice as many,
// the initial backup of the benchmark corpus took 15.8 s instead of
// 20.2 s. CPU-bound pools stay sized by cpus.N. Restore and mount gained
// nothing from it (a mount spent twice the CPU), so only backup does it.
func moreProcsForFileIO() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * cpus.N)
	}
}
