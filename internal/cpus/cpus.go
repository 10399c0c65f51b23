package cpus

import "runtime"

// N is the number of CPUs to size CPU-bound worker pools by.
var N = runtime.GOMAXPROCS(0)
