package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles starts the profiles that COSTOR_CPUPROFILE and
// COSTOR_MEMPROFILE ask for (a file name each) and returns the function
// that writes them out. They exist so that a real command on a real tree
// can be profiled with `go tool pprof`, not only the benchmarks.
func startProfiles() (stop func(), err error) {
	var stops []func()
	if path := os.Getenv("COSTOR_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("COSTOR_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("COSTOR_CPUPROFILE: %w", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if path := os.Getenv("COSTOR_MEMPROFILE"); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "costor: COSTOR_MEMPROFILE:", err)
				return
			}
			defer f.Close()
			runtime.GC()
			// allocs: every allocation since the start, which is what
			// points at garbage and peak heap alike.
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintln(os.Stderr, "costor: COSTOR_MEMPROFILE:", err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}, nil
}
