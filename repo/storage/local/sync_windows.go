//go:build windows

package local

// syncDir does nothing on Windows, where directories cannot be fsynced and
// MoveFileEx already makes a rename durable.
func syncDir(string) error { return nil }
