package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/backup"
	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/store"
	"pbxsync/syncer"
)

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("backup", "[--config FILE] --job JOB [--generation N] --out FILE",
		"Writes generation N of a job (default: the newest good one) from the store in\ndata_dir to one self-contained archive (.tar.zst: a manifest with every item's\nBLAKE3 hash and the content; for a postgres job every row of its tables). The\narchive is written beside FILE, read back and verified, and only then renamed to\nFILE. Works whether or not the agent runs.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	gen := fs.Uint64("generation", 0, "generation to back up (0: the newest good one)")
	out := fs.String("out", "", "archive to write (required)")
	if code, done := parse(fs, args); done {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "pbxsync backup: --out FILE is required")
		return 2
	}
	cfg, ok := loadJobConfig("backup", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	job, _ := cfg.JobByName(*jobName)
	st, err := store.OpenReadOnly(filepath.Join(cfg.Node.DataDir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync backup:", err)
		return 1
	}
	defer st.Close()
	m, err := syncer.WriteBackup(ctx, st, *job, cfg.Node.Name, *gen, *out, syncer.PGLiveRows(*job))
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync backup:", err)
		return 1
	}
	n, size := m.Files()
	fmt.Fprintf(stdout, "wrote %s: job %s generation %d, %d items (%d files, %d bytes), verified\n", *out, m.Job, m.Generation, len(m.Items), n, size)
	return 0
}

func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restore", "[--config FILE] --job JOB --from FILE [--dry-run]",
		"Verifies a backup archive (every hash, the manifest, that it is of this job):\na damaged archive or one of another job is refused and nothing is written.\nThen the running agent applies it as a new generation with the job's usual\nactions and checks (a failure puts the previous generation back); on a push\nsource that generation goes to every target. On a push target it is refused:\nrestore on the source. --dry-run verifies and prints what would change.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	from := fs.String("from", "", "archive to restore (required)")
	dry := fs.Bool("dry-run", false, "verify the archive and print what would change; change nothing")
	if code, done := parse(fs, args); done {
		return code
	}
	if *from == "" {
		fmt.Fprintln(stderr, "pbxsync restore: --from FILE is required")
		return 2
	}
	cfg, ok := loadJobConfig("restore", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	job, _ := cfg.JobByName(*jobName)
	path, err := filepath.Abs(*from)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync restore:", err)
		return 1
	}
	check := func(m *backup.Manifest) error {
		if m.Job != job.Name || m.Type != job.Type {
			return fmt.Errorf("the archive holds job %q (%s), not job %q (%s); nothing was changed", m.Job, m.Type, job.Name, job.Type)
		}
		return nil
	}
	var rows *hostmon.Changeset
	m, err := backup.ReadFile(path, check, func(_ backup.Item, r io.Reader) error {
		if job.Type != config.TypePostgres {
			return nil
		}
		cs, err := hostmon.DecodeChangeset(r)
		rows = cs
		return err
	})
	if err != nil {
		fmt.Fprintf(stderr, "pbxsync restore: refused, nothing was changed: %v\n", err)
		return 1
	}
	n, size := m.Files()
	fmt.Fprintf(stdout, "%s: verified: job %s generation %d of %s (%s), %d files, %d bytes\n", path, m.Job, m.Generation, m.Node, m.Time.Local().Format(time.DateTime), n, size)
	if *dry {
		if job.Type == config.TypeFiles {
			dryRunFiles(cfg, job.Name, m, stdout)
		} else {
			dryRunRows(ctx, *job, rows, stdout)
		}
		fmt.Fprintln(stdout, "dry run: nothing was changed")
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 6*time.Hour)
	defer cancel()
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync restore:", err)
		return 1
	}
	defer f.Close()
	// the agent reads the archive from the socket and verifies it again
	// while it applies it: it may not see the file (PrivateTmp, ProtectHome)
	resp, err := control.CallWith(ctx, control.SocketPath(cfg.Node.DataDir), control.Request{Cmd: "restore", Job: *jobName, From: path}, f)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync restore:", err)
		return 1
	}
	fmt.Fprintf(stdout, "job %s: restored as generation %d\n", *jobName, resp.Generation)
	return 0
}

// dryRunFiles prints how the newest good generation in the store differs
// from the archive.
func dryRunFiles(cfg *config.Config, job string, m *backup.Manifest, stdout io.Writer) {
	st, err := store.OpenReadOnly(filepath.Join(cfg.Node.DataDir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stdout, "cannot compare with the store:", err)
		return
	}
	defer st.Close()
	g, ok, err := st.Latest(job, store.StateGood)
	if err != nil || !ok {
		fmt.Fprintln(stdout, "no good generation in the store to compare with")
		return
	}
	add, change, del := backup.Compare(g.Index, m.Index())
	fmt.Fprintf(stdout, "against generation %d: %d to add, %d to change, %d to delete\n", g.Number, len(add), len(change), len(del))
	for _, l := range []struct {
		sign  string
		paths []string
	}{{"+", add}, {"~", change}, {"-", del}} {
		for _, p := range l.paths {
			fmt.Fprintf(stdout, "  %s %s\n", l.sign, p)
		}
	}
}

// dryRunRows prints how the rows in the job's database differ from the
// archive's.
func dryRunRows(ctx context.Context, job config.Job, rows *hostmon.Changeset, stdout io.Writer) {
	cur, err := syncer.PGLiveRows(job)(ctx)
	if err != nil {
		fmt.Fprintln(stdout, "cannot compare with the database:", err)
		return
	}
	d, err := hostmon.Diff(cur.Schema, cur, rows)
	if err != nil {
		fmt.Fprintln(stdout, "cannot compare with the database:", err)
		return
	}
	fmt.Fprintf(stdout, "against the database now: %d rows to write back, %d to delete\n", d.Rows()-countDeletes(d), countDeletes(d))
	for _, t := range d.Changed() {
		tc := d.Tables[t]
		fmt.Fprintf(stdout, "  %s: %d to write, %d to delete\n", t, len(tc.Upserts), len(tc.Deletes))
	}
}

func countDeletes(cs *hostmon.Changeset) int {
	n := 0
	for _, tc := range cs.Tables {
		n += len(tc.Deletes)
	}
	return n
}
