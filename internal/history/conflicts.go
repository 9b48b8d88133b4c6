package history

import (
	"encoding/json"
	"time"

	"pbxsync/internal/store"
)

// Conflict is one conflict record of a mesh job as `pbxsync conflicts
// --json` prints it and /api/v1/jobs/{job}/conflicts answers it.
type Conflict struct {
	ID     string    `json:"id"`
	Path   string    `json:"path"`
	Time   time.Time `json:"time"`
	Winner Winner    `json:"winner"`
	Loser  Loser     `json:"loser"`
	Reason string    `json:"reason,omitempty"` // the loser failed this member's checks
	// Row is the losing row of a postgres job as JSON: content, so only
	// where content may be shown (see Conflicts).
	Row json.RawMessage `json:"row,omitempty"`
}

// Winner is the version of a conflict that is live on every member.
type Winner struct {
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	Hash       string `json:"hash"` // "" for a deletion
	Deleted    bool   `json:"deleted,omitempty"`
}

// Loser is the version of a conflict kept in the store only.
type Loser struct {
	Node    string `json:"node"`
	Hash    string `json:"hash"` // "" for a deletion
	Deleted bool   `json:"deleted,omitempty"`
}

// Conflicts returns job's conflict records, oldest first; never nil, so
// that its JSON is [] for a job without any. rows adds the losing rows of
// a postgres job (content, which may hold secrets: the command line shows
// it, the read-only dashboard does not).
func Conflicts(st Reader, job string, rows bool) ([]Conflict, error) {
	cs, err := st.Conflicts(job)
	if err != nil {
		return nil, err
	}
	out := make([]Conflict, 0, len(cs))
	for _, c := range cs {
		v := Conflict{ID: c.ID, Path: c.Path, Time: c.Time, Reason: c.Reason,
			Winner: Winner{Node: c.Winner.Node, Generation: c.Winner.Generation, Hash: hashText(c.Winner), Deleted: c.Winner.Deleted},
			Loser:  Loser{Node: c.Loser.Node, Hash: hashText(c.Loser), Deleted: c.Loser.Deleted}}
		if rows {
			v.Row = c.Row
		}
		out = append(out, v)
	}
	return out, nil
}

func hashText(c store.ConflictSide) string {
	if c.Deleted || c.Hash.IsZero() {
		return ""
	}
	return c.Hash.String()
}
