package hostmon

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pbxsync/internal/pgtest"
	"pbxsync/internal/wire"
)

const endpointsDDL = `CREATE TABLE ps_endpoints (id varchar(40) PRIMARY KEY, transport varchar(40), aors varchar(200), context varchar(40), allow varchar(200), direct_media text)`

func pgDump(t *testing.T, c *pgx.Conn) string {
	t.Helper()
	rows, err := c.Query(context.Background(), "SELECT to_jsonb(t)::text FROM ps_endpoints t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	s, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(s, "\n")
}

func mustExec(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// ship collapses the source's change log, round-trips it through the
// encoding, applies it to dst and trims the log.
func ship(t *testing.T, src, dst *pgx.Conn, schema []wire.TableSchema, version uint64) *Changeset {
	t.Helper()
	ctx := context.Background()
	ch, err := ReadChanges(ctx, src, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Collapse(version-1, schema, ch)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := cs.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	cs2, err := DecodeChangeset(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var before *Changeset
	if err := Apply(ctx, dst, "rt", version, cs2, func(b *Changeset) error { before = b; return nil }); err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(ch))
	for i, c := range ch {
		ids[i] = c.ID
	}
	if err := DeleteChanges(ctx, src, ids); err != nil {
		t.Fatal(err)
	}
	return before
}

func TestPGCaptureAndApply(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	src, dst := pgtest.Connect(t, srv.NewDB(t)), pgtest.Connect(t, srv.NewDB(t))
	mustExec(t, src, endpointsDDL)
	mustExec(t, dst, endpointsDDL)
	schema, err := ReadSchema(ctx, src, []string{"ps_endpoints"})
	if err != nil {
		t.Fatal(err)
	}
	if got := schema[0].Key; len(got) != 1 || got[0] != "id" {
		t.Fatalf("key %v", got)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := Install(ctx, src, schema); err != nil {
			t.Fatal(err)
		}
	}
	if err := Install(ctx, dst, nil); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, `INSERT INTO ps_endpoints VALUES ('1001','udp','1001','from-internal','ulaw','no'), ('1002','udp','1002','x','ulaw',NULL), ('1003','udp','1003','x','alaw','it''s')`)
	ship(t, src, dst, schema, 1)
	if a, b := pgDump(t, src), pgDump(t, dst); a != b {
		t.Fatalf("after insert:\n%s\n---\n%s", a, b)
	}
	mustExec(t, src, `UPDATE ps_endpoints SET context='sales' WHERE id='1001'`)
	mustExec(t, src, `UPDATE ps_endpoints SET id='2002' WHERE id='1002'`)
	mustExec(t, src, `DELETE FROM ps_endpoints WHERE id='1003'`)
	mustExec(t, src, `INSERT INTO ps_endpoints VALUES ('1003','tcp','1003','y','g722','yes')`) // re-insert after delete
	mustExec(t, src, `UPDATE ps_endpoints SET id='1002' WHERE id='2002'`)                      // and back
	mustExec(t, src, `UPDATE ps_endpoints SET id='3001' WHERE id='1001'`)
	beforeDump := pgDump(t, dst)
	before := ship(t, src, dst, schema, 2)
	if a, b := pgDump(t, src), pgDump(t, dst); a != b {
		t.Fatalf("after updates:\n%s\n---\n%s", a, b)
	}
	// the target's own writes were not captured
	if ch, _ := ReadChanges(ctx, dst, 10); len(ch) != 0 {
		t.Fatalf("apply was captured on the target: %v", ch)
	}
	if v, err := AppliedVersion(ctx, dst, "rt"); err != nil || v != 2 {
		t.Fatalf("applied version %d, %v", v, err)
	}
	// the before image restores the previous rows exactly
	if err := Apply(ctx, dst, "rt", 1, before, nil); err != nil {
		t.Fatal(err)
	}
	if got := pgDump(t, dst); got != beforeDump {
		t.Fatalf("restore:\n%s\nwant\n%s", got, beforeDump)
	}
	// a snapshot replaces everything
	mustExec(t, dst, `SELECT set_config('pbxsync.applying','on',false); INSERT INTO ps_endpoints VALUES ('junk','udp','','','','')`)
	snap, ids, err := Snapshot(ctx, src, schema)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Fatalf("change log not empty: %v", ids)
	}
	if err := Apply(ctx, dst, "rt", 3, snap, nil); err != nil {
		t.Fatal(err)
	}
	if a, b := pgDump(t, src), pgDump(t, dst); a != b {
		t.Fatalf("after snapshot:\n%s\n---\n%s", a, b)
	}
}

// applyTarget returns a new database with ps_endpoints and pbxsync's
// schema, as a target of Apply, and the table's schema.
func applyTarget(t *testing.T) (*pgx.Conn, []wire.TableSchema) {
	t.Helper()
	dst := pgtest.Connect(t, pgtest.Start(t).NewDB(t))
	mustExec(t, dst, endpointsDDL)
	if err := Install(context.Background(), dst, nil); err != nil {
		t.Fatal(err)
	}
	schema, err := ReadSchema(context.Background(), dst, []string{"ps_endpoints"})
	if err != nil {
		t.Fatal(err)
	}
	return dst, schema
}

func TestPGApplyErrorRollsBack(t *testing.T) {
	ctx := context.Background()
	dst, schema := applyTarget(t)
	cs := &Changeset{Schema: schema, Tables: map[string]*TableChanges{"ps_endpoints": {Upserts: []json.RawMessage{
		[]byte(`{"id":"ok","transport":"udp"}`), []byte(`{"id":"bad","transport":"` + strings.Repeat("x", 50) + `"}`)}}}}
	err := Apply(ctx, dst, "rt", 1, cs, nil)
	if err == nil || !strings.Contains(err.Error(), "too long") || !strings.Contains(err.Error(), "ps_endpoints") {
		t.Fatalf("want the database's error naming the table, got %v", err)
	}
	if d := pgDump(t, dst); d != "" {
		t.Fatalf("partly applied: %s", d)
	}
}

// TestPGApplyBeforeOfAKeyDeletedAndUpserted: a changeset that lists a
// changed row's key among its deletes and the row among its upserts (as a
// mesh job's does) gets a before image with that row once, which puts the
// row back. It held the row twice, and undoing failed ("ON CONFLICT DO
// UPDATE command cannot affect row a second time").
func TestPGApplyBeforeOfAKeyDeletedAndUpserted(t *testing.T) {
	ctx := context.Background()
	dst, schema := applyTarget(t)
	mustExec(t, dst, `INSERT INTO ps_endpoints VALUES ('1001','udp','1001','good','ulaw','no')`)
	want := pgDump(t, dst)
	cs := &Changeset{Schema: schema, Tables: map[string]*TableChanges{"ps_endpoints": {
		Deletes: []json.RawMessage{[]byte(`{"id":"1001"}`)},
		Upserts: []json.RawMessage{[]byte(`{"id":"1001","transport":"udp","aors":"1001","context":"BAD","allow":"ulaw","direct_media":"no"}`)}}}}
	var before *Changeset
	if err := Apply(ctx, dst, "rt", 1, cs, func(b *Changeset) error { before = b; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := pgDump(t, dst); !strings.Contains(got, "BAD") {
		t.Fatalf("not applied: %s", got)
	}
	if n := len(before.Tables["ps_endpoints"].Upserts); n != 1 {
		t.Errorf("the before image holds the row %d times", n)
	}
	if err := Apply(ctx, dst, "rt", 0, before, nil); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if got := pgDump(t, dst); got != want {
		t.Fatalf("undo:\n%s\nwant\n%s", got, want)
	}
}

func TestCompareSchema(t *testing.T) {
	a := []wire.TableSchema{{Table: "ps_endpoints", Columns: []wire.Column{{Name: "id", Type: "text"}, {Name: "context", Type: "text"}}, Key: []string{"id"}}}
	b := []wire.TableSchema{{Table: "ps_endpoints", Columns: []wire.Column{{Name: "id", Type: "text"}, {Name: "context", Type: "integer"}, {Name: "extra", Type: "text"}}, Key: []string{"id"}}}
	if err := CompareSchema(a, a); err != nil {
		t.Fatal(err)
	}
	err := CompareSchema(a, b)
	for _, want := range []string{"ps_endpoints", "context is text on the source, integer on the target", "extra text exists only on the target"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func FuzzDecodeChangeset(f *testing.F) {
	schema := []wire.TableSchema{{Table: "t", Columns: []wire.Column{{Name: "id", Type: "text"}}, Key: []string{"id"}}}
	var buf bytes.Buffer
	(&Changeset{Base: 1, Schema: schema, Tables: map[string]*TableChanges{"t": {Deletes: []json.RawMessage{[]byte(`{"id":"a"}`)}, Upserts: []json.RawMessage{[]byte(`{"id":"b"}`)}}}}).Encode(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeChangeset(bytes.NewReader(b))
		if err != nil {
			return
		}
		if wire.ValidateSchema(cs.Schema) != nil {
			t.Fatal("invalid schema decoded")
		}
		var out bytes.Buffer
		if err := cs.Encode(&out); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeChangeset(&out); err != nil {
			t.Fatalf("re-encoded changeset does not decode: %v", err)
		}
	})
}
