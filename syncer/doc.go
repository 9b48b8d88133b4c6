// Package syncer is the Synchronization Controller: it keeps each job's
// tree on this host in step with the job's source, records every applied
// change as a numbered generation, and rolls back when a check fails.
//
// The decisions are pure (plan.go): given the local index and the desired
// index, Plan returns the ordered operations that turn one into the other;
// Changed lists what differs. The Agent (agent.go) executes plans: it owns
// one goroutine per job that takes local changes from hostmon, announcements
// and results from peers through remotemon, and control requests from the
// CLI, one at a time, so a job's state is never shared between goroutines.
// Applying is crash-safe (apply.go): content is staged and verified on the
// job's filesystem, an intent journal is fsynced, then everything is renamed
// into place; a journal left by a crash is rolled forward at start-up.
package syncer
