//go:build !linux

package lvm

import (
	"context"
	"fmt"
)

// View is never made off Linux.
type View struct{}

// Supported reports false: LVM exists only on Linux.
func Supported(path string) (bool, error) { return false, nil }

// Take fails with ErrUnsupported.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	return nil, fmt.Errorf("lvm snapshot of %v: %w", paths, ErrUnsupported)
}

// Path fails with ErrUnsupported.
func (v *View) Path(original string) (string, error) {
	return "", fmt.Errorf("lvm view path %s: %w", original, ErrUnsupported)
}

// Release has nothing to release.
func (v *View) Release(ctx context.Context) error { return nil }

// Cleanup fails with ErrUnsupported.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	return nil, fmt.Errorf("lvm cleanup: %w", ErrUnsupported)
}
