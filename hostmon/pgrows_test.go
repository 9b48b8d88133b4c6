package hostmon

import (
	"encoding/json"
	"strings"
	"testing"

	"pbxsync/internal/wire"
)

var rowsSchema = []wire.TableSchema{{Table: "ext", Key: []string{"id"}, Columns: []wire.Column{{Name: "id", Type: "int4"}, {Name: "app", Type: "text"}}}}

func rows(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func dump(cs *Changeset) string {
	tc := cs.Tables["ext"]
	if tc == nil {
		return "-"
	}
	var b strings.Builder
	for _, d := range tc.Deletes {
		b.WriteString("D" + string(d) + " ")
	}
	for _, u := range tc.Upserts {
		b.WriteString("U" + string(u) + " ")
	}
	return strings.TrimSpace(b.String())
}

func TestReplay(t *testing.T) {
	snap := &Changeset{Snapshot: true, Schema: rowsSchema, Tables: map[string]*TableChanges{"ext": {Upserts: rows(`{"id": 1, "app": "Answer"}`, `{"id": 2, "app": "Dial"}`)}}}
	upd := &Changeset{Schema: rowsSchema, Tables: map[string]*TableChanges{"ext": {Deletes: rows(`{"id": 1}`), Upserts: rows(`{"id": 2, "app": "Hangup"}`, `{"id": 3, "app": "Wait"}`)}}}
	snap2 := &Changeset{Snapshot: true, Schema: rowsSchema, Tables: map[string]*TableChanges{"ext": {Upserts: rows(`{"id": 9, "app": "X"}`)}}}
	for _, tc := range []struct {
		name  string
		chain []*Changeset
		want  string
		err   string
	}{
		{"snapshot only", []*Changeset{snap}, `U{"id": 1, "app": "Answer"} U{"id": 2, "app": "Dial"}`, ""},
		{"snapshot then changes", []*Changeset{snap, upd}, `U{"id": 2, "app": "Hangup"} U{"id": 3, "app": "Wait"}`, ""},
		{"a later snapshot starts over", []*Changeset{snap, upd, snap2}, `U{"id": 9, "app": "X"}`, ""},
		{"no snapshot first", []*Changeset{upd}, "", "does not start with a snapshot"},
		{"empty", nil, "", "does not start with a snapshot"},
	} {
		got, err := Replay(tc.chain)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Snapshot || dump(got) != tc.want {
			t.Errorf("%s: %v %q, want %q", tc.name, err, dump(got), tc.want)
		}
	}
}

func TestDiff(t *testing.T) {
	snap := func(ss ...string) *Changeset {
		return &Changeset{Snapshot: true, Schema: rowsSchema, Tables: map[string]*TableChanges{"ext": {Upserts: rows(ss...)}}}
	}
	for _, tc := range []struct {
		name      string
		cur, want *Changeset
		diff      string
	}{
		{"same", snap(`{"id": 1, "app": "A"}`), snap(`{"id": 1, "app": "A"}`), "-"},
		{"same value, other key order", snap(`{"app": "A", "id": 1}`), snap(`{"id": 1, "app": "A"}`), "-"},
		{"changed row", snap(`{"id": 1, "app": "A"}`), snap(`{"id": 1, "app": "B"}`), `U{"id": 1, "app": "B"}`},
		{"row to delete", snap(`{"id": 1, "app": "A"}`, `{"id": 2, "app": "B"}`), snap(`{"id": 1, "app": "A"}`), `D{"id":2}`},
		{"row to add back", snap(), snap(`{"id": 5, "app": "E"}`), `U{"id": 5, "app": "E"}`},
	} {
		d, err := Diff(rowsSchema, tc.cur, tc.want)
		if err != nil || d.Snapshot || dump(d) != tc.diff {
			t.Errorf("%s: %v %q, want %q", tc.name, err, dump(d), tc.diff)
		}
	}
}
