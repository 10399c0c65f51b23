package apfs

import (
	"context"
	"fmt"
)

// View is never made on Windows.
type View struct{}

// Path fails with ErrUnsupported.
func (v *View) Path(original string) (string, error) {
	return "", fmt.Errorf("apfs view path %s: %w", original, ErrUnsupported)
}

// Release has nothing to release.
func (v *View) Release(ctx context.Context) error { return nil }
