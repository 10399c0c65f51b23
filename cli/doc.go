// Package cli holds costor's commands (urfave/cli/v2), one file per command,
// and is the composition root: it turns flags and environment into an open
// repository, keys and options, and hands concrete values to agent and repo.
// Nothing imports cli except cmd/costor. Exit codes are decided in one
// place: ExitCode.
package cli
