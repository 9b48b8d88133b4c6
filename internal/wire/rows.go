package wire

import (
	"errors"
	"fmt"

	"pbxsync/internal/index"
)

// Message types of postgres jobs.
const (
	TypeRowsAnnounce Type = 10
	TypeRowsHave     Type = 11
)

// Bounds on the schema carried by a RowsAnnounce.
const (
	MaxTables  = 1024
	MaxColumns = 1600 // PostgreSQL's own limit
)

// Column is one column of a table's schema fingerprint.
type Column struct {
	Name string `json:"n"`
	Type string `json:"t"` // format_type(), e.g. "character varying(40)"
}

// TableSchema is the fingerprint of one table: its columns in order and
// its key columns.
type TableSchema struct {
	Table   string   `json:"table"`
	Columns []Column `json:"columns"`
	Key     []string `json:"key"`
}

// RowsAnnounce tells a target of a postgres job about the source's newest
// row generation: a blob (JSON lines, fetched with Get like file content)
// holding either the rows changed since generation Base or, when Snapshot
// is set, every row of every table.
type RowsAnnounce struct {
	Job      string        `json:"job"`
	Version  uint64        `json:"version"` // the source's generation number
	Base     uint64        `json:"base"`    // the generation this one changes; 0 for the first
	Snapshot bool          `json:"snapshot,omitempty"`
	Origin   string        `json:"origin"`
	Hash     []byte        `json:"hash"` // BLAKE3 of the blob
	Size     int64         `json:"size"` // uncompressed blob length
	Rows     int           `json:"rows"` // changed rows, for logs
	Schema   []TableSchema `json:"schema"`
}

// Type implements Message.
func (*RowsAnnounce) Type() Type { return TypeRowsAnnounce }

// Validate implements Message.
func (m *RowsAnnounce) Validate() error {
	if err := checkName("job", m.Job); err != nil {
		return err
	}
	if err := checkName("origin", m.Origin); err != nil {
		return err
	}
	if m.Version == 0 {
		return errors.New("version 0")
	}
	if m.Base >= m.Version {
		return fmt.Errorf("base %d is not before version %d", m.Base, m.Version)
	}
	if len(m.Hash) != index.HashSize {
		return fmt.Errorf("hash: %d bytes, want %d", len(m.Hash), index.HashSize)
	}
	if m.Size < 0 || m.Size > MaxBody {
		return fmt.Errorf("size %d out of range", m.Size)
	}
	if m.Rows < 0 {
		return fmt.Errorf("rows %d out of range", m.Rows)
	}
	return ValidateSchema(m.Schema)
}

// ValidateSchema checks a schema fingerprint: at least one table, names
// that are bounded UTF-8 without NUL, unique tables and columns, and key
// columns that are columns of their table.
func ValidateSchema(s []TableSchema) error {
	if len(s) == 0 || len(s) > MaxTables {
		return fmt.Errorf("schema: %d tables, want 1-%d", len(s), MaxTables)
	}
	tables := make(map[string]bool, len(s))
	for _, t := range s {
		if err := checkIdent("table", t.Table); err != nil {
			return err
		}
		if tables[t.Table] {
			return fmt.Errorf("schema: table %q appears twice", t.Table)
		}
		tables[t.Table] = true
		if len(t.Columns) == 0 || len(t.Columns) > MaxColumns {
			return fmt.Errorf("schema: table %q has %d columns", t.Table, len(t.Columns))
		}
		cols := make(map[string]bool, len(t.Columns))
		for _, c := range t.Columns {
			if err := checkIdent("column", c.Name); err != nil {
				return fmt.Errorf("table %q: %w", t.Table, err)
			}
			if err := checkIdent("type", c.Type); err != nil {
				return fmt.Errorf("table %q column %q: %w", t.Table, c.Name, err)
			}
			if cols[c.Name] {
				return fmt.Errorf("schema: table %q: column %q appears twice", t.Table, c.Name)
			}
			cols[c.Name] = true
		}
		if len(t.Key) == 0 || len(t.Key) > len(t.Columns) {
			return fmt.Errorf("schema: table %q has %d key columns", t.Table, len(t.Key))
		}
		for _, k := range t.Key {
			if !cols[k] {
				return fmt.Errorf("schema: table %q: key column %q is not a column", t.Table, truncate(k, 40))
			}
		}
	}
	return nil
}

func checkIdent(field, s string) error {
	if s == "" || len(s) > 256 {
		return fmt.Errorf("%s %q: want 1-256 bytes", field, truncate(s, 40))
	}
	for _, r := range s {
		if r == 0 || r == '\uFFFD' {
			return fmt.Errorf("%s %q: NUL or invalid UTF-8", field, truncate(s, 40))
		}
	}
	return nil
}

// RowsHave tells the source of a postgres job which of its generations the
// target's database holds (0: none it knows of), when an announcement does
// not follow on from it; the source answers with a snapshot or the next
// generation in the chain.
type RowsHave struct {
	Job     string `json:"job"`
	Version uint64 `json:"version"`
}

// Type implements Message.
func (*RowsHave) Type() Type { return TypeRowsHave }

// Validate implements Message.
func (m *RowsHave) Validate() error { return checkName("job", m.Job) }
