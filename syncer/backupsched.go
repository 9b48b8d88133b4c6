package syncer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pbxsync/hostmon"
	"pbxsync/internal/backup"
	"pbxsync/internal/config"
	"pbxsync/internal/store"
)

// backupLoop writes the scheduled backups of every job with a backup
// setting: it looks once a minute whether one is due (the first time a
// minute after start, when the jobs have settled).
func (a *Agent) backupLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.scheduledBackups(ctx, time.Now())
	}
}

// scheduledBackups writes, for each job whose backup is due at now, an
// archive of its newest good generation into the job's backup dir, and
// then deletes the oldest archives beyond keep. A failed write deletes
// nothing. now is a parameter so that tests need no clock.
func (a *Agent) scheduledBackups(ctx context.Context, now time.Time) {
	for _, j := range a.allJobs() {
		b := j.cfg.Backup
		if b.Every == 0 || ctx.Err() != nil {
			continue
		}
		if err := a.scheduledBackup(ctx, j.cfg, now); err != nil {
			j.log.Warn("scheduled backup failed", "dir", b.Dir, "err", err)
		}
	}
}

func (a *Agent) scheduledBackup(ctx context.Context, job config.Job, now time.Time) error {
	b := job.Backup
	if err := os.MkdirAll(b.Dir, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(b.Dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	due, remove := backup.Plan(job.Name, names, b.Every, b.Keep, now)
	if due {
		g, ok, err := a.store.Latest(job.Name, store.StateGood)
		if err != nil {
			return err
		}
		if !ok {
			return nil // nothing to back up yet; looked at again in a minute
		}
		out := filepath.Join(b.Dir, backup.Name(job.Name, g.Number, now))
		m, err := WriteBackup(ctx, a.store, job, a.node, g.Number, out, PGLiveRows(job))
		if err != nil {
			return err
		}
		n, size := m.Files()
		a.log.Info("scheduled backup written", "job", job.Name, "file", out, "generation", m.Generation, "files", n, "bytes", size)
	}
	for _, r := range remove {
		if err := os.Remove(filepath.Join(b.Dir, r)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove an old backup: %w", err)
		}
		a.log.Info("old backup removed", "job", job.Name, "file", r, "keep", b.Keep)
	}
	return nil
}

// PGLiveRows reads a postgres job's rows from its database (nil for a
// files job), for a backup of the newest generation when the store no
// longer holds the chain of changesets back to a snapshot.
func PGLiveRows(job config.Job) func(context.Context) (*hostmon.Changeset, error) {
	if job.Type != config.TypePostgres {
		return nil
	}
	return func(ctx context.Context) (*hostmon.Changeset, error) {
		dsn, err := job.ReadDSN()
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", job.Name, err)
		}
		pc, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("job %s: the DSN does not parse (not shown: it may hold a password)", job.Name)
		}
		conn, err := pgx.ConnectConfig(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("job %s: connect to the database: %s", job.Name, redactPassword(err, pc.Password))
		}
		defer conn.Close(context.WithoutCancel(ctx))
		schema, err := hostmon.ReadSchema(ctx, conn, job.Tables)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", job.Name, err)
		}
		return hostmon.ReadRows(ctx, conn, schema)
	}
}

// redactPassword is err's text without password.
func redactPassword(err error, password string) string {
	s := err.Error()
	if password == "" {
		return s
	}
	return strings.ReplaceAll(s, password, "xxxxx")
}
