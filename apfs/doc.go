// Package apfs makes a point-in-time, read-only view of macOS APFS volumes:
// `tmutil localsnapshot` (one snapshot of every local APFS volume at the same
// instant), then `mount_apfs -s` of that snapshot for each volume holding a
// path, read-only under a private directory; View.Release unmounts and
// deletes the snapshot with `tmutil deletelocalsnapshots`.
//
// Invariants:
//   - The private directory of a view is "<MountDir>/costor-<tag>-<pid>-<unix
//     time>" and records the snapshot's date before anything is mounted, so a
//     later run's Cleanup can unmount and delete what a killed run left.
//   - Take undoes everything it did before it returns an error; Release tries
//     every step even after a failure and is idempotent.
//   - Paths on a read-only volume (the sealed system volume) need no snapshot
//     and map to themselves.
//
// The command sequence is platform-neutral and tested on Linux with stand-in
// programs; only the volume lookup (statfs) and the mount table are darwin-only.
// It needs root. It imports no costor code.
package apfs
