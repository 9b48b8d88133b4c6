// Package history reads a job's generations from the store for
// `pbxsync history`, `pbxsync diff` and the dashboard's /api/v1 endpoints:
// one implementation of the list and of the comparison of two generations,
// so the command line and the web show the same thing.
package history
