package guest

import (
	"runtime"
	"runtime/debug"
)

// TuneProcess sets the process-wide runtime settings the X forward is
// measured fastest with (bench/x11perf, the "xvmview" column) and returns a
// function that restores the previous ones:
//
//   - one P: every X request crosses three goroutines inside x/crypto/ssh
//     (reader, mux, channel). With more Ps each hand-off wakes an idle
//     thread on another CPU to run it, and those cross-CPU wake-ups cost
//     more than the work; with one P the hand-offs stay on one thread
//     (round trips 5,800 -> 9,200/s, PutImage +40%).
//   - GOGC=400: x/crypto/ssh allocates each received packet afresh; fewer
//     collections save about a fifth of the CPU per MB received.
//   - a soft memory limit of 32 MiB (MemoryLimit): with GOGC=400 the heap
//     may otherwise grow to five times what is live, and a guest streaming
//     X data as fast as it can makes that garbage fast. A launcher's live
//     heap is a few MiB, so the limit costs nothing in the normal case; it
//     bounds the garbage a hostile guest makes (the forward bounds what
//     stays live, see ForwardX).
//
// Nothing else in a launcher needs parallelism. It is for main (and
// benchmarks), not for a library caller: the settings are process-wide.
func TuneProcess() (restore func()) {
	procs := runtime.GOMAXPROCS(1)
	gc := debug.SetGCPercent(400)
	limit := debug.SetMemoryLimit(MemoryLimit)
	return func() {
		runtime.GOMAXPROCS(procs)
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	}
}

// MemoryLimit is the soft limit TuneProcess sets on the Go runtime's memory.
const MemoryLimit = 32 << 20
