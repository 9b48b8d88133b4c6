package scratch

import (
	"fmt"
	"os"
)

// Create makes a new file in dir (named after pattern, as os.CreateTemp
// does) and unlinks it: the returned file, open for reading and writing,
// is the only way to it. Close frees its blocks.
func Create(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("scratch file in %s: %w", dir, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("scratch file in %s: %w", dir, err)
	}
	return f, nil
}
