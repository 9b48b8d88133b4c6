package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestConflictsCommand: --json prints the contract's fields, --get the
// losing content; a deletion has none to get; an unknown ID is an error.
func TestConflictsCommand(t *testing.T) {
	data := t.TempDir()
	st, err := store.Open(filepath.Join(data, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := st.PutReader(context.Background(), strings.NewReader("edit made on a\n"))
	if err != nil {
		t.Fatal(err)
	}
	win := index.Sum([]byte("edit made on c\n"))
	for _, c := range []store.Conflict{
		{ID: "aa11", Path: "shared.conf", Time: time.Unix(1700000000, 0).UTC(), Winner: store.ConflictSide{Node: "c", Generation: 7, Hash: win}, Loser: store.ConflictSide{Node: "a", Hash: h}},
		{ID: "bb22", Path: "gone.conf", Time: time.Unix(1700000001, 0).UTC(), Winner: store.ConflictSide{Node: "c", Generation: 8, Hash: win}, Loser: store.ConflictSide{Node: "a", Deleted: true}},
	} {
		if err := st.PutConflict("conf", c); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	cfg := writeConfig(t, data)

	var out, errb bytes.Buffer
	if code := run([]string{"conflicts", "--config", cfg, "--job", "conf", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("conflicts --json: exit %d: %s", code, errb.String())
	}
	var got []struct {
		ID     string    `json:"id"`
		Path   string    `json:"path"`
		Time   time.Time `json:"time"`
		Winner struct {
			Node       string `json:"node"`
			Generation uint64 `json:"generation"`
			Hash       string `json:"hash"`
		} `json:"winner"`
		Loser struct {
			Node    string `json:"node"`
			Hash    string `json:"hash"`
			Deleted bool   `json:"deleted"`
		} `json:"loser"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(got) != 2 || got[0].ID != "aa11" || got[0].Path != "shared.conf" || got[0].Winner.Node != "c" || got[0].Winner.Generation != 7 ||
		got[0].Winner.Hash != win.String() || got[0].Loser.Node != "a" || got[0].Loser.Hash != h.String() || !got[1].Loser.Deleted || got[1].Loser.Hash != "" {
		t.Errorf("conflicts --json:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"conflicts", "--config", cfg, "--job", "conf", "--get", "aa11"}, &out, &errb); code != 0 || out.String() != "edit made on a\n" {
		t.Errorf("--get aa11: exit %d, %q, %s", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"conflicts", "--config", cfg, "--job", "conf", "--get", "bb22"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is a deletion") {
		t.Errorf("--get of a deletion: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"conflicts", "--config", cfg, "--job", "conf", "--get", "nope"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `no conflict "nope"`) {
		t.Errorf("--get of an unknown ID: exit %d, %q", code, errb.String())
	}
}
