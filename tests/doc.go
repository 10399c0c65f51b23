// Package tests holds the end-to-end tests of costor: each builds on the real
// binary (built once by TestMain from ./cmd/costor), runs it as a user would,
// in its own temporary repository, HOME and XDG directories, and checks only
// what a user sees: exit codes, stdout/stderr, --json output and restored
// files. No test imports costor's own packages.
//
// Invariants: no command may panic (every run checks stderr); root-only tests
// skip when not root, except under CI (env CI set), where skipping fails.
package tests
