package hostmon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pbxsync/internal/wire"
)

// CaptureVersion is the version of the objects pbxsync installs into its
// schema; Install upgrades older ones.
const CaptureVersion = 1

// NotifyChannel is the LISTEN/NOTIFY channel the capture trigger signals.
const NotifyChannel = "pbxsync"

// PGConn is what change capture and apply need of a database connection;
// *pgx.Conn implements it.
type PGConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Ident quotes a configured table name ("name" or "schema.name") for SQL.
func Ident(table string) string {
	return pgx.Identifier(strings.Split(table, ".")).Sanitize()
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

const installSQL = `
CREATE SCHEMA IF NOT EXISTS pbxsync;
CREATE TABLE IF NOT EXISTS pbxsync.version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS pbxsync.changelog (
	id      bigserial PRIMARY KEY,
	tbl     text NOT NULL,
	op      char(1) NOT NULL,
	old_key jsonb,
	row     jsonb,
	txid    bigint NOT NULL DEFAULT txid_current(),
	at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pbxsync.applied (
	job     text PRIMARY KEY,
	version bigint NOT NULL,
	at      timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION pbxsync.capture() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	k jsonb;
	r jsonb;
BEGIN
	IF current_setting('pbxsync.applying', true) = 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP <> 'INSERT' THEN
		SELECT jsonb_object_agg(e.key, e.value) INTO k FROM jsonb_each(to_jsonb(OLD)) e WHERE e.key = ANY (TG_ARGV[1:]);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		r := to_jsonb(NEW);
	END IF;
	INSERT INTO pbxsync.changelog (tbl, op, old_key, row) VALUES (TG_ARGV[0], left(TG_OP, 1), k, r);
	PERFORM pg_notify('pbxsync', TG_ARGV[0]);
	RETURN NULL;
END
$f$;
`

// Install creates, idempotently, pbxsync's schema in the database: a
// version table, the change log, the applied-version table and the capture
// function, and (for a source) a row trigger on every table of capture.
// Concurrent installs are serialized with an advisory lock.
func Install(ctx context.Context, db PGConn, capture []wire.TableSchema) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("install capture: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('pbxsync.install'))"); err != nil {
		return fmt.Errorf("install capture: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, installSQL); err != nil {
		return fmt.Errorf("install capture: schema pbxsync: %w", err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM pbxsync.version; INSERT INTO pbxsync.version VALUES ("+fmt.Sprint(CaptureVersion)+")"); err != nil {
		return fmt.Errorf("install capture: version: %w", err)
	}
	for _, t := range capture {
		args := []string{quoteLiteral(t.Table)}
		for _, k := range t.Key {
			args = append(args, quoteLiteral(k))
		}
		sql := fmt.Sprintf("CREATE OR REPLACE TRIGGER pbxsync_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION pbxsync.capture(%s)",
			Ident(t.Table), strings.Join(args, ", "))
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("install capture trigger on table %s: %w", t.Table, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("install capture: commit: %w", err)
	}
	return nil
}

// ReadSchema reads the fingerprint of tables: columns in order with their
// types, and the primary key. A table without a primary key is an error.
func ReadSchema(ctx context.Context, db PGConn, tables []string) ([]wire.TableSchema, error) {
	var out []wire.TableSchema
	for _, t := range tables {
		ts := wire.TableSchema{Table: t}
		rows, err := db.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
			WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, Ident(t))
		if err != nil {
			return nil, fmt.Errorf("table %s: read columns: %w", t, err)
		}
		for rows.Next() {
			var c wire.Column
			if err := rows.Scan(&c.Name, &c.Type); err != nil {
				rows.Close()
				return nil, fmt.Errorf("table %s: read columns: %w", t, err)
			}
			ts.Columns = append(ts.Columns, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("table %s: read columns: %w", t, err)
		}
		rows, err = db.Query(ctx, `SELECT a.attname FROM pg_index i
			CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord`, Ident(t))
		if err != nil {
			return nil, fmt.Errorf("table %s: read primary key: %w", t, err)
		}
		ts.Key, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("table %s: read primary key: %w", t, err)
		}
		if len(ts.Key) == 0 {
			return nil, fmt.Errorf("table %s has no primary key; pbxsync needs one to identify rows", t)
		}
		out = append(out, ts)
	}
	return out, nil
}

// CompareSchema reports how the target's schema differs from the
// source's, naming every table and column that differs; nil when equal.
func CompareSchema(source, target []wire.TableSchema) error {
	tgt := map[string]wire.TableSchema{}
	for _, t := range target {
		tgt[t.Table] = t
	}
	src := map[string]bool{}
	var diffs []string
	for _, s := range source {
		src[s.Table] = true
		t, ok := tgt[s.Table]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("table %s: the source syncs it, the target does not list it", s.Table))
			continue
		}
		tc := map[string]string{}
		for _, c := range t.Columns {
			tc[c.Name] = c.Type
		}
		sc := map[string]string{}
		var d []string
		for _, c := range s.Columns {
			sc[c.Name] = c.Type
			switch typ, ok := tc[c.Name]; {
			case !ok:
				d = append(d, fmt.Sprintf("column %s %s is missing on the target", c.Name, c.Type))
			case typ != c.Type:
				d = append(d, fmt.Sprintf("column %s is %s on the source, %s on the target", c.Name, c.Type, typ))
			}
		}
		for _, c := range t.Columns {
			if _, ok := sc[c.Name]; !ok {
				d = append(d, fmt.Sprintf("column %s %s exists only on the target", c.Name, c.Type))
			}
		}
		if len(d) == 0 && !equalStrings(columnNames(s.Columns), columnNames(t.Columns)) {
			d = append(d, fmt.Sprintf("columns are in another order: source (%s), target (%s)",
				strings.Join(columnNames(s.Columns), ", "), strings.Join(columnNames(t.Columns), ", ")))
		}
		if !equalStrings(s.Key, t.Key) {
			d = append(d, fmt.Sprintf("primary key is (%s) on the source, (%s) on the target", strings.Join(s.Key, ", "), strings.Join(t.Key, ", ")))
		}
		if len(d) > 0 {
			diffs = append(diffs, fmt.Sprintf("table %s: %s", s.Table, strings.Join(d, "; ")))
		}
	}
	for _, t := range target {
		if !src[t.Table] {
			diffs = append(diffs, fmt.Sprintf("table %s: the target lists it, the source does not sync it", t.Table))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("schema mismatch: %s", strings.Join(diffs, "; "))
}

func columnNames(cs []wire.Column) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// RowChange is one entry of pbxsync.changelog.
type RowChange struct {
	ID     int64
	Table  string
	Op     byte            // 'I', 'U' or 'D'
	OldKey json.RawMessage // U and D: the key columns of the old row
	Row    json.RawMessage // I and U: the new row
}

// ReadChanges returns up to limit change-log entries in id order.
func ReadChanges(ctx context.Context, db PGConn, limit int) ([]RowChange, error) {
	rows, err := db.Query(ctx, "SELECT id, tbl, op, old_key, row FROM pbxsync.changelog ORDER BY id LIMIT $1", limit)
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	var out []RowChange
	for rows.Next() {
		var c RowChange
		var op string
		var oldKey, row []byte
		if err := rows.Scan(&c.ID, &c.Table, &op, &oldKey, &row); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read change log: %w", err)
		}
		if op == "" {
			return nil, fmt.Errorf("read change log: entry %d has no operation", c.ID)
		}
		c.Op, c.OldKey, c.Row = op[0], oldKey, row
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	return out, nil
}

// DeleteChanges removes change-log entries once the generation holding
// them is recorded.
func DeleteChanges(ctx context.Context, db PGConn, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, "DELETE FROM pbxsync.changelog WHERE id = ANY($1)", ids); err != nil {
		return fmt.Errorf("trim change log: %w", err)
	}
	return nil
}

// Snapshot reads every row of every table, and the ids of the change-log
// entries those rows already reflect, from one REPEATABLE READ
// transaction.
func Snapshot(ctx context.Context, db PGConn, schema []wire.TableSchema) (*Changeset, []int64, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	cs, err := readTables(ctx, tx, schema)
	if err != nil {
		return nil, nil, err
	}
	rows, err := tx.Query(ctx, "SELECT id FROM pbxsync.changelog")
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot: change log: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot: change log: %w", err)
	}
	return cs, ids, nil
}

// readTables reads every row of every table of schema in tx.
func readTables(ctx context.Context, tx pgx.Tx, schema []wire.TableSchema) (*Changeset, error) {
	cs := &Changeset{Snapshot: true, Schema: schema, Tables: map[string]*TableChanges{}}
	for _, t := range schema {
		rows, err := tx.Query(ctx, fmt.Sprintf("SELECT to_jsonb(t) FROM %s t", Ident(t.Table)))
		if err != nil {
			return nil, fmt.Errorf("snapshot of table %s: %w", t.Table, err)
		}
		tc := &TableChanges{}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("snapshot of table %s: %w", t.Table, err)
			}
			tc.Upserts = append(tc.Upserts, b)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("snapshot of table %s: %w", t.Table, err)
		}
		cs.Tables[t.Table] = tc
	}
	return cs, nil
}

// ReadRows reads every row of every table of schema from one REPEATABLE
// READ transaction, as a snapshot changeset; unlike Snapshot it needs no
// pbxsync objects in the database.
func ReadRows(ctx context.Context, db PGConn, schema []wire.TableSchema) (*Changeset, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return readTables(ctx, tx, schema)
}

// Listen keeps a connection that LISTENs on NotifyChannel and sends on wake
// (without blocking) for every notification and after every (re)connect,
// until ctx is done. Connection errors are retried every second; the
// caller polls as well, so a missed notification only costs latency.
func Listen(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), wake chan<- struct{}, log *slog.Logger) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	for ctx.Err() == nil {
		err := func() error {
			conn, err := connect(ctx)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
				return err
			}
			signal()
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				signal()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		log.Debug("change notifications interrupted; polling until they are back", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// AppliedVersion returns the source generation whose rows the database
// holds for job (0 when none was applied).
func AppliedVersion(ctx context.Context, db PGConn, job string) (uint64, error) {
	var v int64
	err := db.QueryRow(ctx, "SELECT version FROM pbxsync.applied WHERE job = $1", job).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read applied version: %w", err)
	}
	return uint64(v), nil
}
