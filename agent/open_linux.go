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

// openDirNoAtime opens a directory for listing without moving its atime:
// the atime is part of the directory's node in its parent's tree, so a
// listing that moved it would change every tree ID up to the root and
// defeat both tree dedup and a fast diff. Where O_NOATIME is refused (not
// the owner), relatime still limits the churn to once a day.
func openDirNoAtime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	return f, err
}
