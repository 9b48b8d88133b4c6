// Package beneath opens and changes files below a directory without ever
// following a symlink on the way, so that a local user who swaps a
// directory or a file for a symlink between a check and a use cannot make
// pbxsync read or write outside a job root: every path element is opened
// relative to its parent's descriptor with O_NOFOLLOW, and the last
// element's mode and times are changed without following it either.
package beneath
