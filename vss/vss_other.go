//go:build !windows

package vss

import (
	"context"
	"fmt"
)

// Supported reports false: VSS exists only on Windows.
func Supported(path string) (bool, error) { return false, nil }

// Take fails with ErrUnsupported.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	return nil, fmt.Errorf("vss snapshot of %v: %w", paths, ErrUnsupported)
}

// Cleanup fails with ErrUnsupported.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	return nil, fmt.Errorf("vss cleanup: %w", ErrUnsupported)
}
