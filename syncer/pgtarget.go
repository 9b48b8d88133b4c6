package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// startTarget reads which source generation the database holds and
// finishes a generation that a restart interrupted: committed ones get
// their checks now (and are reverted if those fail), uncommitted ones left
// nothing behind.
func (p *pgJob) startTarget(ctx context.Context) error {
	j := p.j
	conn, err := p.db(ctx)
	if err != nil {
		return err
	}
	if p.have, err = hostmon.AppliedVersion(ctx, conn, j.cfg.Name); err != nil {
		return fmt.Errorf("job %s: %w", j.cfg.Name, err)
	}
	infos, err := j.a.store.Generations(j.cfg.Name)
	if err != nil {
		return err
	}
	recs := make([]core.RowsRecord, len(infos))
	for i, gi := range infos {
		recs[i] = core.RowsRecord{Number: gi.Number, State: string(gi.State), SourceVersion: gi.SourceVersion}
	}
	start := core.StartRows(recs, p.have)
	p.genNum = start.Holding
	for _, n := range start.Abandon {
		j.log.Warn("a generation was interrupted before its commit; nothing of it was applied", "generation", n)
		if err := j.a.store.SetState(j.cfg.Name, n, store.StateBad, "interrupted by a restart before commit; nothing was applied"); err != nil {
			j.log.Warn("cannot mark generation", "err", err)
		}
	}
	if start.Finish != 0 {
		g, err := j.a.store.Generation(j.cfg.Name, start.Finish)
		if err != nil {
			return err
		}
		j.log.Info("finishing a generation interrupted by a restart", "generation", g.Number)
		rows, _ := g.Index.Get(pgRowsItem)
		cs, err := p.readChangeset(ctx, rows.Hash)
		if err != nil {
			return fmt.Errorf("job %s: generation %d: %w", j.cfg.Name, g.Number, err)
		}
		p.finish(ctx, g, cs, start.Prev)
	}
	j.setStatus(func(s *JobStatus) {
		s.Generation = p.genNum
		if s.State != string(store.StateBad) {
			s.State, s.LastError = string(store.StateGood), ""
		}
		if p.have == 0 {
			s.State = "waiting"
		}
	})
	return nil
}

// onAnnounce applies the generation a source announces when it follows on
// from what the database holds (or is a snapshot), else tells the source
// what it holds (core.Admit decides; takeAnnouncement carries it out).
func (p *pgJob) onAnnounce(ctx context.Context, peer string, m *wire.RowsAnnounce) error {
	if !p.j.acceptsAnnouncement(peer) {
		return nil
	}
	return p.j.takeAnnouncement(ctx, peer, &rowsAnnouncement{p: p, peer: peer, m: m})
}

// rowsAnnouncement is an announcement of a postgres push job: one
// changeset, on a base version or a snapshot.
type rowsAnnouncement struct {
	p     *pgJob
	peer  string
	m     *wire.RowsAnnounce
	conn  *pgx.Conn
	local []wire.TableSchema // the tables' schema here
}

func (a *rowsAnnouncement) version() uint64 { return a.m.Version }

func (a *rowsAnnouncement) offer() core.Offer { return core.Offer{AtVersion: a.m.Version == a.p.have} }

// read looks the changeset up among those that failed here.
func (a *rowsAnnouncement) read() (core.ReadFacts, error) {
	reason, isBad := a.p.bad[wire.HashOf(a.m.Hash).String()]
	return core.ReadFacts{IsBad: isBad, Bad: reason, BaseKnown: a.m.Snapshot || a.m.Base == a.p.have}, nil
}

// check compares the announced schema with the database's; a mismatch
// stops the job.
func (a *rowsAnnouncement) check(ctx context.Context) (core.Checked, error) {
	p := a.p
	conn, err := p.db(ctx)
	if err != nil {
		return core.Checked{}, err
	}
	a.conn = conn
	if a.local, err = hostmon.ReadSchema(ctx, conn, p.j.cfg.Tables); err != nil {
		return core.Checked{}, fmt.Errorf("job %s: %w", p.j.cfg.Name, err)
	}
	if err := hostmon.CompareSchema(a.m.Schema, a.local); err != nil {
		stop := p.schemaMismatch(err)
		return core.Checked{Refusal: stop.Error()}, stop
	}
	return core.Checked{}, nil
}

func (a *rowsAnnouncement) holding() uint64 { return a.p.genNum }

func (a *rowsAnnouncement) resync() wire.Message {
	return &wire.RowsHave{Job: a.p.j.cfg.Name, Version: a.p.have}
}

func (a *rowsAnnouncement) done() {}

// take fetches the changeset, applies it in one transaction that records
// the rows it replaces, and runs the checks.
func (a *rowsAnnouncement) take(ctx context.Context) (*wire.Result, error) {
	p, peer, m, conn, local := a.p, a.peer, a.m, a.conn, a.local
	j := p.j
	h := wire.HashOf(m.Hash)
	started := time.Now()
	j.setStatus(func(s *JobStatus) { s.State = string(store.StateApplying) })
	if !j.a.store.Has(h) {
		if err := p.fetchRows(ctx, peer, h, m.Size); err != nil {
			return nil, fmt.Errorf("job %s: fetch generation %d: %w", j.cfg.Name, m.Version, err)
		}
	}
	cs, err := p.readChangeset(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("job %s: generation %d: %w", j.cfg.Name, m.Version, err)
	}
	if cs.Base != m.Base || cs.Snapshot != m.Snapshot {
		return nil, fmt.Errorf("job %s: generation %d: the rows do not match the announcement", j.cfg.Name, m.Version)
	}
	if err := hostmon.CompareSchema(cs.Schema, local); err != nil {
		stop := p.schemaMismatch(err)
		return &wire.Result{Job: j.cfg.Name, Version: m.Version, State: "bad", Reason: stop.Error()}, stop
	}
	prev := p.have
	var g *store.Generation
	err = hostmon.Apply(ctx, conn, j.cfg.Name, m.Version, cs, func(before *hostmon.Changeset) error {
		bh, bn, err := p.putChangeset(ctx, before)
		if err != nil {
			return err
		}
		g = &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: m.Origin, SourceVersion: m.Version, Changed: cs.Changed(), State: store.StateApplying,
			Index: index.Of(pgItem(pgRowsItem, h, m.Size), pgItem(pgBeforeItem, bh, bn))}
		if m.Snapshot {
			g.Reason = "snapshot"
		}
		g.Number, err = j.a.store.AddGeneration(ctx, g)
		return err
	})
	if err != nil {
		err = p.redact(err)
		var pgErr *pgconn.PgError
		if g == nil || !errors.As(err, &pgErr) {
			if g != nil {
				j.a.store.SetState(j.cfg.Name, g.Number, store.StateBad, "not applied: "+err.Error())
			}
			return nil, fmt.Errorf("job %s: apply generation %d: %w", j.cfg.Name, m.Version, err)
		}
		reason := "apply failed, nothing was changed: " + err.Error()
		j.log.Error("apply failed; the transaction was rolled back", "generation", g.Number, "err", err)
		p.markBad(g, h, reason, core.RowsRefused)
		return &wire.Result{Job: j.cfg.Name, Version: m.Version, Generation: g.Number, State: "bad", Reason: reason}, nil
	}
	p.have = m.Version
	p.finish(ctx, g, cs, prev)
	if g.State == store.StateGood {
		j.log.Info("applied", "generation", g.Number, "source_version", m.Version, "rows", cs.Rows(), "snapshot", cs.Snapshot, "took", time.Since(started).Round(time.Millisecond))
	}
	return &wire.Result{Job: j.cfg.Name, Version: m.Version, Generation: g.Number, State: string(g.State), Reason: g.Reason}, nil
}

// schemaMismatch is the error that stops a postgres target whose tables'
// schema differs from the source's.
func (p *pgJob) schemaMismatch(err error) errStop {
	err = fmt.Errorf("job %s stopped: %w; nothing was applied", p.j.cfg.Name, err)
	p.j.log.Error("schema mismatch", "err", err)
	return errStop{err}
}

// finish runs the checks of a committed generation and marks it good, or
// reverts it with a compensating transaction that restores the rows it
// replaced and marks it bad.
func (p *pgJob) finish(ctx context.Context, g *store.Generation, cs *hostmon.Changeset, prev uint64) {
	j := p.j
	err := j.a.after.AfterApply(ctx, &j.cfg, g.Number, cs.Changed())
	if err == nil {
		if err := j.a.store.SetState(j.cfg.Name, g.Number, store.StateGood, ""); err != nil {
			j.log.Error("cannot mark generation good", "generation", g.Number, "err", err)
		}
		g.State = store.StateGood
		p.genNum = g.Number
		j.setStatus(func(s *JobStatus) {
			s.Generation, s.State, s.LastError = g.Number, string(store.StateGood), ""
			s.LastChange = time.Now()
		})
		return
	}
	reason := err.Error()
	j.log.Warn("generation failed its checks; restoring the previous rows", "generation", g.Number, "reason", reason)
	if rerr := p.revert(context.WithoutCancel(ctx), g, prev); rerr != nil {
		j.log.Error("REVERT FAILED: the database may hold the bad generation", "generation", g.Number, "err", rerr)
		reason += "; revert failed: " + rerr.Error()
	} else {
		p.have = prev
	}
	rows, _ := g.Index.Get(pgRowsItem)
	p.markBad(g, rows.Hash, reason, core.ChecksFailed)
}

// revert restores the rows g replaced, in one transaction.
func (p *pgJob) revert(ctx context.Context, g *store.Generation, prev uint64) error {
	it, ok := g.Index.Get(pgBeforeItem)
	if !ok {
		return errors.New("the rows before it were not kept")
	}
	before, err := p.readChangeset(ctx, it.Hash)
	if err != nil {
		return fmt.Errorf("read the rows before it: %w", err)
	}
	conn, err := p.db(ctx)
	if err != nil {
		return err
	}
	if err := hostmon.Apply(ctx, conn, p.j.cfg.Name, prev, before, nil); err != nil {
		p.dropConn(err)
		return p.redact(err)
	}
	return nil
}

// markBad marks g bad for failure f, and its rows known-bad when
// core.Judge says so. (A check that failed because Asterisk could not be
// reached counts as a failed check for a postgres job.)
func (p *pgJob) markBad(g *store.Generation, rows index.Hash, reason string, f core.Failure) {
	j := p.j
	if err := j.a.store.SetState(j.cfg.Name, g.Number, store.StateBad, reason); err != nil {
		j.log.Error("cannot mark generation bad", "generation", g.Number, "err", err)
	}
	g.State, g.Reason = store.StateBad, reason
	if core.Judge(f).Blacklist {
		p.bad[rows.String()] = reason
		p.save()
	}
	j.setStatus(func(s *JobStatus) {
		s.State, s.LastError = string(store.StateBad), fmt.Sprintf("generation %d: %s", g.Number, reason)
		s.Generation = p.genNum
	})
}

// fetchRows gets a changeset blob from the source into the store, which
// verifies its hash.
func (p *pgJob) fetchRows(ctx context.Context, peer string, h index.Hash, size int64) error {
	j := p.j
	s, err := j.a.mon.OpenStream(ctx, peer)
	if err != nil {
		return err
	}
	defer s.Abort()
	s.SetDeadline(time.Now().Add(time.Minute + time.Duration(size/(1<<20))*time.Second))
	if err := s.WriteMessage(&wire.Get{Job: j.cfg.Name, Path: pgRowsItem, Hash: h[:]}); err != nil {
		return err
	}
	s.Close()
	m, err := s.ReadMessage()
	if err != nil {
		return err
	}
	d, ok := m.(*wire.Data)
	if !ok {
		if e, isErr := m.(*wire.Error); isErr {
			return fmt.Errorf("source says: %s", e.Message)
		}
		return fmt.Errorf("unexpected %s", m.Type())
	}
	if d.Encoding != wire.EncodingZstd || wire.HashOf(d.Hash) != h || d.Length != size {
		return fmt.Errorf("source sent other content (%s, %d bytes, %s) than announced", wire.HashOf(d.Hash).Short(), d.Length, d.Encoding)
	}
	_, err = j.a.store.PutCompressed(ctx, io.LimitReader(s, d.Size), h, size)
	j.setStatus(func(st *JobStatus) { st.BytesReceived += uint64(d.Size) })
	return err
}
