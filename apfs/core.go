//go:build !windows

package apfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// dateFile, inside a view's directory, holds the tmutil snapshot date.
	dateFile = "snapshot-date"
	// dataVolume is where the firmlinked user data (/Users, /Applications,
	// /private…) lives since macOS 10.15: statfs of /Users names this mount
	// point although /Users is not below it.
	dataVolume     = "/System/Volumes/Data"
	commandTimeout = 5 * time.Minute
)

func (o Options) tag() (string, error) {
	if o.Tag == "" {
		return "backup", nil
	}
	if len(o.Tag) > 64 || strings.Trim(o.Tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") != "" {
		return "", fmt.Errorf("apfs snapshot tag %q: use at most 64 letters, digits, '.', '_', '+' or '-'", o.Tag)
	}
	return o.Tag, nil
}

func (o Options) mountDir() string {
	if o.MountDir == "" {
		return DefaultMountDir
	}
	return filepath.Clean(o.MountDir)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// run runs one command and returns its stdout; the error names the command
// line and carries stderr. A started command is not killed by ctx (a half-done
// mount or snapshot is worse than a finished one); ctx is checked between steps.
func (o Options) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmdline := strings.Join(append([]string{name}, args...), " ")
	o.logf("apfs: %s", cmdline)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commandTimeout)
	defer cancel()
	if o.Run != nil {
		out, err := o.Run(ctx, name, args...)
		if err != nil {
			return out, fmt.Errorf("%s: %w: %s", cmdline, err, bytes.TrimSpace(out))
		}
		return out, nil
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) == 0 {
			msg = bytes.TrimSpace(stdout.Bytes()) // tmutil reports some errors on stdout
		}
		if len(msg) > 0 {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", cmdline, err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmdline, err)
	}
	return stdout.Bytes(), nil
}

var lastNameTime atomic.Int64

// snapshotName names a view's private directory, unique within the process.
func snapshotName(tag string, pid int, now time.Time) string {
	t := now.Unix()
	for {
		last := lastNameTime.Load()
		if t <= last {
			t = last + 1
		}
		if lastNameTime.CompareAndSwap(last, t) {
			break
		}
	}
	return fmt.Sprintf("%s%s-%d-%d", namePrefix, tag, pid, t)
}

// volume is the mounted APFS volume holding a path.
type volume struct {
	mountPoint string // "/System/Volumes/Data"
	device     string // "/dev/disk3s5"
	fstype     string
	readOnly   bool
}

// host is what the package reads from the machine; tests replace it.
type host struct {
	volumeOf   func(path string) (volume, error)
	mounts     func() ([]string, error) // mount points in use
	pid        int
	now        func() time.Time
	alive      func(pid int) bool
	retryDelay time.Duration
}

// View is one APFS snapshot, mounted for each volume holding a path given to Take.
type View struct {
	opts   Options
	host   host
	mu     sync.Mutex
	base   string // private directory; "" if none was made
	date   string // tmutil snapshot date; "" once deleted
	mounts []*mount
	roots  []root
}

type mount struct {
	dir              string
	dirMade, mounted bool
}

type root struct{ orig, view string }

func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

type target struct {
	orig string
	rel  string // the path relative to its volume's root, "/…"
}

func take(ctx context.Context, paths []string, opts Options, h host) (v *View, err error) {
	if len(paths) == 0 {
		return nil, errors.New("apfs snapshot: no paths given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apfs snapshot: %w", err)
	}
	tag, err := opts.tag()
	if err != nil {
		return nil, err
	}
	var vols []volume
	byVol := map[string][]target{}
	for _, p := range paths {
		vol, t, err := locate(p, h)
		if err != nil {
			return nil, err
		}
		if _, ok := byVol[vol.mountPoint]; !ok {
			vols = append(vols, vol)
		}
		byVol[vol.mountPoint] = append(byVol[vol.mountPoint], t)
	}

	v = &View{opts: opts, host: h}
	defer func() {
		if err != nil {
			if rerr := v.Release(ctx); rerr != nil {
				err = fmt.Errorf("%w (and undoing it: %v)", err, rerr)
			}
			v = nil
		}
	}()
	// A read-only volume (the sealed system volume) cannot change under us.
	for _, vol := range vols {
		if vol.readOnly {
			for _, t := range byVol[vol.mountPoint] {
				v.roots = append(v.roots, root{orig: t.orig, view: t.orig})
			}
		}
	}
	vols = slices.DeleteFunc(vols, func(vol volume) bool { return vol.readOnly })
	if len(vols) == 0 {
		return v, nil
	}

	v.base = filepath.Join(opts.mountDir(), snapshotName(tag, h.pid, h.now()))
	if err := os.MkdirAll(opts.mountDir(), 0o700); err != nil {
		return v, fmt.Errorf("apfs: make mount directory: %w", err)
	}
	if err := os.Mkdir(v.base, 0o700); err != nil {
		v.base = ""
		return v, fmt.Errorf("apfs: make mount directory: %w", err)
	}
	out, err := opts.run(ctx, "tmutil", "localsnapshot")
	if err != nil {
		return v, fmt.Errorf("apfs: local snapshot failed: %w; are you root, and does this process have Full Disk Access?", err)
	}
	date, err := parseCreatedDate(out)
	if err != nil {
		return v, fmt.Errorf("apfs: local snapshot: %w", err)
	}
	v.date = date
	if err := os.WriteFile(filepath.Join(v.base, dateFile), []byte(date+"\n"), 0o600); err != nil {
		return v, fmt.Errorf("apfs: record snapshot date: %w", err)
	}
	for i, vol := range vols {
		if err := ctx.Err(); err != nil {
			return v, fmt.Errorf("apfs snapshot: %w", err)
		}
		dir, err := v.mountOne(ctx, i, vol, date)
		if err != nil {
			return v, err
		}
		for _, t := range byVol[vol.mountPoint] {
			v.roots = append(v.roots, root{orig: t.orig, view: dir + t.rel})
		}
	}
	return v, nil
}

// locate finds the volume holding p and p's place on it.
func locate(p string, h host) (volume, target, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return volume{}, target{}, fmt.Errorf("apfs: %s: %w", p, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return volume{}, target{}, fmt.Errorf("apfs: %s: %w", p, err)
	}
	vol, err := h.volumeOf(resolved)
	if err != nil {
		return volume{}, target{}, fmt.Errorf("apfs: volume of %s: %w", p, err)
	}
	if vol.fstype != "apfs" {
		return volume{}, target{}, fmt.Errorf("apfs snapshot of %s: it is on %s (%s), %w; use --snapshot none", p, vol.mountPoint, vol.fstype, ErrNotAPFS)
	}
	rel := resolved
	switch {
	case within(resolved, vol.mountPoint):
		rel = strings.TrimPrefix(resolved, vol.mountPoint)
		if vol.mountPoint == "/" {
			rel = resolved
		}
	case vol.mountPoint == dataVolume:
		// Firmlinked: /Users is the data volume's /Users.
	default:
		return volume{}, target{}, fmt.Errorf("apfs snapshot of %s: cannot place it on volume %s", p, vol.mountPoint)
	}
	return vol, target{orig: abs, rel: rel}, nil
}

// mountOne mounts the snapshot of one volume under the view's directory.
func (v *View) mountOne(ctx context.Context, i int, vol volume, date string) (string, error) {
	out, err := v.opts.run(ctx, "tmutil", "listlocalsnapshots", vol.mountPoint)
	if err != nil {
		return "", fmt.Errorf("apfs: list snapshots of %s failed: %w", vol.mountPoint, err)
	}
	snap, ok := snapshotWithDate(parseSnapshotNames(out), date)
	if !ok {
		return "", fmt.Errorf("apfs: no local snapshot of %s dated %s; is it a local APFS volume included in Time Machine?", vol.mountPoint, date)
	}
	m := &mount{dir: filepath.Join(v.base, "vol"+strconv.Itoa(i))}
	v.mu.Lock()
	v.mounts = append(v.mounts, m)
	v.mu.Unlock()
	if err := os.Mkdir(m.dir, 0o700); err != nil {
		return "", fmt.Errorf("apfs: make mount directory: %w", err)
	}
	m.dirMade = true
	// nobrowse keeps the snapshot out of the Finder's sidebar and desktop.
	if _, err := v.opts.run(ctx, "mount_apfs", "-o", "ro,nobrowse", "-s", snap, vol.device, m.dir); err != nil {
		return "", fmt.Errorf("apfs: mount snapshot %s of %s failed: %w", snap, vol.mountPoint, err)
	}
	m.mounted = true
	return m.dir, nil
}

// Path maps an original path (one given to Take, or below one) to where the
// same content is inside the view.
func (v *View) Path(original string) (string, error) {
	abs, err := filepath.Abs(original)
	if err != nil {
		return "", fmt.Errorf("apfs view path %s: %w", original, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	best := -1
	for i, r := range v.roots {
		if within(abs, r.orig) && (best < 0 || len(r.orig) > len(v.roots[best].orig)) {
			best = i
		}
	}
	if best < 0 {
		return "", fmt.Errorf("apfs view path %s: not below any snapshotted path", original)
	}
	r := v.roots[best]
	if r.orig == "/" {
		return filepath.Join(r.view, abs), nil
	}
	return r.view + strings.TrimPrefix(abs, r.orig), nil
}

// Release unmounts and deletes the snapshot. It tries every step even after
// a failure, is idempotent, and ignores ctx's cancellation (each command has
// its own time limit): cleanup must also happen after Ctrl-C.
func (v *View) Release(ctx context.Context) error {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var errs []error
	for i := len(v.mounts) - 1; i >= 0; i-- {
		m := v.mounts[i]
		if m.mounted {
			if err := unmount(ctx, v.opts, v.host, m.dir); err != nil {
				errs = append(errs, err)
			} else {
				m.mounted = false
			}
		}
		if m.dirMade && !m.mounted {
			if err := os.Remove(m.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("apfs: %w", err))
			} else {
				m.dirMade = false
			}
		}
	}
	// Tried even when an unmount failed: APFS refuses to delete a mounted
	// snapshot, so this cannot pull it from under a reader.
	if v.date != "" {
		if err := deleteSnapshot(ctx, v.opts, v.date); err != nil {
			errs = append(errs, err)
		} else {
			v.date = ""
		}
	}
	if v.base != "" && v.date == "" && !slices.ContainsFunc(v.mounts, func(m *mount) bool { return m.dirMade }) {
		if err := removeBase(v.base); err != nil {
			errs = append(errs, err)
		} else {
			v.base = ""
		}
	}
	v.roots = nil
	return errors.Join(errs...)
}

func deleteSnapshot(ctx context.Context, opts Options, date string) error {
	if _, err := opts.run(ctx, "tmutil", "deletelocalsnapshots", date); err != nil {
		return fmt.Errorf("apfs: delete local snapshot %s failed: %w; delete it with `tmutil deletelocalsnapshots %s` once it is unmounted", date, err, date)
	}
	return nil
}

// removeBase removes a view's directory: its date file and empty mount
// directories, never anything inside a mount.
func removeBase(base string) error {
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("apfs: %w", err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(base, e.Name())); err != nil {
			return fmt.Errorf("apfs: %w", err)
		}
	}
	if err := os.Remove(base); err != nil {
		return fmt.Errorf("apfs: %w", err)
	}
	return nil
}

// unmount tries umount a few times (a just-closed file may keep the mount busy
// for a moment), then forces it.
func unmount(ctx context.Context, opts Options, h host, dir string) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(h.retryDelay)
		}
		if _, err = opts.run(ctx, "umount", dir); err == nil {
			return nil
		}
	}
	if _, ferr := opts.run(ctx, "umount", "-f", dir); ferr != nil {
		return fmt.Errorf("apfs: unmount snapshot at %s failed: %w; find what uses it with `lsof +D %s`", dir, errors.Join(err, ferr), dir)
	}
	return nil
}

func cleanup(ctx context.Context, opts Options, h host) ([]string, error) {
	mountDir := opts.mountDir()
	entries, err := os.ReadDir(mountDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("apfs cleanup: %w", err)
	}
	mounted, err := h.mounts()
	if err != nil {
		return nil, fmt.Errorf("apfs cleanup: list mounts: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := parseName(e.Name())
		if !ok || !e.IsDir() || pid == h.pid || h.alive(pid) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("apfs cleanup: %w", err)
		}
		base := filepath.Join(mountDir, e.Name())
		var failed bool
		for i := len(mounted) - 1; i >= 0; i-- {
			if mp := mounted[i]; within(mp, base) {
				if err := unmount(ctx, opts, h, mp); err != nil {
					errs, failed = append(errs, err), true
					continue
				}
				removed = append(removed, mp)
			}
		}
		if data, err := os.ReadFile(filepath.Join(base, dateFile)); err == nil {
			if date := snapshotDate.FindString(string(data)); date != "" {
				if err := deleteSnapshot(ctx, opts, date); err != nil {
					errs, failed = append(errs, err), true
				} else {
					removed = append(removed, "local snapshot "+date)
				}
			}
		}
		if failed {
			continue // keep the date file for the next attempt
		}
		if err := removeBase(base); err != nil {
			errs = append(errs, err)
			continue
		}
		opts.logf("apfs: removed leftover %s", base)
	}
	return removed, errors.Join(errs...)
}
