package syncer

import "runtime/debug"

// largeGeneration is the number of changed paths from which a generation
// counts as large (an initial sync of a big job): once it is done, the
// memory its messages, lists and copies took is handed back to the system
// at once (releaseMemory), instead of staying in the process's heap, and
// in its RSS, for minutes.
const largeGeneration = 10000

// releaseMemory runs a garbage collection and returns freed memory to the
// system. It costs one collection; it runs after a large generation only.
func releaseMemory() { debug.FreeOSMemory() }

// noteGeneration marks the job for releaseMemory when a generation of n
// changed paths is large.
func (j *job) noteGeneration(n int) {
	if n >= largeGeneration {
		j.release = true
	}
}
