// Package cpus says how many CPUs costor's CPU-bound work is sized for.
//
// N is the Go runtime's own default GOMAXPROCS (the CPUs the process may
// run on, within a cgroup's CPU quota, or GOMAXPROCS from the environment),
// read when the package is initialised: before a backup raises GOMAXPROCS
// so that goroutines blocked in file system calls do not idle the CPUs
// (cli/backup.go). Sealers, compression states and restore workers are
// sized by N, not by the raised GOMAXPROCS.
package cpus
