//go:build !linux

package directio

import (
	"errors"
	"os"
)

// setDirect reports that direct I/O is not used on this system: Writers
// and Readers go through the page cache.
func setDirect(*os.File, bool) error { return errors.New("direct I/O is used on Linux only") }
