//go:build linux

package zfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const superMagic = 0x2FC12FC1 // ZFS_SUPER_MAGIC

// Seams: tests replace these because this machine has no ZFS.
var (
	onZFS = func(path string) (bool, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			return false, fmt.Errorf("statfs %s: %w", path, err)
		}
		return uint32(st.Type) == superMagic, nil
	}
	zfsMounts = func() ([]mount, error) {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return nil, fmt.Errorf("read mount table: %w", err)
		}
		return parseMountinfo(data), nil
	}
)

// Supported reports whether path lives on a ZFS dataset.
func Supported(path string) (bool, error) { return onZFS(path) }

// Take snapshots the dataset holding each path and every dataset mounted
// below a path (a dataset's snapshot stops at child datasets), with one
// "zfs snapshot" per pool so each pool's snapshots are atomic. On error it
// destroys whatever it already created.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	if len(paths) == 0 {
		return nil, errors.New("zfs snapshot: no paths given")
	}
	tag, err := opts.tag()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("zfs snapshot: %w", err)
	}
	mounts, err := zfsMounts()
	if err != nil {
		return nil, fmt.Errorf("zfs snapshot: %w", err)
	}
	v := &View{opts: opts, name: snapshotName(tag, os.Getpid(), time.Now())}
	planned := map[string]bool{}
	for _, p := range paths {
		r, datasets, err := plan(mounts, p)
		if err != nil {
			return nil, err
		}
		v.roots = append(v.roots, r)
		for _, m := range datasets {
			if !planned[m.dataset] {
				planned[m.dataset] = true
				v.snaps = append(v.snaps, &snap{dataset: m.dataset, mountPoint: m.mountPoint})
			}
		}
	}
	slices.SortFunc(v.snaps, func(a, b *snap) int {
		if c := strings.Compare(pool(a.dataset), pool(b.dataset)); c != 0 {
			return c
		}
		return strings.Compare(a.dataset, b.dataset)
	})
	for start := 0; start < len(v.snaps); {
		end := start + 1
		for end < len(v.snaps) && pool(v.snaps[end].dataset) == pool(v.snaps[start].dataset) {
			end++
		}
		group := v.snaps[start:end]
		start = end
		if err := v.snapshot(ctx, group); err != nil {
			if rerr := v.Release(ctx); rerr != nil {
				err = errors.Join(err, fmt.Errorf("destroy the snapshots already made: %w", rerr))
			}
			return nil, err
		}
	}
	// Innermost first, so Path picks a child dataset's snapshot.
	slices.SortStableFunc(v.snaps, func(a, b *snap) int { return len(b.mountPoint) - len(a.mountPoint) })
	return v, nil
}

// plan finds the dataset holding p and the datasets mounted below it.
func plan(mounts []mount, p string) (root, []mount, error) {
	if !filepath.IsAbs(p) {
		return root{}, nil, fmt.Errorf("zfs snapshot of %s: path is not absolute", p)
	}
	p = filepath.Clean(p)
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return root{}, nil, fmt.Errorf("zfs snapshot of %s: %w", p, err)
	}
	ok, err := onZFS(resolved)
	if err != nil {
		return root{}, nil, fmt.Errorf("zfs snapshot of %s: %w", p, err)
	}
	if !ok {
		return root{}, nil, fmt.Errorf("zfs snapshot of %s: %w; choose the snapshot method of that filesystem, or none", p, ErrNotZFS)
	}
	holder, found := mountOf(mounts, resolved)
	if !found {
		return root{}, nil, fmt.Errorf("zfs snapshot of %s: no ZFS dataset is mounted at or above %s in /proc/self/mountinfo", p, resolved)
	}
	datasets := []mount{holder}
	for _, m := range mounts {
		if _, in := below(resolved, m.mountPoint); in && m.mountPoint != resolved && !strings.Contains(m.mountPoint, "/.zfs/") {
			datasets = append(datasets, m)
		}
	}
	return root{original: p, resolved: resolved}, datasets, nil
}

// snapshot takes the snapshots of one pool's datasets in one command.
func (v *View) snapshot(ctx context.Context, group []*snap) error {
	args := []string{"snapshot"}
	for _, s := range group {
		args = append(args, s.fullName(v.name))
	}
	if _, err := v.opts.run(ctx, "zfs", args...); err != nil {
		// ZFS creates all of a command's snapshots or none, but a command
		// killed by Ctrl-C may have finished in the kernel: let Release try,
		// a snapshot that does not exist counts as destroyed.
		if ctx.Err() != nil {
			for _, s := range group {
				s.created = true
			}
		}
		return fmt.Errorf("zfs snapshot of %s failed: %w; is it mounted from ZFS, and are you root or granted \"zfs allow <user> snapshot,destroy,mount\"?", group[0].mountPoint, err)
	}
	for _, s := range group {
		s.created = true
		v.opts.logf("zfs: snapshot %s of %s", s.fullName(v.name), s.mountPoint)
	}
	return nil
}

// Release destroys every snapshot the view created. It is idempotent, and
// a snapshot that failed to go away is tried again by the next call.
func (v *View) Release(ctx context.Context) error {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.released.Store(true)
	ctx, cancel := releaseContext(ctx)
	defer cancel()
	var errs []error
	for _, s := range v.snaps {
		if !s.created || s.destroyed {
			continue
		}
		if err := destroy(ctx, v.opts, s.fullName(v.name)); err != nil {
			errs = append(errs, err)
			continue
		}
		s.destroyed = true
	}
	return errors.Join(errs...)
}

// destroy destroys one snapshot; one already gone counts as destroyed.
func destroy(ctx context.Context, opts Options, name string) error {
	if ds, snapName, ok := strings.Cut(name, "@"); !ok || ds == "" || snapName == "" {
		// Never hand zfs destroy a dataset name: it would destroy the data.
		return fmt.Errorf("zfs destroy %q: not a snapshot name", name)
	}
	_, err := opts.run(ctx, "zfs", "destroy", name)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "could not find any snapshots to destroy") || strings.Contains(msg, "does not exist") {
			return nil
		}
		return fmt.Errorf("destroy zfs snapshot %s: %w; destroy it by hand with \"zfs destroy %s\"", name, err, name)
	}
	opts.logf("zfs: destroyed snapshot %s", name)
	return nil
}

// Cleanup destroys the snapshots left by costor runs whose process is
// gone, in every imported pool. It returns the snapshots it destroyed.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	out, err := opts.run(ctx, "zfs", "list", "-H", "-t", "snapshot", "-o", "name")
	if err != nil {
		return nil, fmt.Errorf("zfs cleanup: %w; is zfs installed and are you root?", err)
	}
	var removed []string
	var errs []error
	for _, name := range parseSnapshotList(out) {
		_, snapName, _ := strings.Cut(name, "@")
		_, pid, unixTime, ok := parseName(snapName)
		if !ok || processAlive(pid, unixTime) {
			continue
		}
		if err := destroy(ctx, opts, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// processAlive reports whether pid is a process that already ran at unixTime,
// the moment a snapshot was named after it: a younger process merely reuses
// the pid. When unsure it answers true, so nothing in use is destroyed.
func processAlive(pid int, unixTime int64) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	start, ok := processStart(stat)
	if !ok {
		return true
	}
	return start <= unixTime+5 // slack for clock ticks and rounding
}

// processStart reads a process's start time (unix seconds) from its
// /proc/PID/stat, using the boot time from /proc/stat.
func processStart(stat []byte) (int64, bool) {
	s := string(stat)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and ')'
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64) // field 22, starttime
	if err != nil {
		return 0, false
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			const userHZ = 100 // USER_HZ: fixed at 100 for /proc on Linux
			return boot + ticks/userHZ, err == nil
		}
	}
	return 0, false
}
