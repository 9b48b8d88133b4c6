package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Fatalf("ID changed: %s then %s", a.ID, b.ID)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %o, want 600", st.Mode().Perm())
	}
}

func TestLoadRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("want a mode error, got %v", err)
	}
}

func TestIDRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := id.ID.String()
	if len(s) != 59 || strings.Count(s, "-") != 3 {
		t.Fatalf("unexpected form %q", s)
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", "")} {
		got, err := ParseID(in)
		if err != nil {
			t.Fatalf("ParseID(%q): %v", in, err)
		}
		if got != id.ID {
			t.Fatalf("ParseID(%q) = %s", in, got)
		}
	}
}

func TestParseIDRejects(t *testing.T) {
	good := IDFromPublicKey(make([]byte, 32)).String()
	// flip one character of the first group to another valid base32 character
	typo := []byte(good)
	if typo[0] == 'A' {
		typo[0] = 'B'
	} else {
		typo[0] = 'A'
	}
	for name, in := range map[string]string{
		"empty":     "",
		"short":     good[:20],
		"bad char":  strings.Replace(good, good[:1], "1", 1),
		"typo":      string(typo),
		"too long":  good + "A",
		"not-an-id": "not-an-id",
	} {
		if _, err := ParseID(in); !errors.Is(err, ErrBadID) {
			t.Errorf("%s: ParseID(%q) = %v, want ErrBadID", name, in, err)
		}
	}
}
