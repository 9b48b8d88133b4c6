package syncer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"pbxsync/hostmon"
	"pbxsync/internal/backup"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// PGRowsAt returns the rows of a postgres job's tables at generation n as
// a snapshot changeset, rebuilt from the changesets in st: n's and those
// of the generations it follows on from, back to a snapshot. On a target
// the chain goes by source versions (a changeset's base is the source's
// generation it follows).
//
// A source keeps checkpoints (see checkpoint): the chain stops at the
// first generation that has one, so a rollback or backup does not need
// the job's first snapshot, which keep trims.
func PGRowsAt(ctx context.Context, st *store.Store, job string, n uint64) (*hostmon.Changeset, error) {
	infos, err := st.Generations(job)
	if err != nil {
		return nil, err
	}
	extras, err := st.Extras(job)
	if err != nil {
		return nil, err
	}
	checkpoints := map[uint64]index.Hash{}
	for _, x := range extras {
		var g uint64
		if _, err := fmt.Sscanf(x.Label, pgCheckpointLabel, &g); err == nil && x.Label == fmt.Sprintf(pgCheckpointLabel, g) {
			checkpoints[g] = x.Hash
		}
	}
	byVersion := map[uint64]uint64{} // source version -> our generation
	for _, gi := range infos {
		if gi.State == store.StateApplying {
			continue
		}
		v := gi.SourceVersion
		if v == 0 {
			v = gi.Number
		}
		byVersion[v] = gi.Number
	}
	var chain []*hostmon.Changeset
	for cur := n; ; {
		if h, ok := checkpoints[cur]; ok {
			cs, err := readStoredChangeset(ctx, st, h)
			if err == nil && cs.Snapshot {
				chain = append(chain, cs)
				break
			}
		}
		g, err := st.Generation(job, cur)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("rows at generation %d: generation %d is %w", n, cur, errNoChain)
		}
		if err != nil {
			return nil, fmt.Errorf("rows at generation %d: %w", n, err)
		}
		it, ok := g.Index.Get(pgRowsItem)
		if !ok {
			return nil, fmt.Errorf("rows at generation %d: generation %d holds no rows", n, cur)
		}
		cs, err := readStoredChangeset(ctx, st, it.Hash)
		if err != nil {
			return nil, fmt.Errorf("rows at generation %d: generation %d: %w", n, cur, err)
		}
		chain = append(chain, cs)
		if cs.Snapshot {
			break
		}
		next, ok := byVersion[cs.Base]
		if !ok || next >= cur {
			return nil, fmt.Errorf("rows at generation %d: generation %d follows on from %d, which is %w", n, cur, cs.Base, errNoChain)
		}
		cur = next
	}
	for i, k := 0, len(chain)-1; i < k; i, k = i+1, k-1 {
		chain[i], chain[k] = chain[k], chain[i]
	}
	return hostmon.Replay(chain)
}

// rollback rolls a postgres job back to generation to (0: the good one
// before the newest): on the source the tables' rows are made those of
// generation to in one transaction, which becomes a new generation that
// each target applies in one transaction of its own.
func (p *pgJob) rollback(ctx context.Context, to uint64, hold bool) (uint64, error) {
	j := p.j
	if !j.isSource {
		return 0, fmt.Errorf("%w: job %q is a postgres target of %s; run `pbxsync rollback` on %s, which rolls back its database and every target's", ErrTargetRollback, j.cfg.Name, j.cfg.Source, j.cfg.Source)
	}
	if hold {
		return 0, fmt.Errorf("job %q: --hold is for push targets of files jobs; this node is the job's source", j.cfg.Name)
	}
	if p.latest == nil {
		return 0, fmt.Errorf("job %q: no generation to roll back from", j.cfg.Name)
	}
	if to == 0 {
		var ok bool
		var err error
		if to, ok, err = j.rollbackTo(p.latest.number); err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("job %q: no earlier good generation to roll back to", j.cfg.Name)
		}
	}
	if to >= p.latest.number {
		return 0, fmt.Errorf("job %q: generation %d is not older than the newest, %d", j.cfg.Name, to, p.latest.number)
	}
	want, err := PGRowsAt(ctx, j.a.store, j.cfg.Name, to)
	if err != nil {
		return 0, fmt.Errorf("job %q: refusing to roll back: %w", j.cfg.Name, err)
	}
	return p.rewind(ctx, want, fmt.Sprintf("rollback to generation %d", to))
}

// restore is Restore of a postgres job on its source.
func (p *pgJob) restore(ctx context.Context, path string, r io.Reader) (uint64, error) {
	j := p.j
	var rows *hostmon.Changeset
	m, err := backup.Read(r, checkArchive(j.cfg), func(it backup.Item, r io.Reader) error {
		cs, err := hostmon.DecodeChangeset(r)
		rows = cs
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("restore job %q from %s: %w", j.cfg.Name, path, err)
	}
	if rows == nil || !rows.Snapshot {
		return 0, fmt.Errorf("restore job %q from %s: the archive's rows are not a snapshot", j.cfg.Name, path)
	}
	return p.rewind(ctx, rows, fmt.Sprintf("restored from backup %s (generation %d of %s)", path, m.Generation, m.Node))
}

// rewind makes the source's tables hold the rows of snapshot want: the
// difference is applied in one transaction as an ordinary, captured write,
// the job's actions and checks run (a failure writes the rows back), and
// the change becomes a new generation with reason, announced to every
// target. The generation replaced is marked rolled-back.
func (p *pgJob) rewind(ctx context.Context, want *hostmon.Changeset, reason string) (uint64, error) {
	j := p.j
	if err := p.collect(ctx); err != nil { // what changed before is its own generation
		return 0, fmt.Errorf("job %q: collect changes first: %w", j.cfg.Name, err)
	}
	conn, err := p.db(ctx)
	if err != nil {
		return 0, err
	}
	if p.schema, err = hostmon.ReadSchema(ctx, conn, j.cfg.Tables); err != nil {
		return 0, fmt.Errorf("job %q: %w", j.cfg.Name, err)
	}
	if err := hostmon.CompareSchema(want.Schema, p.schema); err != nil {
		return 0, fmt.Errorf("job %q: the rows to restore do not fit the tables now, nothing was changed: %w", j.cfg.Name, err)
	}
	cur, _, err := hostmon.Snapshot(ctx, conn, p.schema)
	if err != nil {
		return 0, fmt.Errorf("job %q: %w", j.cfg.Name, err)
	}
	diff, err := hostmon.Diff(p.schema, cur, want)
	if err != nil {
		return 0, fmt.Errorf("job %q: %w", j.cfg.Name, err)
	}
	prev := p.latest
	if diff.Rows() == 0 {
		j.log.Info("the tables already hold those rows; nothing to change", "reason", reason)
		return prev.number, nil
	}
	if err := hostmon.ApplyCaptured(ctx, conn, diff); err != nil {
		p.dropConn(err)
		return 0, fmt.Errorf("job %q: %s: the transaction was rolled back, nothing changed: %w", j.cfg.Name, reason, p.redact(err))
	}
	next, _ := j.a.store.NextGeneration(j.cfg.Name)
	if cerr := j.a.after.AfterApply(ctx, &j.cfg, next, diff.Changed()); cerr != nil {
		j.log.Warn("the restored rows failed their checks; writing the rows before back", "err", cerr)
		back, err := hostmon.Diff(p.schema, want, cur)
		if err == nil {
			err = hostmon.ApplyCaptured(context.WithoutCancel(ctx), conn, back)
		}
		if err != nil {
			return 0, fmt.Errorf("job %q: %s failed its checks (%v) and writing the rows before back failed: %w", j.cfg.Name, reason, cerr, p.redact(err))
		}
		_ = p.collectAs(context.WithoutCancel(ctx), reason+" failed its checks; rows written back")
		return 0, fmt.Errorf("job %q: %s failed its checks; the rows before were written back: %w", j.cfg.Name, reason, cerr)
	}
	if err := p.collectAs(ctx, reason); err != nil {
		return 0, fmt.Errorf("job %q: %s was committed; recording it failed (it is recorded at the next collect): %w", j.cfg.Name, reason, err)
	}
	if p.latest != nil && p.latest != prev {
		if gi, err := j.a.store.GenerationInfo(j.cfg.Name, prev.number); err == nil && gi.State == store.StateGood { // a bad one keeps saying why
			if err := j.a.store.SetState(j.cfg.Name, prev.number, store.StateRolledBack, reason); err != nil {
				j.log.Warn("cannot mark the replaced generation", "generation", prev.number, "err", err)
			}
		}
		j.log.Info(reason, "rows", diff.Rows(), "new_generation", p.latest.number)
	}
	return p.latest.number, nil
}

// readStoredChangeset decodes the changeset stored as h in st, checking
// its content hash.
func readStoredChangeset(ctx context.Context, st *store.Store, h index.Hash) (*hostmon.Changeset, error) {
	rc, err := st.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cs, err := hostmon.DecodeChangeset(bufio.NewReaderSize(rc, 1<<16))
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil { // the store checks the hash at EOF
		return nil, err
	}
	return cs, nil
}

// pgCheckpointLabel labels the store extra holding a source's rows at a
// generation.
const pgCheckpointLabel = "postgres rows at generation %d (checkpoint)"

// checkpointEvery is how many generations apart a source keeps
// checkpoints: four in every keep, so that a rollback reaches all but the
// oldest few kept generations.
func checkpointEvery(keep int) uint64 { return uint64(max(2, keep/4)) }

// checkpoint keeps, every checkpointEvery generations, the rows at g as a
// store extra: it lives as long as g is kept (store.Extra), and it is
// where PGRowsAt starts instead of the job's first snapshot, which keep
// trims after keep generations. A snapshot generation is its own start.
func (p *pgJob) checkpoint(ctx context.Context, g *pgGen) {
	j := p.j
	if g.snapshot || g.number%checkpointEvery(j.cfg.Keep) != 0 {
		return
	}
	err := func() error {
		rows, err := PGRowsAt(ctx, j.a.store, j.cfg.Name, g.number)
		if err != nil {
			return err
		}
		h, _, err := p.putChangeset(ctx, rows)
		if err != nil {
			return err
		}
		return j.a.store.SaveExtra(j.cfg.Name, fmt.Sprintf(pgCheckpointLabel, g.number), h)
	}()
	if err != nil {
		j.log.Warn("cannot keep a checkpoint of the rows; a rollback past it may be refused", "generation", g.number, "err", err)
	}
}
