// Package lvm makes point-in-time, read-only views of paths that live on LVM
// logical volumes: one `lvcreate --snapshot` per origin LV, mounted read-only
// under a private directory, and removed again by View.Release.
//
// Invariants:
//   - Every snapshot LV is named "costor-<tag>-<pid>-<unix time>", so a later
//     run's Cleanup can tell the leftovers of a dead process from a live one.
//   - Take undoes everything it did before it returns an error: an LV that was
//     created is removed even when mounting it failed.
//   - Release always attempts every step (umount, rmdir, lvremove), even when an
//     earlier one failed; LVM itself refuses to remove an LV that is still open,
//     so trying is safe, and the error names the LV left behind.
//   - A started lvcreate/lvremove/mount/umount is never killed by ctx: killing
//     lvcreate half-way could leave an LV nobody recorded. ctx is honoured
//     between steps; each command has its own time limit.
//
// It runs the LVM tools and mount(8); it needs root. It imports no costor code.
package lvm
