//go:build linux

package lvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// commandTimeout bounds one external command, which runs detached from the
// caller's ctx (see run).
const commandTimeout = 5 * time.Minute

// lvsFields is what parseLVs expects, in order.
const lvsFields = "vg_name,lv_name,lv_attr,lv_kernel_major,lv_kernel_minor"

func (o Options) mountDir() string {
	if o.MountDir == "" {
		return DefaultMountDir
	}
	return o.MountDir
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// run runs one command and returns its stdout; the error names the command
// line and carries stderr. The command runs detached from ctx's cancellation
// (but not beyond commandTimeout): killing lvcreate or umount half-way leaves
// worse state than letting it finish, and ctx is checked between steps.
func (o Options) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmdline := strings.Join(append([]string{name}, args...), " ")
	o.logf("lvm: %s", cmdline)
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
	// LC_ALL=C keeps the output parseable; the LVM tools otherwise warn on
	// stderr about every descriptor they inherit.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", cmdline, err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmdline, err)
	}
	return stdout.Bytes(), nil
}

// host is what the package reads from the machine; tests replace it to fake
// a device without device-mapper.
type host struct {
	mountinfo  string // path of mountinfo
	sysBlock   string // /sys/dev/block
	pid        int
	now        func() time.Time
	alive      func(pid int) bool
	retryDelay time.Duration // between umount attempts on a busy mount
}

func realHost() host {
	return host{
		mountinfo:  "/proc/self/mountinfo",
		sysBlock:   "/sys/dev/block",
		pid:        os.Getpid(),
		now:        time.Now,
		alive:      pidAlive,
		retryDelay: time.Second,
	}
}

// pidAlive errs on the side of "alive": a pid reused by another process only
// postpones a cleanup, while a wrong "dead" would pull a live backup's
// snapshot from under it.
func pidAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// View is a set of mounted LVM snapshots covering the paths given to Take.
type View struct {
	opts  Options
	host  host
	mu    sync.Mutex
	snaps []*snapshot
	roots []root
}

// snapshot records how far one snapshot got, so Release undoes exactly that.
type snapshot struct {
	vg, name, dir string
	created       bool // the LV exists
	dirMade       bool
	mounted       bool
}

// root maps one path given to Take to the same place inside a mounted snapshot.
type root struct{ orig, view string }

// Supported reports whether path lives on an LVM logical volume. It needs no
// privileges: the device-mapper UUID of an LVM LV starts with "LVM-".
func Supported(path string) (bool, error) { return supported(path, realHost()) }

func supported(p string, h host) (bool, error) {
	_, m, err := locate(p, h)
	if err != nil {
		return false, err
	}
	uuid, err := os.ReadFile(filepath.Join(h.sysBlock, fmt.Sprintf("%d:%d", m.major, m.minor), "dm", "uuid"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // not a device-mapper device at all
	}
	if err != nil {
		return false, fmt.Errorf("lvm: is %s on LVM: %w", p, err)
	}
	return strings.HasPrefix(string(uuid), "LVM-"), nil
}

// locate resolves p to a clean absolute path without symlinks and finds the
// mount that holds it.
func locate(p string, h host) (string, mountEntry, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", mountEntry{}, fmt.Errorf("lvm: %s: %w", p, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", mountEntry{}, fmt.Errorf("lvm: %s: %w", p, err)
	}
	data, err := os.ReadFile(h.mountinfo)
	if err != nil {
		return "", mountEntry{}, fmt.Errorf("lvm: read mount table: %w", err)
	}
	entries, err := parseMountinfo(data)
	if err != nil {
		return "", mountEntry{}, fmt.Errorf("lvm: %s: %w", h.mountinfo, err)
	}
	m, ok := findMount(entries, resolved)
	if !ok {
		return "", mountEntry{}, fmt.Errorf("lvm: no mount holds %s", resolved)
	}
	return resolved, m, nil
}

// Take snapshots every LV holding one of paths and mounts each snapshot
// read-only. On error it removes whatever it already made.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	return take(ctx, paths, opts, realHost())
}

// origin is one LV to snapshot and the paths on it.
type origin struct {
	lv     lvInfo
	fstype string
	paths  []target
}

type target struct {
	orig   string // clean absolute path as given
	inside string // the same path relative to the filesystem's root, "/..."
}

func take(ctx context.Context, paths []string, opts Options, h host) (v *View, err error) {
	if len(paths) == 0 {
		return nil, errors.New("lvm snapshot: no paths given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lvm snapshot: %w", err)
	}
	tag, err := opts.tag()
	if err != nil {
		return nil, err
	}
	sizes, err := sizeArgs(opts.SnapshotSize)
	if err != nil {
		return nil, err
	}
	out, err := opts.run(ctx, "lvs", "--noheadings", "--separator", ":", "-o", lvsFields)
	if err != nil {
		return nil, fmt.Errorf("lvm: list logical volumes failed: %w; are the LVM tools installed and are you root?", err)
	}
	lvs, err := parseLVs(out)
	if err != nil {
		return nil, fmt.Errorf("lvm: %w", err)
	}
	origins, err := groupByLV(paths, lvs, h)
	if err != nil {
		return nil, err
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
	for _, o := range origins {
		if err := ctx.Err(); err != nil {
			return v, fmt.Errorf("lvm snapshot: %w", err)
		}
		s, err := v.snapshotOne(ctx, o, tag, sizes)
		if err != nil {
			return v, err
		}
		for _, t := range o.paths {
			v.roots = append(v.roots, root{orig: t.orig, view: path.Join(s.dir, t.inside)})
		}
	}
	return v, nil
}

// groupByLV finds the LV under each path; it fails before anything is made
// if one is not on LVM.
func groupByLV(paths []string, lvs []lvInfo, h host) ([]*origin, error) {
	var origins []*origin
	for _, p := range paths {
		resolved, m, err := locate(p, h)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(lvs, func(l lvInfo) bool { return l.major == m.major && l.minor == m.minor })
		if i < 0 {
			return nil, fmt.Errorf("lvm snapshot of %s: it is on %s (%s), %w; use another --snapshot method or none", p, m.source, m.fstype, ErrNotLVM)
		}
		if _, err := mountOptions(m.fstype); err != nil {
			return nil, fmt.Errorf("lvm snapshot of %s: %w", p, err)
		}
		abs, _ := filepath.Abs(p) // cannot fail: locate did it
		t := target{orig: abs, inside: path.Join(m.root, strings.TrimPrefix(resolved, m.mountPoint))}
		j := slices.IndexFunc(origins, func(o *origin) bool { return o.lv == lvs[i] })
		if j < 0 {
			origins = append(origins, &origin{lv: lvs[i], fstype: m.fstype})
			j = len(origins) - 1
		}
		origins[j].paths = append(origins[j].paths, t)
	}
	return origins, nil
}

// snapshotOne creates, and mounts, the snapshot of one LV. It records each
// step in v before the next, so Release undoes exactly what happened.
func (v *View) snapshotOne(ctx context.Context, o *origin, tag string, sizes []string) (*snapshot, error) {
	name := snapshotName(tag, v.host.pid, v.host.now())
	s := &snapshot{vg: o.lv.vg, name: name, dir: filepath.Join(v.opts.mountDir(), name)}
	v.mu.Lock()
	v.snaps = append(v.snaps, s)
	v.mu.Unlock()

	lv := o.lv.vg + "/" + o.lv.name
	args := []string{"--snapshot", "--name", name}
	if o.lv.thin() {
		// A thin snapshot shares the pool (no size) and is created with
		// "activation skip" set, so it would not appear as a device.
		args = append(args, "--setactivationskip", "n")
	} else {
		args = append(args, sizes...)
	}
	if _, err := v.opts.run(ctx, "lvcreate", append(args, lv)...); err != nil {
		return s, fmt.Errorf("lvm snapshot of %s failed: %w; is there free space in volume group %s (vgs) and are you root?", lv, err, o.lv.vg)
	}
	s.created = true
	v.opts.logf("lvm: created snapshot %s/%s of %s", s.vg, s.name, lv)

	if err := ctx.Err(); err != nil {
		return s, fmt.Errorf("lvm snapshot of %s: %w", lv, err)
	}
	if err := os.MkdirAll(v.opts.mountDir(), 0o700); err != nil {
		return s, fmt.Errorf("lvm: make mount directory: %w", err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return s, fmt.Errorf("lvm: make mount directory: %w", err)
	}
	s.dirMade = true
	mopts, _ := mountOptions(o.fstype) // checked in groupByLV
	dev := "/dev/" + s.vg + "/" + s.name
	if _, err := v.opts.run(ctx, "mount", "-t", o.fstype, "-o", mopts, dev, s.dir); err != nil {
		return s, fmt.Errorf("lvm: mount snapshot %s/%s read-only failed: %w", s.vg, s.name, err)
	}
	s.mounted = true
	return s, nil
}

// Path maps an original path (one given to Take, or below one) to where the
// same content is inside the view.
func (v *View) Path(original string) (string, error) {
	abs, err := filepath.Abs(original)
	if err != nil {
		return "", fmt.Errorf("lvm view path %s: %w", original, err)
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
		return "", fmt.Errorf("lvm view path %s: not below any snapshotted path", original)
	}
	r := v.roots[best]
	return r.view + strings.TrimPrefix(abs, r.orig), nil
}

// Release unmounts and removes every snapshot of the view. It tries every
// step even after a failure, is idempotent, and ignores ctx's cancellation
// (each command has its own time limit): cleanup must also happen after Ctrl-C.
func (v *View) Release(ctx context.Context) error {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var errs []error
	for i := len(v.snaps) - 1; i >= 0; i-- {
		errs = append(errs, v.releaseOne(ctx, v.snaps[i]))
	}
	v.roots = nil
	return errors.Join(errs...)
}

func (v *View) releaseOne(ctx context.Context, s *snapshot) error {
	var errs []error
	if s.mounted {
		if err := unmount(ctx, v.opts, v.host, s.dir); err != nil {
			errs = append(errs, err)
		} else {
			s.mounted = false
		}
	}
	if s.dirMade && !s.mounted {
		if err := os.Remove(s.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("lvm: remove mount directory: %w", err))
		} else {
			s.dirMade = false
		}
	}
	// Tried even when umount failed: LVM refuses to remove an open LV, and
	// the mount may have gone some other way.
	if s.created {
		if err := removeLV(ctx, v.opts, s.vg, s.name); err != nil {
			errs = append(errs, err)
		} else {
			s.created = false
			v.opts.logf("lvm: removed snapshot %s/%s", s.vg, s.name)
		}
	}
	return errors.Join(errs...)
}

func removeLV(ctx context.Context, opts Options, vg, name string) error {
	if _, err := opts.run(ctx, "lvremove", "-f", vg+"/"+name); err != nil {
		return fmt.Errorf("lvm: remove snapshot %s/%s failed: %w; remove it with `lvremove %s/%s` once nothing uses it", vg, name, err, vg, name)
	}
	return nil
}

// unmount tries a plain umount a few times (a just-closed file may keep the
// mount busy for a moment), then detaches it lazily so the directory is free
// even if some process still holds a file open.
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
	if _, lerr := opts.run(ctx, "umount", "-l", dir); lerr != nil {
		return fmt.Errorf("lvm: unmount snapshot at %s failed: %w; find what uses it with `fuser -m %s`", dir, errors.Join(err, lerr), dir)
	}
	return nil
}

// Cleanup removes the snapshots, mounts and mount directories left by costor
// runs whose process is gone, and returns what it removed ("vg/lv" for an LV,
// the directory for a mount).
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	return cleanup(ctx, opts, realHost())
}

func cleanup(ctx context.Context, opts Options, h host) ([]string, error) {
	out, err := opts.run(ctx, "lvs", "--noheadings", "--separator", ":", "-o", lvsFields)
	if err != nil {
		return nil, fmt.Errorf("lvm cleanup: list logical volumes failed: %w; are you root?", err)
	}
	lvs, err := parseLVs(out)
	if err != nil {
		return nil, fmt.Errorf("lvm cleanup: %w", err)
	}
	data, err := os.ReadFile(h.mountinfo)
	if err != nil {
		return nil, fmt.Errorf("lvm cleanup: read mount table: %w", err)
	}
	mounts, err := parseMountinfo(data)
	if err != nil {
		return nil, fmt.Errorf("lvm cleanup: %s: %w", h.mountinfo, err)
	}
	dead := func(name string) bool {
		_, pid, ok := parseName(name)
		return ok && pid != h.pid && !h.alive(pid)
	}
	mountDir := filepath.Clean(opts.mountDir())

	var removed []string
	var errs []error
	// Mounts first, deepest first: an LV cannot go while mounted.
	for i := len(mounts) - 1; i >= 0; i-- {
		mp := mounts[i].mountPoint
		rel, ok := strings.CutPrefix(mp, mountDir+"/")
		if !ok {
			continue
		}
		if name, _, _ := strings.Cut(rel, "/"); !dead(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("lvm cleanup: %w", err)
		}
		if err := unmount(ctx, opts, h, mp); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, mp)
	}
	if entries, err := os.ReadDir(mountDir); err == nil {
		for _, e := range entries {
			if e.IsDir() && dead(e.Name()) {
				if err := os.Remove(filepath.Join(mountDir, e.Name())); err != nil {
					errs = append(errs, fmt.Errorf("lvm cleanup: %w", err))
				}
			}
		}
	}
	for _, lv := range lvs {
		if !dead(lv.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("lvm cleanup: %w", err)
		}
		if err := removeLV(ctx, opts, lv.vg, lv.name); err != nil {
			errs = append(errs, err)
			continue
		}
		opts.logf("lvm: removed leftover snapshot %s/%s", lv.vg, lv.name)
		removed = append(removed, lv.vg+"/"+lv.name)
	}
	return removed, errors.Join(errs...)
}
