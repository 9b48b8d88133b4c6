package syncer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
	"pbxsync/syncer/core"
)

// jobKind is a job type other than files: it runs in place of the files
// loop (reading the job's inbox) and serves the job's content requests.
type jobKind interface {
	run(ctx context.Context) error
	serveGet(ctx context.Context, peer string, g *wire.Get, s *remotemon.Stream)
}

// Paths of the items of a postgres generation's index: the changeset blob
// and, on a target, the rows it replaced.
const (
	pgRowsItem   = "rows"
	pgBeforeItem = "before"
)

// pgReadLimit bounds the change-log entries one generation takes.
const pgReadLimit = 100_000

// pgGen is what a source knows of one of its generations.
type pgGen struct {
	number, base uint64
	snapshot     bool
	hash         index.Hash
	size         int64
	rows         int
	schema       []wire.TableSchema
}

// pgPersisted is the state of a postgres job kept in the store.
type pgPersisted struct {
	Bad map[string]string `json:"bad"` // changeset blob hash -> why it failed here
	// RelayNewest is the newest version relayed to this target (the
	// replay guard, federation.newest).
	RelayNewest uint64 `json:"relay_newest,omitempty"`
}

// pgJob is a postgres push job: the source captures row changes into
// generations of changesets, targets apply them in one transaction each.
// Everything is owned by the loop goroutine except what serveGet reads
// under j.mu (j.serving).
type pgJob struct {
	j      *job
	pgcfg  *pgx.ConnConfig
	secret string // the DSN's password, redacted from errors
	conn   *pgx.Conn
	schema []wire.TableSchema
	wake   chan struct{}

	// source
	gens    map[uint64]*pgGen
	latest  *pgGen
	targets map[string]*core.RowsTarget

	// target
	have   uint64 // source generation the database holds
	genNum uint64 // our generation number for it
	bad    map[string]string
}

func newPGJob(j *job) *pgJob {
	return &pgJob{j: j, wake: make(chan struct{}, 1), gens: map[uint64]*pgGen{}, targets: map[string]*core.RowsTarget{}, bad: map[string]string{}}
}

// errStop ends a job's loop for good (until a reload or restart).
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

// dsn reads the job's connection string from dsn or dsn_file.
func (p *pgJob) dsn() (string, error) {
	s, err := p.j.cfg.ReadDSN()
	if err != nil {
		return "", fmt.Errorf("job %s: %w", p.j.cfg.Name, err)
	}
	return s, nil
}

// redact removes the DSN's password from an error's text.
func (p *pgJob) redact(err error) error {
	if err == nil || p.secret == "" || !strings.Contains(err.Error(), p.secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), p.secret, "xxxxx"))
}

// db returns the job's connection, connecting when there is none.
func (p *pgJob) db(ctx context.Context) (*pgx.Conn, error) {
	if p.conn != nil && !p.conn.IsClosed() {
		return p.conn, nil
	}
	c, err := pgx.ConnectConfig(ctx, p.pgcfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("job %s: connect to the database: %w", p.j.cfg.Name, p.redact(err))
	}
	p.conn = c
	return c, nil
}

// dropConn closes the connection after an error that may have broken it.
func (p *pgJob) dropConn(err error) {
	var pgErr *pgconn.PgError
	if p.conn != nil && !errors.As(err, &pgErr) {
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

func (p *pgJob) run(ctx context.Context) error {
	j := p.j
	dsn, err := p.dsn()
	if err != nil {
		return err
	}
	p.pgcfg, err = pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("job %s: the DSN does not parse (not shown: it may hold a password)", j.cfg.Name)
	}
	p.secret = p.pgcfg.Password
	defer func() {
		if p.conn != nil {
			p.conn.Close(context.Background())
		}
	}()
	var pers pgPersisted
	if _, err := j.a.store.JobState(j.cfg.Name, &pers); err != nil {
		j.log.Warn("cannot read saved job state", "err", err)
	}
	if pers.Bad != nil {
		p.bad = pers.Bad
	}
	j.fed.newest = pers.RelayNewest
	// connect, read the schema and install; retried until the database is there
	for {
		err := p.setup(ctx)
		if err == nil {
			break
		}
		var stop errStop
		if errors.As(err, &stop) || ctx.Err() != nil {
			return err
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
	if j.isSource {
		go hostmon.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) {
			c, err := pgx.ConnectConfig(ctx, p.pgcfg.Copy())
			return c, p.redact(err)
		}, p.wake, j.log)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
			if j.isSource {
				err = p.collect(ctx)
			}
		case e := <-j.inbox:
			err = p.onEvent(ctx, e)
		case <-tick.C:
			if j.isSource {
				err = p.collect(ctx)
				p.announce(false)
			}
		}
		var stop errStop
		if errors.As(err, &stop) {
			return err
		}
		if err != nil {
			p.dropConn(err)
			j.log.Warn("postgres job step failed; will retry", "err", err)
			j.setStatus(func(s *JobStatus) { s.State, s.LastError = "error", err.Error() })
		}
	}
}

// setup connects, reads the tables' schema and installs pbxsync's objects
// (with capture triggers on a source).
func (p *pgJob) setup(ctx context.Context) error {
	j := p.j
	conn, err := p.db(ctx)
	if err != nil {
		return err
	}
	if p.schema, err = hostmon.ReadSchema(ctx, conn, j.cfg.Tables); err != nil {
		return fmt.Errorf("job %s: %w", j.cfg.Name, err)
	}
	if j.isSource {
		if err := hostmon.Install(ctx, conn, p.schema); err != nil {
			return fmt.Errorf("job %s: %w", j.cfg.Name, err)
		}
		return p.startSource(ctx)
	}
	if err := hostmon.Install(ctx, conn, nil); err != nil {
		return fmt.Errorf("job %s: %w", j.cfg.Name, err)
	}
	return p.startTarget(ctx)
}

func (p *pgJob) onEvent(ctx context.Context, e event) error {
	switch {
	case e.rollback != nil && e.rollback.resume:
		e.rollback.reply <- rollbackResult{err: fmt.Errorf("job %q is not held (only files jobs on a push target can be)", p.j.cfg.Name)}
	case e.rollback != nil:
		gen, err := p.rollback(ctx, e.rollback.to, e.rollback.hold)
		e.rollback.reply <- rollbackResult{generation: gen, err: err}
	case e.syncNow != nil:
		e.syncNow <- p.syncNow(ctx)
	case e.do != nil:
		e.do(ctx)
	case e.peerChange:
		p.j.markPeerDown(e)
		if p.j.isSource && e.peerUp {
			if p.targets[e.peer] != nil {
				p.stepTarget(e.peer, returnedAt(e.at))
			}
			p.announce(false)
		}
		if !e.peerUp {
			p.j.relayDown(e.peer)
		}
	case e.msg != nil:
		switch m := e.msg.(type) {
		case *wire.RowsAnnounce:
			return p.onAnnounce(ctx, e.peer, m)
		case *wire.RowsHave:
			p.onHave(e.peer, m)
		case *wire.Result:
			p.onResult(e.peer, m)
		case *wire.Relay:
			return p.j.onRelay(ctx, e.peer, m)
		}
	}
	return nil
}

// putChangeset stores cs as a blob and returns its hash and length.
func (p *pgJob) putChangeset(ctx context.Context, cs *hostmon.Changeset) (index.Hash, int64, error) {
	var buf bytes.Buffer
	if err := cs.Encode(&buf); err != nil {
		return index.Hash{}, 0, err
	}
	return p.j.a.store.PutReader(ctx, &buf)
}

// readChangeset decodes a stored changeset.
func (p *pgJob) readChangeset(ctx context.Context, h index.Hash) (*hostmon.Changeset, error) {
	rc, err := p.j.a.store.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cs, err := hostmon.DecodeChangeset(bufio.NewReaderSize(rc, 1<<16))
	if err != nil {
		return nil, err
	}
	// the store verifies the content hash at EOF
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, err
	}
	return cs, nil
}

// pgItem is one item of a postgres generation's index.
func pgItem(path string, h index.Hash, size int64) index.Item {
	return index.Item{Path: path, Kind: index.KindFile, Size: size, Mode: 0o600, Hash: h}
}

func (p *pgJob) save() {
	if err := p.j.a.store.PutJobState(p.j.cfg.Name, pgPersisted{Bad: p.bad, RelayNewest: p.j.fed.newest}); err != nil {
		p.j.log.Warn("cannot save job state", "err", err)
	}
}
