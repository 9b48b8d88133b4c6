//go:build !linux

package syncer

import "io/fs"

// processUmask reports no mask elsewhere than on Linux: umask(2) cannot
// read it without setting it. Staged files then get their mode by chmod.
func processUmask() (mask fs.FileMode, ok bool) { return 0, false }
