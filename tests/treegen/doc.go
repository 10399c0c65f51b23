// Package treegen builds, from a seed, a directory tree holding every kind of
// filesystem object and metadata costor promises to back up and restore
// faithfully, and compares two trees for exactly that faithfulness.
//
// Invariants: Generate is deterministic (same seed and options, same tree,
// timestamps included, wherever it is generated), and Compare/Diff never
// change either tree they read (no atime updates: files and directories are
// opened with O_NOATIME where permitted, and stat'ed before they are read).
package treegen
