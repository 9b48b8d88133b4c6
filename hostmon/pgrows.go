package hostmon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"pbxsync/internal/wire"
)

// Replay returns the rows of every table after the changesets of chain,
// applied in order, as a snapshot changeset over the last one's schema.
// chain[0] must be a snapshot; a later snapshot starts over.
func Replay(chain []*Changeset) (*Changeset, error) {
	if len(chain) == 0 || !chain[0].Snapshot {
		return nil, errors.New("replay: the chain does not start with a snapshot")
	}
	schema := chain[len(chain)-1].Schema
	byTable := map[string]*wire.TableSchema{}
	for i := range schema {
		byTable[schema[i].Table] = &schema[i]
	}
	rows := map[string]map[string]json.RawMessage{}
	for n, cs := range chain {
		if cs.Snapshot {
			rows = map[string]map[string]json.RawMessage{}
		}
		for table, tc := range cs.Tables {
			t := byTable[table]
			if t == nil {
				continue
			}
			m := rows[table]
			if m == nil {
				m = map[string]json.RawMessage{}
				rows[table] = m
			}
			for _, d := range tc.Deletes {
				k, _, err := keyOf(t, d)
				if err != nil {
					return nil, fmt.Errorf("replay changeset %d: %w", n, err)
				}
				delete(m, k)
			}
			for _, u := range tc.Upserts {
				k, _, err := keyOf(t, u)
				if err != nil {
					return nil, fmt.Errorf("replay changeset %d: %w", n, err)
				}
				m[k] = u
			}
		}
	}
	out := &Changeset{Snapshot: true, Schema: schema, Tables: map[string]*TableChanges{}}
	for _, t := range schema {
		tc := &TableChanges{}
		for _, k := range sortedKeys(rows[t.Table]) {
			tc.Upserts = append(tc.Upserts, rows[t.Table][k])
		}
		out.Tables[t.Table] = tc
	}
	return out, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Diff returns the changeset that turns the rows of snapshot cur into
// those of snapshot want: deletes of the keys want lacks, upserts of the
// rows that are new or differ. Rows compare as JSON values.
func Diff(schema []wire.TableSchema, cur, want *Changeset) (*Changeset, error) {
	out := &Changeset{Schema: schema, Tables: map[string]*TableChanges{}}
	for i := range schema {
		t := &schema[i]
		index := func(cs *Changeset) (map[string]json.RawMessage, map[string]json.RawMessage, error) {
			rows, keys := map[string]json.RawMessage{}, map[string]json.RawMessage{}
			if tc := cs.Tables[t.Table]; tc != nil {
				for _, r := range tc.Upserts {
					k, ko, err := keyOf(t, r)
					if err != nil {
						return nil, nil, err
					}
					rows[k], keys[k] = r, ko
				}
			}
			return rows, keys, nil
		}
		have, haveKeys, err := index(cur)
		if err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
		wantRows, _, err := index(want)
		if err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
		tc := &TableChanges{}
		for _, k := range sortedKeys(have) {
			if _, ok := wantRows[k]; !ok {
				tc.Deletes = append(tc.Deletes, haveKeys[k])
			}
		}
		for _, k := range sortedKeys(wantRows) {
			if h, ok := have[k]; !ok || !sameJSON(h, wantRows[k]) {
				tc.Upserts = append(tc.Upserts, wantRows[k])
			}
		}
		if len(tc.Deletes)+len(tc.Upserts) > 0 {
			out.Tables[t.Table] = tc
		}
	}
	return out, nil
}

// sameJSON reports whether a and b hold the same JSON value (jsonb's
// output orders keys; a value from elsewhere may not).
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// ApplyCaptured applies cs (not a snapshot) in one transaction as an
// ordinary write: the capture triggers record it in the change log like
// an admin's edit, in the same transaction, so the source's next
// generation carries it to the targets and a crash loses nothing.
func ApplyCaptured(ctx context.Context, db PGConn, cs *Changeset) error {
	if cs.Snapshot {
		return errors.New("apply captured: a snapshot replaces tables; give the difference (Diff)")
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
		return fmt.Errorf("defer constraints: %w", err)
	}
	if err := applyRows(ctx, tx, cs); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
