// Package hostmon is the Local Host Monitor: it watches, scans and hashes
// the directory trees of file jobs on this host.
//
// A Filter says which paths of a job belong to it (include and exclude globs
// plus names pbxsync never syncs). Scan walks a job root and returns the
// state of every file and directory, hashing only what changed since a
// previous scan; ScanPaths re-scans just the paths a Watcher reported. A
// Watcher follows the tree with fsnotify and emits debounced Changes, or
// asks for a full rescan when events were lost.
//
// Database change capture and Asterisk and host health will also live here.
package hostmon
