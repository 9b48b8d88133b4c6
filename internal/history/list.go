package history

import (
	"context"
	"io"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// Reader is the part of the store history reads: a live store (the agent's)
// or a read-only copy (store.OpenReadOnly) alike.
type Reader interface {
	Generations(job string) ([]store.GenerationInfo, error)
	Generation(job string, n uint64) (*store.Generation, error)
	CopyTo(ctx context.Context, h index.Hash, w io.Writer) (int64, error)
	Conflicts(job string) ([]store.Conflict, error)
}

// List returns job's generations, oldest first; never nil, so that its
// JSON is [] for a job without any (`pbxsync history --json`).
func List(st Reader, job string) ([]store.GenerationInfo, error) {
	gens, err := st.Generations(job)
	if err != nil {
		return nil, err
	}
	if gens == nil {
		gens = []store.GenerationInfo{}
	}
	return gens, nil
}
