package cli

import "errors"

// Exit codes, part of the CLI contract.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitPartial = 3 // the backup finished but some paths could not be read
)

// exitError carries a specific exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// partial marks a finished backup that skipped unreadable paths.
func partial(err error) error { return &exitError{code: ExitPartial, err: err} }

// ExitCode maps an error returned by the app to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	// An interrupted command is an error like any other (the contract has
	// exit codes 0, 1 and 3 only).
	return ExitError
}
