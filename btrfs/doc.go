// Package btrfs makes read-only point-in-time views of btrfs subvolumes for
// a backup: Take snapshots the subvolume holding each backup path (and every
// writable subvolume nested below it) into
// <subvolume>/.costor-snapshots/costor-<tag>-<pid>-<unix time>, and Path
// maps an original path into those snapshots.
//
// Invariants: every snapshot this package creates carries that name, so a
// run killed before Release leaves something Cleanup can recognise and
// remove once its pid is dead; Take either returns a View owning every
// snapshot it made or removes them all; Release deletes each snapshot at
// most once and can be called again after a partial failure.
//
// It is real on Linux only; elsewhere Take and Cleanup fail with
// ErrUnsupported. It imports only the standard library and golang.org/x/sys.
package btrfs
