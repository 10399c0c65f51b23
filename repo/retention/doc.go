// Package retention decides which snapshots a forget policy keeps, and why.
// It is pure: no I/O and no clock, so the CLI and a server (which sees only
// a snapshot's public record) can both use it.
//
// Semantics are restic's `forget`:
//   - Snapshots are grouped by host and the sorted set of their paths
//     (Group); a policy applies to each group on its own (Apply).
//   - Within a group, snapshots are considered newest first. Each rule with a
//     count N keeps a snapshot whose bucket (the snapshot itself for Last; its
//     hour, day, ISO week, month or year on the wall clock of
//     Policy.Location) differs from the bucket the rule kept last, until the
//     rule has kept N. A rule that still has counts left at the oldest
//     snapshot keeps that one too, so a short history is not cut shorter.
//   - A snapshot kept by any rule stays; every rule that kept it is a reason.
//   - An empty policy keeps everything: removing snapshots always needs an
//     explicit rule.
package retention
