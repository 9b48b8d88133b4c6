package syncer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
	"pbxsync/syncer/core"
)

// startSource loads the chain of recorded generations and, when there is
// none, records a snapshot as the first.
func (p *pgJob) startSource(ctx context.Context) error {
	j := p.j
	infos, err := j.a.store.Generations(j.cfg.Name)
	if err != nil {
		return err
	}
	for _, gi := range infos {
		if gi.State != store.StateGood && gi.State != store.StateBad {
			continue
		}
		g, err := j.a.store.Generation(j.cfg.Name, gi.Number)
		if err != nil {
			j.log.Warn("cannot read generation", "generation", gi.Number, "err", err)
			continue
		}
		it, ok := g.Index.Get(pgRowsItem)
		if !ok {
			continue
		}
		pg, err := p.loadGen(ctx, gi.Number, it)
		if err != nil {
			j.log.Warn("cannot read the rows of a generation", "generation", gi.Number, "err", err)
			continue
		}
		p.gens[pg.number] = pg
		p.latest = pg
		p.offer(pg)
	}
	for _, t := range j.cfg.Targets {
		if t != j.a.node {
			p.targets[t] = &core.RowsTarget{}
		}
	}
	if p.latest == nil {
		if err := p.snapshot(ctx, "initial snapshot"); err != nil {
			return err
		}
	}
	j.setStatus(func(s *JobStatus) { s.State, s.Generation, s.LastError = string(store.StateGood), p.latest.number, "" })
	p.announce(true)
	return nil
}

// loadGen reads the header of a stored changeset.
func (p *pgJob) loadGen(ctx context.Context, n uint64, it index.Item) (*pgGen, error) {
	rc, err := p.j.a.store.Open(ctx, it.Hash)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	line, err := bufio.NewReaderSize(rc, 1<<16).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return nil, err
	}
	var h struct {
		Base     uint64             `json:"base"`
		Snapshot bool               `json:"snapshot"`
		Schema   []wire.TableSchema `json:"schema"`
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return &pgGen{number: n, base: h.Base, snapshot: h.Snapshot, hash: it.Hash, size: it.Size, schema: h.Schema}, nil
}

func (p *pgJob) offer(g *pgGen) {
	p.j.mu.Lock()
	defer p.j.mu.Unlock()
	p.j.serving.set(g.hash, g.size)
}

// record stores cs and records it as a new good generation.
func (p *pgJob) record(ctx context.Context, cs *hostmon.Changeset, reason string) error {
	j := p.j
	h, n, err := p.putChangeset(ctx, cs)
	if err != nil {
		return fmt.Errorf("job %s: store rows: %w", j.cfg.Name, err)
	}
	changed := cs.Changed()
	g := &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: j.a.node, Changed: changed, State: store.StateGood, Reason: reason,
		Index: index.Of(pgItem(pgRowsItem, h, n))}
	num, err := j.a.store.AddGeneration(ctx, g)
	if err != nil {
		return fmt.Errorf("job %s: record generation: %w", j.cfg.Name, err)
	}
	pg := &pgGen{number: num, base: cs.Base, snapshot: cs.Snapshot, hash: h, size: n, rows: cs.Rows(), schema: cs.Schema}
	p.gens[num], p.latest = pg, pg
	p.offer(pg)
	p.checkpoint(ctx, pg)
	j.log.Info("new generation", "generation", num, "rows", pg.rows, "snapshot", cs.Snapshot, "tables", changed)
	j.setStatus(func(s *JobStatus) {
		s.Generation, s.State, s.LastError = num, string(store.StateGood), ""
		s.LastChange = g.Time
	})
	return nil
}

func (p *pgJob) base() uint64 {
	if p.latest == nil {
		return 0
	}
	return p.latest.number
}

// snapshot records every row of every table, from one consistent
// transaction, as a new generation, and trims the change-log entries it
// already reflects.
func (p *pgJob) snapshot(ctx context.Context, reason string) error {
	conn, err := p.db(ctx)
	if err != nil {
		return err
	}
	if p.schema, err = hostmon.ReadSchema(ctx, conn, p.j.cfg.Tables); err != nil {
		return fmt.Errorf("job %s: %w", p.j.cfg.Name, err)
	}
	cs, ids, err := hostmon.Snapshot(ctx, conn, p.schema)
	if err != nil {
		return fmt.Errorf("job %s: %w", p.j.cfg.Name, err)
	}
	cs.Base = p.base()
	if err := p.record(ctx, cs, reason); err != nil {
		return err
	}
	if err := hostmon.DeleteChanges(ctx, conn, ids); err != nil {
		return fmt.Errorf("job %s: %w", p.j.cfg.Name, err)
	}
	return nil
}

// collect turns the change log into a generation: the final version (or
// deletion) of every changed row. Entries are deleted only after the
// generation is recorded, so a crash in between ships them again, which
// is harmless: they carry final rows.
func (p *pgJob) collect(ctx context.Context) error { return p.collectAs(ctx, "") }

// collectAs is collect that records the generation with reason.
func (p *pgJob) collectAs(ctx context.Context, reason string) error {
	j := p.j
	conn, err := p.db(ctx)
	if err != nil {
		return err
	}
	changes, err := hostmon.ReadChanges(ctx, conn, pgReadLimit)
	if err != nil || len(changes) == 0 {
		return err
	}
	if p.schema, err = hostmon.ReadSchema(ctx, conn, j.cfg.Tables); err != nil {
		return fmt.Errorf("job %s: %w", j.cfg.Name, err)
	}
	cs, err := hostmon.Collapse(p.base(), p.schema, changes)
	if err != nil {
		return fmt.Errorf("job %s: %w", j.cfg.Name, err)
	}
	if cs.Rows() > 0 {
		if err := p.record(ctx, cs, reason); err != nil {
			return err
		}
	}
	ids := make([]int64, len(changes))
	for i, c := range changes {
		ids[i] = c.ID
	}
	if err := hostmon.DeleteChanges(ctx, conn, ids); err != nil {
		return fmt.Errorf("job %s: %w", j.cfg.Name, err)
	}
	if len(changes) == pgReadLimit {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.announce(true)
	return nil
}

// nextFor picks the generation to send to target name (core.RowsTarget.Next),
// taking a new snapshot when it asks for one.
func (p *pgJob) nextFor(ctx context.Context, name string) *pgGen {
	if p.latest == nil {
		return nil
	}
	gens := make([]core.RowsGen, 0, len(p.gens))
	for _, g := range p.gens {
		gens = append(gens, core.RowsGen{Number: g.number, Base: g.base, Snapshot: g.snapshot})
	}
	l := p.latest
	t, next := p.targets[name].Next(core.RowsGen{Number: l.number, Base: l.base, Snapshot: l.snapshot}, gens,
		func(n uint64) bool { return p.j.a.store.Has(p.gens[n].hash) })
	*p.targets[name] = t
	switch {
	case next.Snapshot:
		if err := p.snapshot(ctx, "snapshot for a target that is behind"); err != nil {
			p.j.log.Warn("cannot take a snapshot", "err", err)
			return nil
		}
		return p.latest
	case next.Gen != 0:
		return p.gens[next.Gen]
	}
	return nil
}

// announce sends each target the generation it needs next, on its route
// (sendRouted: directly, or through its site's relay, one envelope per
// relay and generation); unanswered announcements are repeated every few
// seconds, at once when force. Under order "rolling-sites" only the open
// waves get the newest generation.
func (p *pgJob) announce(force bool) {
	j := p.j
	ctx := context.Background()
	if p.latest != nil && !j.windowAllows(p.latest.number, p.heldByTargets()) {
		return // outside the job's sync windows
	}
	j.planRoutes()
	defer j.flushRelayed()
	var open map[string]bool
	if j.cfg.Order == config.OrderRollingSites {
		open = p.rollingSitesOpen()
	}
	msgs := map[uint64]*wire.RowsAnnounce{} // one per generation: an envelope per relay carries it
	for _, name := range j.cfg.Targets {
		t := p.targets[name]
		if _, _, up := j.routeOf(name); t == nil || !up || (open != nil && !open[name]) {
			continue
		}
		g := p.nextFor(ctx, name)
		if g == nil || !core.Due(t.Sent, t.SentAt, g.number, time.Now().UnixNano(), int64(announceRepeat), force) {
			continue
		}
		if msgs[g.number] == nil {
			msgs[g.number] = p.rowsAnnounce(g)
		}
		if _, err := j.sendRouted(name, msgs[g.number]); err != nil {
			j.log.Debug("announce failed", "peer", name, "err", err)
			continue
		}
		p.stepTarget(name, core.Sent{Version: g.number, Time: time.Now().UnixNano()})
	}
}

// stepTarget steps what happened to target name (core.RowsTarget.Step)
// and carries out what it means for the job.
func (p *pgJob) stepTarget(name string, e core.TargetEvent) core.Outcome {
	t, out := p.targets[name].Step(e)
	*p.targets[name] = t
	return out
}

// onHave learns which generation a target's database holds.
func (p *pgJob) onHave(peer string, m *wire.RowsHave) {
	if !p.j.isSource || p.targets[peer] == nil {
		p.j.log.Warn("ignoring RowsHave from a peer that is not a target of this job", "peer", peer)
		return
	}
	out := p.stepTarget(peer, core.Has{Version: m.Version})
	if out.Again {
		p.announce(out.Force)
	}
}

// onResult records a target's answer.
func (p *pgJob) onResult(peer string, r *wire.Result) {
	j := p.j
	if !j.isSource || p.targets[peer] == nil {
		j.log.Warn("ignoring a result from a peer that is not a target of this job", "peer", peer)
		return
	}
	out := p.stepTarget(peer, core.Answered{Answer: answerOf(r), Latest: p.base(), Time: time.Now().UnixNano()})
	if out.Rejected {
		reason := fmt.Sprintf("target %s rejected generation %d: %s", peer, r.Version, r.Reason)
		j.log.Warn("target rejected a generation", "peer", peer, "generation", r.Version, "reason", r.Reason)
		if p.latest != nil && r.Version == p.latest.number {
			if err := j.a.store.SetState(j.cfg.Name, r.Version, store.StateBad, reason); err != nil {
				j.log.Warn("cannot mark generation bad", "err", err)
			}
			j.setStatus(func(s *JobStatus) { s.State, s.LastError = string(store.StateBad), reason })
		}
	}
	if out.Record {
		j.setStatus(func(s *JobStatus) { s.setTarget(peer, r) })
	}
	if out.Again {
		p.announce(out.Force)
	}
}

// serveGet sends a target the stored changeset it asks for: the same
// authorization and streaming as file content.
func (p *pgJob) serveGet(ctx context.Context, peer string, g *wire.Get, s *remotemon.Stream) {
	p.j.serveGet(ctx, peer, g, s)
}
