// Package config loads and checks the pbxsync TOML configuration of one host
// (/etc/pbxsync/pbxsync.toml).
//
// Load and Parse decode the file strictly (an unknown key or a value of the
// wrong type is an error), validate every value and every reference between
// sections (job sources and targets, hook peers), fill in the defaults and
// return a Config. Problems are reported all at once as an ErrorList whose
// lines read FILE:LINE:COL: message, so that an admin can fix every mistake
// in one edit; `pbxsync check` prints exactly that. Example returns a
// commented example configuration that passes Parse.
//
// The package does no I/O beyond reading the file given to Load.
package config
