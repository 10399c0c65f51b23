//go:build !darwin

package apfs

import (
	"context"
	"fmt"
)

// Supported reports false: APFS snapshots are made only on macOS.
func Supported(path string) (bool, error) { return false, nil }

// Take fails with ErrUnsupported.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	return nil, fmt.Errorf("apfs snapshot of %v: %w", paths, ErrUnsupported)
}

// Cleanup fails with ErrUnsupported.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	return nil, fmt.Errorf("apfs cleanup: %w", ErrUnsupported)
}
