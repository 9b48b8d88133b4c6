package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/backup"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// WriteBackup writes generation gen of job (0: the newest good one) from
// st to the archive at out, atomically and verified (backup.WriteFile).
// st may be the agent's store or one opened read-only while the agent
// runs. A postgres job's archive holds the rows of its tables at gen,
// rebuilt from the stored changesets (see PGRowsAt); when keep has
// trimmed the chain back to a snapshot and gen is the newest good
// generation (or 0), live (if not nil) reads them from the database
// instead, so a long-running source still backs up.
func WriteBackup(ctx context.Context, st *store.Store, job config.Job, node string, gen uint64, out string, live func(context.Context) (*hostmon.Changeset, error)) (*backup.Manifest, error) {
	var g *store.Generation
	var err error
	if gen == 0 {
		var ok bool
		g, ok, err = st.Latest(job.Name, store.StateGood)
		if err == nil && !ok {
			err = fmt.Errorf("job %q has no good generation yet", job.Name)
		}
	} else {
		g, err = st.Generation(job.Name, gen)
		if err == nil && g.State != store.StateGood && g.State != store.StateRolledBack {
			err = fmt.Errorf("generation %d of job %q is %s (%s): only a good generation is backed up", gen, job.Name, g.State, g.Reason)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("backup of job %q: %w", job.Name, err)
	}
	m := &backup.Manifest{Job: job.Name, Type: job.Type, Node: node, Generation: g.Number, Origin: g.Origin, Time: g.Time, Written: time.Now().UTC()}
	if job.Type != config.TypePostgres {
		m.Items = backup.FromIndex(g.Index)
		content := func(ctx context.Context, _ string, h index.Hash) (io.ReadCloser, error) { return st.Open(ctx, h) }
		if err := backup.WriteFile(ctx, out, m, content); err != nil {
			return nil, err
		}
		return m, nil
	}
	rows, err := PGRowsAt(ctx, st, job.Name, g.Number)
	if errors.Is(err, errNoChain) && live != nil {
		if newest, ok, lerr := st.Latest(job.Name, store.StateGood); lerr == nil && ok && newest.Number == g.Number {
			rows, err = live(ctx)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("backup of job %q: %w", job.Name, err)
	}
	return m, writeRowsBackup(ctx, out, m, rows)
}

// writeRowsBackup writes rows as the one item of a postgres archive.
func writeRowsBackup(ctx context.Context, out string, m *backup.Manifest, rows *hostmon.Changeset) error {
	var buf bytes.Buffer
	if err := rows.Encode(&buf); err != nil {
		return fmt.Errorf("backup of job %q: encode rows: %w", m.Job, err)
	}
	b := buf.Bytes()
	h := index.Sum(b)
	m.Items = []backup.Item{{Path: backup.RowsItem, Kind: "file", Size: int64(len(b)), Mode: 0o600, Hash: h.String()}}
	return backup.WriteFile(ctx, out, m, func(context.Context, string, index.Hash) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// checkArchive refuses an archive of another job or type.
func checkArchive(job config.Job) func(*backup.Manifest) error {
	return func(m *backup.Manifest) error {
		if m.Job != job.Name || m.Type != job.Type {
			return fmt.Errorf("the archive holds job %q (%s), not job %q (%s); nothing was changed", m.Job, m.Type, job.Name, job.Type)
		}
		return nil
	}
}

// Restore applies the backup archive read from r (called name in logs and
// the generation's reason) to job as a new generation and returns its
// number. The archive is verified first (a damaged archive
// or one of another job is refused and nothing changes); then, in the
// job's loop, the tree (or the tables) is made equal to the archive, the
// job's actions and checks run, and a failure restores what was there.
// On a push source the new generation goes to every target, as an edit
// would. A push target refuses: its source would put its version back.
func (a *Agent) Restore(ctx context.Context, jobName, name string, r io.Reader) (uint64, error) {
	j := a.job(jobName)
	if j == nil {
		return 0, fmt.Errorf("no job %q", jobName)
	}
	if j.cfg.Mode == config.ModeMesh {
		return 0, fmt.Errorf("job %q is a mesh job: restore is not built for mesh jobs yet; unpack the archive into the tree of one member (zstd -dc FILE | tar -x) and the members take it as an edit", jobName)
	}
	if !j.isSource {
		return 0, fmt.Errorf("job %q is a push target of %s, which would put its version back at once: restore the archive on %s", jobName, j.cfg.Source, j.cfg.Source)
	}
	var gen uint64
	err := a.inLoop(ctx, j, func(ctx context.Context) error {
		var err error
		switch k := j.kind.(type) {
		case nil:
			gen, err = j.restoreFiles(ctx, name, r)
		case *pgJob:
			gen, err = k.restore(ctx, name, r)
		default:
			err = fmt.Errorf("job %q: restore is not supported for this kind of job", jobName)
		}
		return err
	})
	return gen, err
}

// inLoop runs f in j's loop and waits for it.
func (a *Agent) inLoop(ctx context.Context, j *job, f func(ctx context.Context) error) error {
	reply := make(chan error, 1)
	select {
	case j.inbox <- event{do: func(ctx context.Context) { reply <- f(ctx) }, refused: func(err error) { reply <- err }}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restoreFiles is Restore of a files job on its source.
func (j *job) restoreFiles(ctx context.Context, path string, r io.Reader) (uint64, error) {
	// content goes to the store as it is read; it is used only once the
	// whole archive verified (an unused blob is collected by GC)
	m, err := backup.Read(r, checkArchive(j.cfg), func(it backup.Item, r io.Reader) error {
		_, _, err := j.a.store.PutReader(ctx, r)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("restore job %q from %s: %w", j.cfg.Name, path, err)
	}
	// the job's filters now decide, as for a peer's announcement: a path
	// they exclude would land in the tree but in no generation. The
	// archive is the admin's own: setuid and setgid bits stay.
	ad := admit(m.Index(), j.filter, true)
	if len(ad.refused) > 0 {
		var paths []string
		for p, why := range ad.refused {
			paths = append(paths, p+": "+why)
		}
		slices.Sort(paths)
		j.log.Warn("restore leaves out paths of the archive that the job does not take", "count", len(paths), "paths", firstN(paths, 10))
	}
	want := ad.want
	for it := range want.Items() {
		if it.Kind == index.KindFile && !j.a.store.Has(it.Hash) {
			return 0, fmt.Errorf("restore job %q from %s: %s is not in the store after reading the archive", j.cfg.Name, path, it.Path)
		}
	}
	if j.latest == nil {
		return 0, fmt.Errorf("restore job %q: the job has not recorded its first generation yet; try again in a moment", j.cfg.Name)
	}
	if err := j.scanAll(ctx); err != nil {
		return 0, fmt.Errorf("restore job %q: rescan %s: %w", j.cfg.Name, j.cfg.Path, err)
	}
	if err := j.settleLocalChanges(ctx); err != nil { // an edit not yet recorded becomes its own generation
		return 0, fmt.Errorf("restore job %q: %w", j.cfg.Name, err)
	}
	cur := j.latest
	reason := fmt.Sprintf("restored from backup %s (generation %d of %s)", path, m.Generation, m.Node)
	if _, err := j.applyIndex(ctx, cur.Number, want, true); err != nil {
		return 0, fmt.Errorf("restore job %q from %s: %w", j.cfg.Name, path, err)
	}
	next, _ := j.a.store.NextGeneration(j.cfg.Name)
	changed := j.changedPaths(cur.Index, j.states.Index())
	if err := j.a.after.AfterApply(ctx, &j.cfg, next, changed); err != nil {
		j.log.Warn("restored tree failed its checks; putting the previous generation back", "generation", cur.Number, "err", err)
		if rerr := j.restore(context.WithoutCancel(ctx), cur.Number, cur.Index); rerr != nil {
			return 0, fmt.Errorf("restore job %q: checks failed (%v) and putting generation %d back failed: %w", j.cfg.Name, err, cur.Number, rerr)
		}
		if aerr := j.a.after.AfterApply(context.WithoutCancel(ctx), &j.cfg, cur.Number, changed); aerr != nil {
			j.log.Warn("actions after putting the previous generation back failed", "err", aerr)
		}
		return 0, fmt.Errorf("restore job %q: the restored tree failed its checks, generation %d is back: %w", j.cfg.Name, cur.Number, err)
	}
	if err := j.newSourceGeneration(ctx, j.states.Index(), reason); err != nil {
		return 0, fmt.Errorf("restore job %q: %w", j.cfg.Name, err)
	}
	j.log.Info("restored from backup", "file", path, "archive_generation", m.Generation, "new_generation", j.latest.Number)
	j.announce(true)
	return j.latest.Number, nil
}

// errNoChain is returned by PGRowsAt when a changeset of the chain back
// to a snapshot is no longer kept.
var errNoChain = errors.New("no longer kept (keep trims old generations)")
