// Package scratch makes files that only the process that made them sees:
// created in a directory and unlinked at once, so that nothing of them
// outlives it (a crash included) and their pages are the page cache's,
// not the process's memory. The agent moves an idle job's scan state and
// served set into such files (hostmon.States.Spill, syncer's
// servedFile) and reads them back with pread.
package scratch
