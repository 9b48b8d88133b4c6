package hostmon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"pbxsync/internal/wire"
)

// Changeset is the content of one generation of a postgres job: per
// table, the keys of deleted rows and the final version of inserted or
// updated rows since the base generation, or, for a snapshot, every row.
// A key appears at most once per table.
type Changeset struct {
	Base     uint64
	Snapshot bool
	Schema   []wire.TableSchema
	Tables   map[string]*TableChanges
}

// TableChanges are the changes of one table. Deletes are JSON objects
// holding (at least) the key columns; Upserts are whole rows as to_jsonb
// makes them.
type TableChanges struct {
	Deletes []json.RawMessage
	Upserts []json.RawMessage
}

// Rows counts the deletes and upserts of cs.
func (cs *Changeset) Rows() int {
	n := 0
	for _, tc := range cs.Tables {
		n += len(tc.Deletes) + len(tc.Upserts)
	}
	return n
}

// Changed lists the tables that have changes (all tables of a snapshot),
// in schema order.
func (cs *Changeset) Changed() []string {
	var out []string
	for _, t := range cs.Schema {
		if tc := cs.Tables[t.Table]; cs.Snapshot || (tc != nil && len(tc.Deletes)+len(tc.Upserts) > 0) {
			out = append(out, t.Table)
		}
	}
	return out
}

// keyOf returns a canonical string of the key columns of a JSON row (or
// key object) and a JSON object holding just those columns.
func keyOf(t *wire.TableSchema, row json.RawMessage) (string, json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(row, &m); err != nil {
		return "", nil, fmt.Errorf("table %s: row is not a JSON object: %w", t.Table, err)
	}
	vals := make([]json.RawMessage, len(t.Key))
	obj := make(map[string]json.RawMessage, len(t.Key))
	for i, k := range t.Key {
		v, ok := m[k]
		if !ok {
			return "", nil, fmt.Errorf("table %s: row lacks key column %s", t.Table, k)
		}
		vals[i], obj[k] = v, v
	}
	ks, _ := json.Marshal(vals)
	ko, _ := json.Marshal(obj)
	return string(ks), ko, nil
}

// Collapse turns change-log entries (in id order) into a changeset based
// on base: per key the final row, or its deletion. An update of a key
// column deletes the old key and upserts the new row. Entries of tables
// not in schema are ignored.
func Collapse(base uint64, schema []wire.TableSchema, changes []RowChange) (*Changeset, error) {
	type final struct {
		row json.RawMessage // nil: deleted
		key json.RawMessage
	}
	byTable := map[string]*wire.TableSchema{}
	for i := range schema {
		byTable[schema[i].Table] = &schema[i]
	}
	finals := map[string]map[string]*final{}
	order := map[string][]string{}
	set := func(table, k string, f *final) {
		m := finals[table]
		if m == nil {
			m = map[string]*final{}
			finals[table] = m
		}
		if _, seen := m[k]; !seen {
			order[table] = append(order[table], k)
		}
		m[k] = f
	}
	for _, c := range changes {
		t := byTable[c.Table]
		if t == nil {
			continue
		}
		var oldKey string
		if c.Op == 'U' || c.Op == 'D' {
			k, ko, err := keyOf(t, c.OldKey)
			if err != nil {
				return nil, fmt.Errorf("change %d: %w", c.ID, err)
			}
			oldKey = k
			set(c.Table, k, &final{key: ko})
		}
		if c.Op == 'I' || c.Op == 'U' {
			k, ko, err := keyOf(t, c.Row)
			if err != nil {
				return nil, fmt.Errorf("change %d: %w", c.ID, err)
			}
			if c.Op == 'U' && k == oldKey {
				finals[c.Table][k] = &final{row: c.Row, key: ko}
			} else {
				set(c.Table, k, &final{row: c.Row, key: ko})
			}
		}
		if c.Op != 'I' && c.Op != 'U' && c.Op != 'D' {
			return nil, fmt.Errorf("change %d of table %s: unknown operation %q", c.ID, c.Table, c.Op)
		}
	}
	cs := &Changeset{Base: base, Schema: schema, Tables: map[string]*TableChanges{}}
	for table, keys := range order {
		tc := &TableChanges{}
		for _, k := range keys {
			f := finals[table][k]
			if f.row == nil {
				tc.Deletes = append(tc.Deletes, f.key)
			} else {
				tc.Upserts = append(tc.Upserts, f.row)
			}
		}
		cs.Tables[table] = tc
	}
	return cs, nil
}

// changesetHeader is the first line of an encoded changeset.
type changesetHeader struct {
	Format   int                `json:"pbxsync_rows"`
	Base     uint64             `json:"base"`
	Snapshot bool               `json:"snapshot"`
	Schema   []wire.TableSchema `json:"schema"`
}

type changesetLine struct {
	Table  string          `json:"t"`
	Delete json.RawMessage `json:"d,omitempty"`
	Upsert json.RawMessage `json:"u,omitempty"`
}

// MaxRowLine bounds one encoded row.
const MaxRowLine = 256 << 20

// Encode writes cs as JSON lines: a header, then one line per delete and
// per upsert, table by table in schema order.
func (cs *Changeset) Encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(changesetHeader{Format: 1, Base: cs.Base, Snapshot: cs.Snapshot, Schema: cs.Schema}); err != nil {
		return err
	}
	for _, t := range cs.Schema {
		tc := cs.Tables[t.Table]
		if tc == nil {
			continue
		}
		for _, d := range tc.Deletes {
			if err := enc.Encode(changesetLine{Table: t.Table, Delete: d}); err != nil {
				return err
			}
		}
		for _, u := range tc.Upserts {
			if err := enc.Encode(changesetLine{Table: t.Table, Upsert: u}); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// DecodeChangeset reads what Encode wrote, validating the header's schema
// and every line: a known table and exactly one JSON object.
func DecodeChangeset(r io.Reader) (*Changeset, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), MaxRowLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("rows: %w", err)
		}
		return nil, errors.New("rows: empty")
	}
	var h changesetHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return nil, fmt.Errorf("rows: header: %w", err)
	}
	if h.Format != 1 {
		return nil, fmt.Errorf("rows: format %d, want 1", h.Format)
	}
	if err := wire.ValidateSchema(h.Schema); err != nil {
		return nil, fmt.Errorf("rows: header: %w", err)
	}
	cs := &Changeset{Base: h.Base, Snapshot: h.Snapshot, Schema: h.Schema, Tables: map[string]*TableChanges{}}
	for _, t := range h.Schema {
		cs.Tables[t.Table] = &TableChanges{}
	}
	for n := 2; sc.Scan(); n++ {
		var l changesetLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("rows: line %d: %w", n, err)
		}
		tc := cs.Tables[l.Table]
		if tc == nil {
			return nil, fmt.Errorf("rows: line %d: table %q is not in the schema", n, truncate(l.Table, 40))
		}
		isObj := func(b json.RawMessage) bool { return len(b) > 0 && b[0] == '{' }
		switch {
		case isObj(l.Delete) && len(l.Upsert) == 0:
			tc.Deletes = append(tc.Deletes, bytes.Clone(l.Delete))
		case isObj(l.Upsert) && len(l.Delete) == 0:
			tc.Upserts = append(tc.Upserts, bytes.Clone(l.Upsert))
		default:
			return nil, fmt.Errorf("rows: line %d: want one object under d or u", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	return cs, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// applyChunk bounds the rows sent in one statement.
const applyChunk = 5000

// jsonArray joins JSON values into one JSON array.
func jsonArray(rows []json.RawMessage) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r)
	}
	b.WriteByte(']')
	return b.String()
}

func chunks(rows []json.RawMessage, f func([]json.RawMessage) error) error {
	for len(rows) > 0 {
		n := min(len(rows), applyChunk)
		if err := f(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func keyJoin(t *wire.TableSchema, a, b string) string {
	var conds []string
	for _, k := range t.Key {
		c := pgx.Identifier{k}.Sanitize()
		conds = append(conds, fmt.Sprintf("%s.%s = %s.%s", a, c, b, c))
	}
	return strings.Join(conds, " AND ")
}

// Apply applies cs in one transaction as version of job, with
// pbxsync.applying set so that capture triggers ignore these writes:
// deletes (tables in reverse order), then upserts (INSERT … ON CONFLICT
// on the key) or, for a snapshot, the replacement of every table's rows.
// Before changing anything it reads the affected rows as they are and
// passes them to saveBefore (if not nil) as the changeset that undoes cs;
// an error from saveBefore aborts. The applied version is recorded in the
// same transaction. Any error rolls everything back.
func Apply(ctx context.Context, db PGConn, job string, version uint64, cs *Changeset, saveBefore func(*Changeset) error) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT set_config('pbxsync.applying', 'on', true)"); err != nil {
		return fmt.Errorf("set pbxsync.applying: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
		return fmt.Errorf("defer constraints: %w", err)
	}
	if saveBefore != nil {
		before := &Changeset{Base: version, Snapshot: cs.Snapshot, Schema: cs.Schema, Tables: map[string]*TableChanges{}}
		for i := range cs.Schema {
			t := &cs.Schema[i]
			tc := cs.Tables[t.Table]
			var rows pgx.Rows
			bt := &TableChanges{}
			switch {
			case cs.Snapshot:
				rows, err = tx.Query(ctx, fmt.Sprintf("SELECT to_jsonb(t) FROM %s t FOR UPDATE", Ident(t.Table)))
			case tc != nil && len(tc.Deletes)+len(tc.Upserts) > 0:
				bt.Deletes = append(append(bt.Deletes, tc.Deletes...), tc.Upserts...)
				// each row once, also when its key is both deleted and
				// upserted (a mesh job's changed row): an upsert of the
				// same key twice is an error, and the undo would fail
				rows, err = tx.Query(ctx, fmt.Sprintf("SELECT to_jsonb(t) FROM %[1]s t WHERE EXISTS (SELECT 1 FROM jsonb_populate_recordset(NULL::%[1]s, $1::jsonb) k WHERE %[2]s) FOR UPDATE OF t",
					Ident(t.Table), keyJoin(t, "t", "k")), jsonArray(bt.Deletes))
			default:
				continue
			}
			if err != nil {
				return fmt.Errorf("table %s: read rows before the change: %w", t.Table, err)
			}
			for rows.Next() {
				var b []byte
				if err := rows.Scan(&b); err != nil {
					rows.Close()
					return fmt.Errorf("table %s: read rows before the change: %w", t.Table, err)
				}
				bt.Upserts = append(bt.Upserts, b)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("table %s: read rows before the change: %w", t.Table, err)
			}
			before.Tables[t.Table] = bt
		}
		if err := saveBefore(before); err != nil {
			return fmt.Errorf("keep the rows before the change: %w", err)
		}
	}
	if err := applyRows(ctx, tx, cs); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pbxsync.applied (job, version) VALUES ($1, $2)
		ON CONFLICT (job) DO UPDATE SET version = EXCLUDED.version, at = now()`, job, int64(version)); err != nil {
		return fmt.Errorf("record applied version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// applyRows runs the deletes (tables in reverse order), then the upserts
// of cs in tx; a snapshot first empties every table.
func applyRows(ctx context.Context, tx pgx.Tx, cs *Changeset) error {
	for i := len(cs.Schema) - 1; i >= 0; i-- {
		t := &cs.Schema[i]
		if cs.Snapshot {
			if _, err := tx.Exec(ctx, "DELETE FROM "+Ident(t.Table)); err != nil {
				return fmt.Errorf("table %s: delete all rows: %w", t.Table, err)
			}
			continue
		}
		tc := cs.Tables[t.Table]
		if tc == nil {
			continue
		}
		sql := fmt.Sprintf("DELETE FROM %[1]s t USING jsonb_populate_recordset(NULL::%[1]s, $1::jsonb) k WHERE %[2]s", Ident(t.Table), keyJoin(t, "t", "k"))
		if err := chunks(tc.Deletes, func(rs []json.RawMessage) error {
			_, err := tx.Exec(ctx, sql, jsonArray(rs))
			return err
		}); err != nil {
			return fmt.Errorf("table %s: delete: %w", t.Table, err)
		}
	}
	for i := range cs.Schema {
		t := &cs.Schema[i]
		tc := cs.Tables[t.Table]
		if tc == nil || len(tc.Upserts) == 0 {
			continue
		}
		if err := chunks(tc.Upserts, func(rs []json.RawMessage) error {
			_, err := tx.Exec(ctx, upsertSQL(t), jsonArray(rs))
			return err
		}); err != nil {
			return fmt.Errorf("table %s: upsert: %w", t.Table, err)
		}
	}
	return nil
}

func upsertSQL(t *wire.TableSchema) string {
	cols := make([]string, len(t.Columns))
	isKey := map[string]bool{}
	for _, k := range t.Key {
		isKey[k] = true
	}
	var sets, keys []string
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
		if !isKey[c.Name] {
			sets = append(sets, cols[i]+" = EXCLUDED."+cols[i])
		}
	}
	for _, k := range t.Key {
		keys = append(keys, pgx.Identifier{k}.Sanitize())
	}
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	c := strings.Join(cols, ", ")
	return fmt.Sprintf("INSERT INTO %[1]s (%[2]s) SELECT %[2]s FROM jsonb_populate_recordset(NULL::%[1]s, $1::jsonb) ON CONFLICT (%[3]s) %[4]s",
		Ident(t.Table), c, strings.Join(keys, ", "), action)
}
