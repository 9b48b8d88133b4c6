package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/backup"
	"pbxsync/internal/identity"
	"pbxsync/internal/index"
	"pbxsync/internal/pgtest"
)

// TestRestoreDryRunPostgres: restore --dry-run of a postgres archive
// compares its rows with the database's and changes nothing.
func TestRestoreDryRunPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDB(t)
	c := pgtest.Connect(t, dsn)
	ctx := context.Background()
	for _, sql := range []string{
		`CREATE TABLE ps_aors (id text PRIMARY KEY, max_contacts int)`,
		`INSERT INTO ps_aors VALUES ('100', 1), ('101', 1), ('102', 5)`,
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	schema, err := hostmon.ReadSchema(ctx, c, []string{"ps_aors"})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := hostmon.ReadRows(ctx, c, schema)
	if err != nil {
		t.Fatal(err)
	}
	// the archive: 100 as it is, 101 with other values, 103 new, 102 gone
	rows := &hostmon.Changeset{Snapshot: true, Schema: schema, Tables: map[string]*hostmon.TableChanges{"ps_aors": {Upserts: nil}}}
	for _, r := range cur.Tables["ps_aors"].Upserts {
		switch {
		case strings.Contains(string(r), `"101"`):
			rows.Tables["ps_aors"].Upserts = append(rows.Tables["ps_aors"].Upserts, []byte(`{"id": "101", "max_contacts": 3}`))
		case strings.Contains(string(r), `"100"`):
			rows.Tables["ps_aors"].Upserts = append(rows.Tables["ps_aors"].Upserts, r)
		}
	}
	rows.Tables["ps_aors"].Upserts = append(rows.Tables["ps_aors"].Upserts, []byte(`{"id": "103", "max_contacts": 1}`))
	var buf bytes.Buffer
	if err := rows.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	arch := filepath.Join(t.TempDir(), "rt.tar.zst")
	m := &backup.Manifest{Job: "rt", Type: "postgres", Node: "a", Generation: 3,
		Items: []backup.Item{{Path: backup.RowsItem, Kind: "file", Size: int64(len(b)), Mode: 0o600, Hash: index.Sum(b).String()}}}
	if err := backup.WriteFile(ctx, arch, m, func(context.Context, string, index.Hash) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}); err != nil {
		t.Fatal(err)
	}
	peer := identity.IDFromPublicKey(make([]byte, 32))
	cfg := filepath.Join(t.TempDir(), "pbxsync.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[node]\nname = \"a\"\nlisten = \"127.0.0.1:7420\"\ndata_dir = %q\n\n[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:7421\"\nid = %q\n\n[[job]]\nname = \"rt\"\ntype = \"postgres\"\ndsn = %q\ntables = [\"ps_aors\"]\nsource = \"a\"\ntargets = [\"b\"]\n",
		t.TempDir(), peer.String(), dsn)), 0o600)

	var stdout, stderr bytes.Buffer
	if code := run([]string{"restore", "--config", cfg, "--job", "rt", "--from", arch, "--dry-run"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"verified: job rt generation 3", "2 rows to write back, 1 to delete", "ps_aors: 2 to write, 1 to delete", "nothing was changed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, stdout.String())
		}
	}
	after, _ := hostmon.ReadRows(ctx, c, schema)
	if d, _ := hostmon.Diff(schema, cur, after); d.Rows() != 0 {
		t.Fatal("a dry run changed the database")
	}
}
