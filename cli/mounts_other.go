//go:build !linux

package cli

type mountPoint struct {
	path, fstype string
}

// mountsBelow is Linux-only for now: VSS and APFS snapshot whole volumes.
func mountsBelow(paths []string) ([]mountPoint, error) { return nil, nil }

var pseudoFS = map[string]bool{}
