// Package history reads a job's generations and a mesh job's conflict
// records from the store for `pbxsync history`, `pbxsync diff`,
// `pbxsync conflicts` and the dashboard's /api/v1 endpoints: one
// implementation of the list, of the comparison of two generations and of
// the conflicts' view, so the command line and the web show the same thing.
package history
