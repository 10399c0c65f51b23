// Package zfs makes read-only point-in-time views of ZFS datasets for a
// backup: Take runs "zfs snapshot <dataset>@costor-<tag>-<pid>-<unix time>"
// for the dataset holding each backup path and every dataset mounted below
// it (one atomic command per pool), and Path maps an original path to
// <mountpoint>/.zfs/snapshot/<name>/..., which ZFS mounts on first access
// even when the snapdir property is "hidden".
//
// Invariants: every snapshot this package creates carries that name, so a
// run killed before Release leaves something Cleanup can recognise and
// destroy once its pid is dead; only names holding '@' are ever passed to
// "zfs destroy", so a dataset itself can never be destroyed; Take either
// returns a View owning every snapshot it made or destroys them all.
//
// It is real on Linux only; elsewhere Take and Cleanup fail with
// ErrUnsupported. It imports only the standard library and golang.org/x/sys.
package zfs
