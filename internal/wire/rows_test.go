package wire

import (
	"reflect"
	"strings"
	"testing"
)

func sampleRows() *RowsAnnounce {
	return &RowsAnnounce{Job: "realtime", Version: 5, Base: 4, Origin: "pbx1", Hash: make([]byte, 32), Size: 100, Rows: 3,
		Schema: []TableSchema{{Table: "ps_endpoints", Columns: []Column{{Name: "id", Type: "character varying(40)"}, {Name: "context", Type: "text"}}, Key: []string{"id"}}}}
}

func TestRowsRoundTrip(t *testing.T) {
	c := newCodec(t)
	for _, m := range []Message{sampleRows(), &RowsHave{Job: "realtime", Version: 3}} {
		b, err := c.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %#v, want %#v", got, m)
		}
	}
}

func TestRowsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(m *RowsAnnounce)
		want string
	}{
		"no version":   {func(m *RowsAnnounce) { m.Version = 0 }, "version 0"},
		"base after":   {func(m *RowsAnnounce) { m.Base = 9 }, "base"},
		"short hash":   {func(m *RowsAnnounce) { m.Hash = m.Hash[:3] }, "hash"},
		"no tables":    {func(m *RowsAnnounce) { m.Schema = nil }, "tables"},
		"bad key":      {func(m *RowsAnnounce) { m.Schema[0].Key = []string{"nope"} }, "key column"},
		"dup column":   {func(m *RowsAnnounce) { m.Schema[0].Columns[1].Name = "id" }, "twice"},
		"nul in table": {func(m *RowsAnnounce) { m.Schema[0].Table = "a\x00b" }, "NUL"},
	} {
		m := sampleRows()
		tc.mod(m)
		err := m.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}

func FuzzDecodeRows(f *testing.F) {
	c := newCodec(f)
	for _, m := range []Message{sampleRows(), &RowsHave{Job: "j", Version: 1}} {
		b, err := c.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := c.Decode(b)
		if err != nil {
			return
		}
		if r, ok := m.(*RowsAnnounce); ok && ValidateSchema(r.Schema) != nil {
			t.Fatal("invalid schema passed")
		}
		if _, err := c.Encode(m); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
	})
}
