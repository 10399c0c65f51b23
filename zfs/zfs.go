package zfs

import (
	"context"
	"errors"
)

// ErrUnsupported is returned on platforms where this package has no ZFS support.
var ErrUnsupported = errors.New("zfs snapshots are not supported on this platform")

// ErrNotZFS is returned by Take for a path that does not live on ZFS.
var ErrNotZFS = errors.New("not on a ZFS dataset")

// Options tune Take and Cleanup. Zero values are sensible.
type Options struct {
	// Tag is part of every snapshot name this process creates, so a later
	// run can recognise leftovers: names are "costor-<tag>-<pid>-<unix time>".
	// Letters, digits, '.', '_' and '-' only. Default "backup".
	Tag string
	// Run runs an external command and returns its combined output; nil
	// runs it with exec.CommandContext and keeps stderr for the error.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Logf, if set, is told about each snapshot made and destroyed.
	Logf func(format string, args ...any)
}
