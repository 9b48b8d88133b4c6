// Package procmaps reads what the process has resident through its
// memory maps of a file (Linux /proc/self/smaps): how tests and
// benchmarks see the pages of bbolt's memory-mapped meta.db that count in
// an agent's RSS. DropPages takes mapped pages out of the resident set
// (the store's meta.db); ReleaseExecutable lets go of the resident pages
// of the agent's own executable.
package procmaps
