package btrfs

import (
	"context"
	"errors"
)

// ErrUnsupported is returned on platforms without btrfs.
var ErrUnsupported = errors.New("btrfs snapshots are not supported on this platform")

// ErrNotBtrfs is returned by Take for a path that does not live on btrfs.
var ErrNotBtrfs = errors.New("not on a btrfs filesystem")

// SnapshotDir is the directory, inside each snapshotted subvolume, that holds
// the snapshots. Exclude it from backups: a snapshot of the subvolume shows it
// (with any other run's snapshots as empty directories).
const SnapshotDir = ".costor-snapshots"

// Options tune Take and Cleanup. Zero values are sensible.
type Options struct {
	// Tag is part of every snapshot name this process creates, so a later
	// run can recognise leftovers: names are "costor-<tag>-<pid>-<unix time>".
	// Letters, digits, '.', '_' and '-' only. Default "backup".
	Tag string
	// Run runs an external command and returns its combined output; nil
	// runs it with exec.CommandContext and keeps stderr for the error.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Logf, if set, is told about each snapshot made and removed.
	Logf func(format string, args ...any)
}
