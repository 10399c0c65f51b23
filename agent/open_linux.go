package agent

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// openNoAtime opens a file for reading without updating its atime where
// the kernel allows it (owner or root), and never follows a symlink that
// replaced the file after it was listed.
func openNoAtime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	return f, err
}
