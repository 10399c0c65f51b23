package index

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrLocked means another process holds the index directory open.
	ErrLocked = errors.New("index is in use by another costor process")
	// ErrDamaged means the index cannot be read as it is; it must be rebuilt
	// from the packs with `costor repair index` (see Reset).
	ErrDamaged = errors.New("index is damaged")
	// ErrReadOnly is returned by every write to an index opened ReadOnly.
	ErrReadOnly = errors.New("index is open read-only")
)

const repairHint = "run `costor repair index` to rebuild it from the packs"

func lockedError(dir string) error {
	return fmt.Errorf("index %s: %w; stop the other process or wait for it to finish", dir, ErrLocked)
}

func damagedError(dir, what string) error {
	return fmt.Errorf("index %s: %w (%s); %s", dir, ErrDamaged, what, repairHint)
}

// classifyOpenError turns Badger's Open error into one of ours. Badger
// flattens the errors it wraps into strings, so errors.Is cannot see
// through them and the text is all there is to go on.
func classifyOpenError(dir string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock"),
		strings.Contains(msg, "resource temporarily unavailable") && strings.Contains(msg, "lock"):
		return lockedError(dir)
	case strings.Contains(msg, "permission denied"),
		strings.Contains(msg, "no space left on device"),
		strings.Contains(msg, "read-only file system"),
		strings.Contains(msg, "too many open files"),
		strings.Contains(msg, "cannot allocate memory"):
		// The environment, not the index, is at fault: rebuilding would not help.
		return fmt.Errorf("open index %s: %v", dir, err)
	}
	return damagedError(dir, msg)
}
