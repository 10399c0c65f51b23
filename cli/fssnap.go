package cli

import (
	"context"
	"fmt"
	"runtime"

	"github.com/costor/costor/apfs"
	"github.com/costor/costor/btrfs"
	"github.com/costor/costor/lvm"
	"github.com/costor/costor/vss"
	"github.com/costor/costor/zfs"
)

// fsView is a point-in-time view of the backup paths (agent.SnapshotView
// plus its release).
type fsView interface {
	Path(original string) (string, error)
	Release(ctx context.Context) error
}

// fsAdapter is one filesystem-snapshot method, adapted from its package.
type fsAdapter struct {
	name      string
	supported func(path string) (bool, error)
	take      func(ctx context.Context, paths []string) (fsView, error)
	cleanup   func(ctx context.Context) ([]string, error)
}

// snapshotTag marks the snapshots costor makes, so leftovers of killed runs
// are found by the next one.
const snapshotTag = "backup"

// fsAdapters lists the methods, in the order auto tries them on this
// platform.
func fsAdapters() []fsAdapter {
	all := []fsAdapter{
		{"btrfs", btrfs.Supported,
			func(ctx context.Context, p []string) (fsView, error) {
				return viewOrNil(btrfs.Take(ctx, p, btrfs.Options{Tag: snapshotTag}))
			},
			func(ctx context.Context) ([]string, error) {
				return btrfs.Cleanup(ctx, btrfs.Options{Tag: snapshotTag})
			}},
		{"zfs", zfs.Supported,
			func(ctx context.Context, p []string) (fsView, error) {
				return viewOrNil(zfs.Take(ctx, p, zfs.Options{Tag: snapshotTag}))
			},
			func(ctx context.Context) ([]string, error) { return zfs.Cleanup(ctx, zfs.Options{Tag: snapshotTag}) }},
		{"lvm", lvm.Supported,
			func(ctx context.Context, p []string) (fsView, error) {
				return viewOrNil(lvm.Take(ctx, p, lvm.Options{Tag: snapshotTag}))
			},
			func(ctx context.Context) ([]string, error) { return lvm.Cleanup(ctx, lvm.Options{Tag: snapshotTag}) }},
		{"vss", vss.Supported,
			func(ctx context.Context, p []string) (fsView, error) {
				return viewOrNil(vss.Take(ctx, p, vss.Options{Tag: snapshotTag}))
			},
			func(ctx context.Context) ([]string, error) { return vss.Cleanup(ctx, vss.Options{Tag: snapshotTag}) }},
		{"apfs", apfs.Supported,
			func(ctx context.Context, p []string) (fsView, error) {
				return viewOrNil(apfs.Take(ctx, p, apfs.Options{Tag: snapshotTag}))
			},
			func(ctx context.Context) ([]string, error) { return apfs.Cleanup(ctx, apfs.Options{Tag: snapshotTag}) }},
	}
	var out []fsAdapter
	for _, a := range all {
		switch {
		case runtime.GOOS == "windows" && a.name == "vss",
			runtime.GOOS == "darwin" && a.name == "apfs",
			runtime.GOOS == "linux" && (a.name == "btrfs" || a.name == "zfs" || a.name == "lvm"):
			out = append(out, a)
		}
	}
	return out
}

// viewOrNil turns a concrete view into the interface without the
// nil-pointer-in-interface trap.
func viewOrNil[V fsView](v V, err error) (fsView, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// chooseSnapshotMethod resolves --snapshot: an explicit method must support
// every path; auto picks the first that does, or none with a warning.
func chooseSnapshotMethod(e *env, method string, paths []string) (*fsAdapter, error) {
	if method == "none" {
		return nil, nil
	}
	adapters := fsAdapters()
	supportsAll := func(a fsAdapter) (bool, error) {
		for _, p := range paths {
			ok, err := a.supported(p)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	}
	if method == "auto" {
		for _, a := range adapters {
			if ok, _ := supportsAll(a); ok {
				return &a, nil
			}
		}
		e.info("warning: no filesystem snapshot method covers %v here; backing up the live files (--snapshot none)", paths)
		return nil, nil
	}
	for _, a := range adapters {
		if a.name != method {
			continue
		}
		ok, err := supportsAll(a)
		if err != nil {
			return nil, fmt.Errorf("--snapshot %s: %w", method, err)
		}
		if !ok {
			return nil, fmt.Errorf("--snapshot %s: not every path is on a %s volume (%v); use --snapshot auto or none", method, method, paths)
		}
		return &a, nil
	}
	known := []string{"auto", "none"}
	for _, a := range adapters {
		known = append(known, a.name)
	}
	return nil, fmt.Errorf("--snapshot %s: not available on %s (methods here: %v)", method, runtime.GOOS, known)
}

// takeSnapshot removes leftovers of killed runs, then takes the view. A
// filesystem mounted below a backup path is not in that path's snapshot:
// one the method can snapshot is snapshotted too; a pseudo filesystem
// (proc, tmpfs…) stays the empty directory it is in the snapshot; any
// other is returned as a problem to record, so the backup ends with exit
// code 3 instead of silently holding an empty directory. With
// --one-file-system those mounts are not backed up anyway.
func takeSnapshot(ctx context.Context, e *env, a *fsAdapter, paths []string, oneFileSystem bool) (fsView, []string, error) {
	removed, err := a.cleanup(ctx)
	for _, r := range removed {
		e.info("removed a %s snapshot left by an interrupted run: %s", a.name, r)
	}
	if err != nil {
		e.info("warning: could not check for leftover %s snapshots: %v", a.name, err)
	}
	roots := paths
	var problems []string
	if !oneFileSystem {
		below, err := mountsBelow(paths)
		if err != nil {
			return nil, nil, fmt.Errorf("--snapshot %s: list the filesystems mounted below %v: %w", a.name, paths, err)
		}
		for _, m := range below {
			if pseudoFS[m.fstype] {
				continue
			}
			if ok, _ := a.supported(m.path); ok {
				roots = append(roots, m.path)
				continue
			}
			problems = append(problems, fmt.Sprintf("%s: a %s filesystem mounted there is not in the %s snapshot and was not backed up; back it up separately, or use --snapshot none", m.path, m.fstype, a.name))
		}
	}
	v, err := a.take(ctx, roots)
	if err != nil {
		return nil, nil, fmt.Errorf("--snapshot %s: %w", a.name, err)
	}
	return v, problems, nil
}

// releaseSnapshot removes the view, also after Ctrl-C; a failure is loud
// because it leaves a snapshot behind (the next run removes it).
func releaseSnapshot(ctx context.Context, e *env, method string, v fsView) {
	if err := v.Release(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(e.stderr, "warning: the %s snapshot could not be removed: %v (the next backup removes it)\n", method, err)
	}
}
