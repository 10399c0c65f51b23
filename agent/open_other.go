//go:build !linux

package agent

import "os"

func openNoAtime(path string) (*os.File, error) { return os.Open(path) }

func openDirNoAtime(path string) (*os.File, error) { return os.Open(path) }
