//go:build unix

package crypto

import (
	"syscall"
	"time"
)

// processCPUTime is user+system CPU time of the test process. On a shared
// machine it measures the cost of the code rather than its share of the CPU.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
