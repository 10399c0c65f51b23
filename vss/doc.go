// Package vss makes a point-in-time, read-only view of Windows volumes with
// the Volume Shadow Copy Service, through its COM API (IVssBackupComponents
// in VssApi.dll, called with golang.org/x/sys/windows; no cgo).
//
// One shadow copy set covers every volume holding a path given to Take, so
// all of them are consistent with each other, and VSS writers (SQL Server,
// Exchange, Hyper-V, the registry…) flush their data first. A path such as
// C:\Users\a\x maps to \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN\Users\a\x.
//
// Invariants:
//   - The shadow copies are non-persistent (VSS_CTX_BACKUP, auto-release):
//     Windows deletes them when Release lets go of the backup components object,
//     and also when this process dies without doing so, so nothing is ever
//     left behind and Cleanup has nothing to do.
//   - The backup type is VSS_BT_COPY: writers do not truncate their logs or
//     record a backup, so costor never disturbs another backup product.
//   - Every COM call runs on one OS thread owned by the view, which joins the
//     multithreaded apartment for the view's lifetime.
//
// It needs an elevated (Administrator) process. It imports no costor code.
package vss
