package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// A postgres mesh job is the same machine (syncer/core) over rows: each
// row is an item whose path is "TABLE/=KEY" (KEY the JSON array of its key
// values, path-escaped), whose content is the row as to_jsonb gives it,
// kept in the store like file content and fetched from members with the
// same Get. A local change is found by reading the tables (after the
// capture triggers logged a change, or every few seconds) and comparing
// each row's hash with its entry; a member's versions are applied in one
// transaction (hostmon.Apply: deletes, then upserts by key), then the
// job's checks run; a failed check applies the rows as they were before.

// pgMeshEdge is the meshEdge of a postgres job.
type pgMeshEdge struct {
	j *job
	p *pgJob
	// rows is the content of the rows the last read found, by path: what
	// storeLocal keeps and what a rollback restores.
	rows map[string]json.RawMessage
}

// pgMeshPoll is how often a postgres mesh job reads its tables when no
// change notification came.
const pgMeshPoll = 5 * time.Second

// rowPath is the item path of the row with key string key in table.
func rowPath(table, key string) string { return table + "/=" + url.PathEscape(key) }

// splitRowPath returns the table and key string of a row item path.
func splitRowPath(p string) (table, key string, ok bool) {
	i := strings.Index(p, "/=")
	if i < 0 {
		return "", "", false
	}
	k, err := url.PathUnescape(p[i+2:])
	if err != nil {
		return "", "", false
	}
	return p[:i], k, true
}

// runMeshPG is the loop of a mesh postgres job.
func (j *job) runMeshPG(ctx context.Context) error {
	p := newPGJob(j)
	dsn, err := p.dsn()
	if err != nil {
		return err
	}
	if p.pgcfg, err = pgx.ParseConfig(dsn); err != nil {
		return fmt.Errorf("job %s: the DSN does not parse (not shown: it may hold a password)", j.cfg.Name)
	}
	p.secret = p.pgcfg.Password
	defer func() {
		if p.conn != nil {
			p.conn.Close(context.Background())
		}
	}()
	edge := &pgMeshEdge{j: j, p: p, rows: map[string]json.RawMessage{}}
	ms, others, err := j.startMesh(edge)
	if err != nil {
		return err
	}
	for {
		conn, err := p.db(ctx)
		if err == nil {
			if p.schema, err = hostmon.ReadSchema(ctx, conn, j.cfg.Tables); err == nil {
				err = hostmon.Install(ctx, conn, p.schema)
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.dropConn(err)
		j.log.Warn("database not ready; retrying", "err", err)
		j.setStatus(func(s *JobStatus) { s.State, s.LastError = "error", err.Error() })
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	go hostmon.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) {
		c, err := pgx.ConnectConfig(ctx, p.pgcfg.Copy())
		return c, p.redact(err)
	}, p.wake, j.log)
	j.setStatus(func(s *JobStatus) { s.Role, s.State, s.LastError = "member", "good", "" })
	if err := edge.local(ctx, true); err != nil {
		j.log.Warn("cannot read the tables", "err", err)
	}
	j.carryMesh(ctx, ms.m.Step(core.PeersUp{Peers: j.connectedOf(others)}))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRead := time.Now()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
			err, lastRead = edge.local(ctx, false), time.Now()
		case e := <-j.inbox:
			err = edge.onEvent(ctx, e)
		case <-tick.C:
			if time.Since(lastRead) > pgMeshPoll {
				err, lastRead = edge.local(ctx, true), time.Now()
			}
			j.carryMesh(ctx, ms.m.Step(core.Tick{Time: time.Now().UnixNano()}))
			j.meshRetryChecks(ctx, false)
		}
		if err != nil {
			p.dropConn(err)
			j.log.Warn("postgres mesh step failed; will retry", "err", err)
			j.setStatus(func(s *JobStatus) { s.LastError = err.Error() })
		}
	}
}

func (e *pgMeshEdge) onEvent(ctx context.Context, ev event) error {
	j := e.j
	switch {
	case ev.rollback != nil:
		ev.rollback.reply <- rollbackResult{err: fmt.Errorf("job %q is a mesh job: roll back by changing the rows on any member (the losing versions are in `pbxsync conflicts`)", j.cfg.Name)}
	case ev.syncNow != nil:
		j.meshRetryChecks(ctx, true)
		ev.syncNow <- e.local(ctx, true)
	case ev.peerChange:
		j.meshPeerChange(ctx, ev)
	case ev.do != nil:
		ev.do(ctx)
	case ev.msg != nil:
		var err error
		j.onMeshMessage(ctx, ev.peer, ev.msg, func(peer string, m *wire.Announce) { err = e.takeIndex(ctx, peer, m) })
		return err
	}
	return nil
}

// takeIndex decides peer's index m: its rows of the job's tables.
func (e *pgMeshEdge) takeIndex(ctx context.Context, peer string, m *wire.Announce) error {
	j, ms := e.j, e.j.mesh
	if err := e.local(ctx, false); err != nil { // a change not read yet is a version of its own
		return err
	}
	ms.noteReverts(peer, m.Reason)
	tables := map[string]bool{}
	for _, t := range j.cfg.Tables {
		tables[t] = true
	}
	var items []index.Item
	for _, w := range m.Items {
		it := wire.ToItem(w)
		if t, _, ok := splitRowPath(it.Path); ok && tables[t] && it.Kind == index.KindFile {
			items = append(items, it)
		}
	}
	j.meshRemote(ctx, peer, items)
	return nil
}

// local reads the tables when the change log has entries (or always,
// with force) and hands the machine the rows as they are.
func (e *pgMeshEdge) local(ctx context.Context, force bool) error {
	conn, err := e.p.db(ctx)
	if err != nil {
		return err
	}
	if !force {
		ch, err := hostmon.ReadChanges(ctx, conn, 1)
		if err != nil {
			return err
		}
		if len(ch) == 0 {
			return nil
		}
	}
	cs, ids, err := hostmon.Snapshot(ctx, conn, e.p.schema)
	if err != nil {
		return err
	}
	tree := index.New(0)
	rows := map[string]json.RawMessage{}
	now := time.Now().UnixNano()
	for i := range e.p.schema {
		t := &e.p.schema[i]
		for _, row := range cs.Tables[t.Table].Upserts {
			key, _, err := hostmon.KeyOf(t, row)
			if err != nil {
				return err
			}
			p := rowPath(t.Table, key)
			rows[p] = row
			tree.Set(index.Item{Path: p, Kind: index.KindFile, Size: int64(len(row)), Mode: 0o644, MTime: now, Hash: index.Sum(row)})
		}
	}
	e.rows = rows
	e.j.carryMesh(ctx, e.j.mesh.m.Step(core.LocalScan{Time: now, Tree: tree}))
	return hostmon.DeleteChanges(ctx, conn, ids)
}

func (e *pgMeshEdge) storeLocal(ctx context.Context, it index.Item) {
	row, ok := e.rows[it.Path]
	if !ok {
		return
	}
	if _, _, err := e.j.a.store.PutReader(ctx, bytes.NewReader(row)); err != nil {
		e.j.log.Warn("cannot store a changed row", "row", it.Path, "err", err)
	}
}

// record: postgres mesh jobs keep no generations of their own yet; the
// rows' versions live in the mesh index and the store.
func (e *pgMeshEdge) record(context.Context, []string, string) {}

// rowOf reads the stored content of a row item.
func (e *pgMeshEdge) rowOf(ctx context.Context, it index.Item) (json.RawMessage, error) {
	var buf bytes.Buffer
	if _, err := e.j.a.store.CopyTo(ctx, it.Hash, &buf); err != nil {
		return nil, fmt.Errorf("row %s: %w", it.Path, err)
	}
	return buf.Bytes(), nil
}

func (e *pgMeshEdge) apply(ctx context.Context, a *core.Apply) error {
	j := e.j
	for _, it := range append(append([]index.Item(nil), a.Items...), a.Keep...) {
		if it.Deleted || j.a.store.Has(it.Hash) {
			continue
		}
		if err := j.meshFetch(ctx, a.Peer, it); err != nil {
			return err
		}
	}
	for _, c := range a.Records {
		if !c.Loser.Deleted && !j.a.store.Has(c.Loser.Hash) {
			e.storeLocal(ctx, index.Item{Path: c.Path})
		}
	}
	cs := &hostmon.Changeset{Schema: e.p.schema, Tables: map[string]*hostmon.TableChanges{}}
	schema := map[string]*wire.TableSchema{}
	for i := range e.p.schema {
		schema[e.p.schema[i].Table] = &e.p.schema[i]
	}
	var changed []string
	for _, it := range a.Items {
		table, _, ok := splitRowPath(it.Path)
		t := schema[table]
		if !ok || t == nil {
			continue
		}
		tc := cs.Tables[table]
		if tc == nil {
			tc = &hostmon.TableChanges{}
			cs.Tables[table] = tc
		}
		var row json.RawMessage
		if it.Deleted {
			old, ok := e.rows[it.Path]
			if !ok {
				continue // not here
			}
			row = old
		} else {
			r, err := e.rowOf(ctx, it)
			if err != nil {
				return err
			}
			row = r
		}
		_, key, err := hostmon.KeyOf(t, row)
		if err != nil {
			return err
		}
		if it.Deleted {
			tc.Deletes = append(tc.Deletes, key)
		} else {
			tc.Deletes = append(tc.Deletes, key) // a key update is a delete and an upsert
			tc.Upserts = append(tc.Upserts, row)
		}
		if !containsPath(changed, table) {
			changed = append(changed, table)
		}
	}
	if len(changed) > 0 {
		if err := j.meshHeld(a.Peer); err != nil {
			return err // this node's checks fail whatever the rows
		}
		if err := j.asteriskUnreachable(changed); err != nil {
			// they could only be compensated: nothing written, taken
			// at the member's next index once Asterisk answers
			return fmt.Errorf("not taken now (%w)", err)
		}
	}
	for _, c := range a.Records {
		if err := e.putRowConflict(ctx, c); err != nil {
			return err
		}
	}
	if len(changed) == 0 {
		return nil
	}
	conn, err := e.p.db(ctx)
	if err != nil {
		return err
	}
	var before *hostmon.Changeset
	if err := hostmon.Apply(ctx, conn, j.cfg.Name, 0, cs, func(b *hostmon.Changeset) error { before = b; return nil }); err != nil {
		return fmt.Errorf("apply the rows of %s: %w", a.Peer, err)
	}
	if err := j.a.after.AfterApply(ctx, &j.cfg, 0, changed); err != nil {
		reason := err.Error()
		j.log.Warn("a member's rows failed this node's checks; rolling back", "peer", a.Peer, "reason", reason)
		var rerr error
		if before != nil {
			if rerr = hostmon.Apply(context.WithoutCancel(ctx), conn, j.cfg.Name, 0, before, nil); rerr != nil {
				reason += "; rollback failed: " + rerr.Error()
			}
		}
		j.setStatus(func(s *JobStatus) {
			s.RolledBack++
			s.State, s.LastError = "bad", fmt.Sprintf("rows from %s rejected by %s: %s", a.Peer, j.a.node, reason)
		})
		if errors.Is(err, ErrAsteriskUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("not taken now (%s)", reason)
		}
		if rerr == nil {
			// the rows put back: their actions run again, then the
			// checks say whose fault it was
			if err := j.meshCheckBefore(ctx, a.Peer, 0, changed); err != nil {
				return err
			}
		}
		return &meshRejection{reason: reason}
	}
	j.setStatus(func(s *JobStatus) {
		s.State, s.LastError = "good", ""
		s.LastChange = time.Now()
		s.Applied++
	})
	return nil
}

// putRowConflict records c with the losing row as JSON.
func (e *pgMeshEdge) putRowConflict(ctx context.Context, c core.Conflict) error {
	ms := e.j.mesh
	rec := store.Conflict{ID: c.ID, Path: c.Path, Time: time.Unix(0, c.Time).UTC(), Reason: c.Reason,
		Winner: store.ConflictSide{Node: ms.memberName(c.Winner.Node), Hash: c.Winner.Hash, Deleted: c.Winner.Deleted},
		Loser:  store.ConflictSide{Node: ms.memberName(c.Loser.Node), Hash: c.Loser.Hash, Size: c.Loser.Size, Deleted: c.Loser.Deleted}}
	if !c.Loser.Deleted {
		row, err := e.rowOf(ctx, index.Item{Path: c.Path, Hash: c.Loser.Hash})
		if err != nil {
			return fmt.Errorf("keep the losing row: %w", err)
		}
		rec.Row = row
	}
	if err := e.j.putConflict(rec); err != nil {
		return err
	}
	e.j.log.Info("concurrent row versions resolved; the loser is kept", "row", c.Path, "winner", rec.Winner.Node, "loser", rec.Loser.Node, "conflict", c.ID)
	return nil
}
