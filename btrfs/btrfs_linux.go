//go:build linux

package btrfs

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

const (
	superMagic = 0x9123683E // BTRFS_SUPER_MAGIC
	// subvolRootIno is BTRFS_FIRST_FREE_OBJECTID: the root directory of
	// every subvolume, and no other inode, has this number.
	subvolRootIno = 256
)

// Supported reports whether path lives on btrfs.
func Supported(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == superMagic, nil
}

// Take makes one read-only snapshot of the subvolume holding each path, and
// of every writable subvolume nested below a path (btrfs snapshots stop at
// subvolume boundaries). Read-only subvolumes are used as they are. The
// snapshots of different subvolumes are taken one after another, not
// atomically. On error Take removes whatever it already created.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	if len(paths) == 0 {
		return nil, errors.New("btrfs snapshot: no paths given")
	}
	tag, err := opts.tag()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("btrfs snapshot: %w", err)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("btrfs snapshot: read mount table: %w", err)
	}
	mounts := parseMountinfo(mountinfo)

	v := &View{opts: opts}
	planned := map[string]*snap{}
	for _, p := range paths {
		r, subvols, err := plan(ctx, opts, mounts, p)
		if err != nil {
			return nil, err
		}
		v.roots = append(v.roots, r)
		for _, s := range subvols {
			if planned[s.subvol] == nil {
				planned[s.subvol] = s
				v.snaps = append(v.snaps, s)
			}
		}
	}
	// Innermost first, so Path picks the snapshot of a nested subvolume.
	slices.SortFunc(v.snaps, func(a, b *snap) int { return len(b.subvol) - len(a.subvol) })

	name := snapshotName(tag, os.Getpid(), time.Now())
	for _, s := range v.snaps {
		if s.dir != "" {
			continue // read-only: already a point-in-time view
		}
		if err := v.snapshot(ctx, s, name); err != nil {
			if rerr := v.Release(ctx); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove the snapshots already made: %w", rerr))
			}
			return nil, err
		}
	}
	return v, nil
}

// plan finds the subvolume holding p and the subvolumes nested below it.
func plan(ctx context.Context, opts Options, mounts []mount, p string) (root, []*snap, error) {
	if !filepath.IsAbs(p) {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: path is not absolute", p)
	}
	p = filepath.Clean(p)
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: %w", p, err)
	}
	ok, err := Supported(resolved)
	if err != nil {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: %w", p, err)
	}
	if !ok {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: %w; choose the snapshot method of that filesystem, or none", p, ErrNotBtrfs)
	}
	subvol, err := subvolumeRoot(mounts, resolved)
	if err != nil {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: %w", p, err)
	}
	out, err := opts.run(ctx, "btrfs", "subvolume", "show", subvol)
	if err != nil {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: %w; is btrfs-progs installed and are you root?", p, err)
	}
	topPath, readOnly := parseShow(out)
	first := &snap{subvol: subvol}
	if readOnly {
		first.dir = subvol
	}
	nested, err := nestedSubvolumes(ctx, opts, subvol, topPath, resolved)
	if err != nil {
		return root{}, nil, fmt.Errorf("btrfs snapshot of %s: %w; are you root?", p, err)
	}
	return root{original: p, resolved: resolved}, append(nested, first), nil
}

// subvolumeRoot walks up from p to the root of the subvolume that holds it,
// never leaving p's mount: above a bind mount of a plain directory the path
// would no longer lead to the same files.
func subvolumeRoot(mounts []mount, p string) (string, error) {
	m, _ := mountOf(mounts, p)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", p, err)
	}
	for st.Ino != subvolRootIno {
		parent := filepath.Dir(p)
		if parent == p || p == m.mountPoint {
			return "", fmt.Errorf("%s is mounted from directory %s of a btrfs filesystem, not from a subvolume; back up through a mount of the subvolume itself", m.mountPoint, m.root)
		}
		var pst unix.Stat_t
		if err := unix.Stat(parent, &pst); err != nil {
			return "", fmt.Errorf("stat %s: %w", parent, err)
		}
		if pst.Dev != st.Dev {
			return "", fmt.Errorf("no btrfs subvolume root above %s", p)
		}
		p, st = parent, pst
	}
	return p, nil
}

// nestedSubvolumes lists the subvolumes below under, inside subvol (whose
// path from the top level is topPath), except costor's own snapshots.
func nestedSubvolumes(ctx context.Context, opts Options, subvol, topPath, under string) ([]*snap, error) {
	// -a: paths from the top level for every subvolume. Without it, when
	// the mounted subvolume is not the top level (a distribution's "@"),
	// btrfs-progs prints its children relative to it ("nested", not
	// "@/nested"), they would not match topPath, and a nested subvolume
	// would be backed up as the empty directory it is in the parent's
	// snapshot.
	all, err := opts.run(ctx, "btrfs", "subvolume", "list", "-a", subvol)
	if err != nil {
		return nil, err
	}
	ro, err := opts.run(ctx, "btrfs", "subvolume", "list", "-a", "-r", subvol)
	if err != nil {
		return nil, err
	}
	readOnly := map[uint64]bool{}
	for _, s := range parseSubvolumeList(ro) {
		readOnly[s.id] = true
	}
	var nested []*snap
	for _, s := range parseSubvolumeList(all) {
		rel, in := s.path, true
		if topPath != "" {
			rel, in = strings.CutPrefix(s.path, topPath+"/")
		}
		if !in || rel == "" || slices.Contains(strings.Split(rel, "/"), SnapshotDir) {
			continue
		}
		abs := filepath.Join(subvol, rel)
		if _, in := below(under, abs); !in || abs == under {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(abs, &st); err != nil || st.Ino != subvolRootIno {
			opts.logf("btrfs: skip subvolume %s: not reachable at %s", s.path, abs)
			continue
		}
		n := &snap{subvol: abs}
		if readOnly[s.id] {
			n.dir = abs
		}
		nested = append(nested, n)
	}
	return nested, nil
}

// snapshot makes the read-only snapshot of s named name.
func (v *View) snapshot(ctx context.Context, s *snap, name string) error {
	parent := filepath.Join(s.subvol, SnapshotDir)
	dir := filepath.Join(parent, name)
	var err error
	// A concurrent run's Release may remove the empty parent between our
	// mkdir and the snapshot; one retry covers that.
	for attempt := 0; attempt < 2; attempt++ {
		if err = os.Mkdir(parent, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("btrfs snapshot of %s: %w; is the subvolume writable and are you root?", s.subvol, err)
		}
		_, err = v.opts.run(ctx, "btrfs", "subvolume", "snapshot", "-r", s.subvol, dir)
		if err == nil || isSubvolume(dir) {
			break
		}
		if _, serr := os.Stat(parent); serr == nil || ctx.Err() != nil {
			break
		}
	}
	if isSubvolume(dir) {
		// Even a failed or interrupted command may have made it.
		s.dir, s.created = dir, true
	} else {
		_ = os.Remove(parent) // only if empty: other runs may use it
	}
	if err != nil {
		return fmt.Errorf("btrfs snapshot of %s: %w; are you root?", s.subvol, err)
	}
	v.opts.logf("btrfs: snapshot of %s at %s", s.subvol, dir)
	return nil
}

func isSubvolume(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Ino == subvolRootIno
}

// Release deletes every snapshot the view created. It is idempotent, and a
// snapshot that failed to go away is tried again by the next call.
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
		if !s.created || s.deleted {
			continue
		}
		if err := deleteSnapshot(ctx, v.opts, s.dir); err != nil {
			errs = append(errs, err)
			continue
		}
		s.deleted = true
		v.opts.logf("btrfs: deleted snapshot %s", s.dir)
	}
	return errors.Join(errs...)
}

// deleteSnapshot deletes one snapshot subvolume, retrying while it is busy,
// then its .costor-snapshots directory if that is now empty.
func deleteSnapshot(ctx context.Context, opts Options, dir string) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if _, serr := os.Lstat(dir); errors.Is(serr, fs.ErrNotExist) {
			err = nil
			break
		}
		if _, err = opts.run(ctx, "btrfs", "subvolume", "delete", dir); err == nil {
			break
		}
		if !strings.Contains(strings.ToLower(err.Error()), "busy") {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete btrfs snapshot %s: %w (after %v)", dir, ctx.Err(), err)
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("delete btrfs snapshot %s: %w; delete it by hand with \"btrfs subvolume delete\" as root", dir, err)
	}
	_ = os.Remove(filepath.Dir(dir)) // fails while other snapshots remain: fine
	return nil
}

// Cleanup deletes the snapshots, in the .costor-snapshots directory of any
// mounted btrfs subvolume, left by costor runs whose process is gone. It
// returns the paths it removed.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("btrfs cleanup: read mount table: %w", err)
	}
	byDev := map[string][]mount{}
	var devs []string
	for _, m := range parseMountinfo(mountinfo) {
		if m.fsType != "btrfs" {
			continue
		}
		if byDev[m.dev] == nil {
			devs = append(devs, m.dev)
		}
		byDev[m.dev] = append(byDev[m.dev], m)
	}
	var removed []string
	var errs []error
	for _, dev := range devs {
		r, err := cleanupFilesystem(ctx, opts, byDev[dev])
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// cleanupFilesystem handles one btrfs filesystem, reachable through mounts.
func cleanupFilesystem(ctx context.Context, opts Options, mounts []mount) ([]string, error) {
	var out []byte
	var err error
	for _, m := range mounts { // any mount will do; some may be unreadable
		if out, err = opts.run(ctx, "btrfs", "subvolume", "list", m.mountPoint); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("btrfs cleanup: %w; are you root?", err)
	}
	var removed []string
	var errs []error
	for _, s := range parseSubvolumeList(out) {
		dir, name := filepath.Split(s.path)
		_, pid, unixTime, ok := parseName(name)
		if !ok || filepath.Base(filepath.Clean(dir)) != SnapshotDir || processAlive(pid, unixTime) {
			continue
		}
		for _, m := range mounts {
			abs, ok := reachable(m, s.path)
			if !ok || !isSubvolume(abs) {
				continue
			}
			if err := deleteSnapshot(ctx, opts, abs); err != nil {
				errs = append(errs, err)
			} else {
				opts.logf("btrfs: removed leftover snapshot %s", abs)
				removed = append(removed, abs)
			}
			break
		}
	}
	return removed, errors.Join(errs...)
}

// processAlive reports whether pid is a process that already ran at unixTime,
// the moment a snapshot was named after it: a younger process merely reuses
// the pid. When unsure it answers true, so nothing in use is deleted.
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
	boot, ok := bootTime()
	if !ok {
		return 0, false
	}
	const userHZ = 100 // USER_HZ: fixed at 100 for /proc on Linux
	return boot + ticks/userHZ, true
}

func bootTime() (int64, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
