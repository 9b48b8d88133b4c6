package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"text/tabwriter"
	"time"

	"pbxsync/internal/store"
)

// conflictJSON is one record as `pbxsync conflicts --json` prints it.
type conflictJSON struct {
	ID     string     `json:"id"`
	Path   string     `json:"path"`
	Time   time.Time  `json:"time"`
	Winner sideJSON   `json:"winner"`
	Loser  loserJSON  `json:"loser"`
	Reason string     `json:"reason,omitempty"` // the loser failed this member's checks
	Row    rawOrEmpty `json:"row,omitempty"`
}

type sideJSON struct {
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	Hash       string `json:"hash"` // "" for a deletion
	Deleted    bool   `json:"deleted,omitempty"`
}

type loserJSON struct {
	Node    string `json:"node"`
	Hash    string `json:"hash"` // "" for a deletion
	Deleted bool   `json:"deleted,omitempty"`
}

type rawOrEmpty = json.RawMessage

func hashText(c store.ConflictSide) string {
	if c.Deleted || c.Hash.IsZero() {
		return ""
	}
	return c.Hash.String()
}

func cmdConflicts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("conflicts", "[--config FILE] --job JOB [--json | --get ID]",
		"Lists the conflicts of a mesh job: concurrent versions of a file, the winner\nlive on every member, the loser kept in this node's store (works whether or not\nthe agent runs). --json prints an array of objects: id, path, time,\nwinner{node, generation, hash} and loser{node, hash}. --get ID writes the losing\ncontent to stdout.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	get := fs.String("get", "", "write the losing content of conflict `ID` to stdout")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, ok := loadJobConfig("conflicts", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	st, err := store.OpenReadOnly(filepath.Join(cfg.Node.DataDir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync conflicts:", err)
		return 1
	}
	defer st.Close()
	cs, err := st.Conflicts(*jobName)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync conflicts:", err)
		return 1
	}
	if *get != "" {
		for _, c := range cs {
			if c.ID != *get {
				continue
			}
			switch {
			case len(c.Row) > 0:
				fmt.Fprintln(stdout, string(c.Row))
				return 0
			case c.Loser.Deleted:
				fmt.Fprintf(stderr, "pbxsync conflicts: conflict %s of %s: the losing version is a deletion on %s; it has no content\n", c.ID, c.Path, c.Loser.Node)
				return 1
			}
			if err := st.CopyTo(ctx, c.Loser.Hash, stdout); err != nil {
				fmt.Fprintf(stderr, "pbxsync conflicts: conflict %s of %s: %v\n", c.ID, c.Path, err)
				return 1
			}
			return 0
		}
		fmt.Fprintf(stderr, "pbxsync conflicts: job %q has no conflict %q on this node (list them with --json)\n", *jobName, *get)
		return 1
	}
	if *asJSON {
		out := make([]conflictJSON, 0, len(cs))
		for _, c := range cs {
			out = append(out, conflictJSON{ID: c.ID, Path: c.Path, Time: c.Time, Row: c.Row, Reason: c.Reason,
				Winner: sideJSON{Node: c.Winner.Node, Generation: c.Winner.Generation, Hash: hashText(c.Winner), Deleted: c.Winner.Deleted},
				Loser:  loserJSON{Node: c.Loser.Node, Hash: hashText(c.Loser), Deleted: c.Loser.Deleted}})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tPATH\tWINNER\tLOSER")
	for _, c := range cs {
		loser := c.Loser.Node
		if c.Loser.Deleted {
			loser += " (delete)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (gen %d)\t%s\n", c.ID, c.Time.Local().Format(time.DateTime), c.Path, c.Winner.Node, c.Winner.Generation, loser)
	}
	tw.Flush()
	return 0
}
