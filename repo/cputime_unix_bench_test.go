//go:build unix

package repo_test

import (
	"syscall"
	"time"
)

// processCPUTime is user+system CPU time of the test process.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
