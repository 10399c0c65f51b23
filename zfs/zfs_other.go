//go:build !linux

package zfs

import (
	"context"
	"fmt"
)

// View never exists on this platform.
type View struct{}

// Supported reports false: this package drives ZFS on Linux only.
func Supported(path string) (bool, error) { return false, nil }

// Take fails with ErrUnsupported.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	return nil, fmt.Errorf("zfs snapshot of %v: %w", paths, ErrUnsupported)
}

// Path fails with ErrUnsupported.
func (v *View) Path(original string) (string, error) {
	return "", fmt.Errorf("map %s into zfs view: %w", original, ErrUnsupported)
}

// Release has nothing to release.
func (v *View) Release(ctx context.Context) error { return nil }

// Cleanup fails with ErrUnsupported.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	return nil, fmt.Errorf("zfs cleanup: %w", ErrUnsupported)
}
