package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

func sampleJournal() *Journal {
	return &Journal{Job: "etc", Generation: 12, Entries: []JournalEntry{
		{Path: "pjsip.conf", Op: OpWrite, Staged: "/etc/asterisk/.pbxsync/stage-12/pjsip.conf", Hash: index.Sum([]byte("new")), OldHash: index.Sum([]byte("old")), Mode: 0o640, MTime: 1700000000000000001},
		{Path: "empty.conf", Op: OpWrite, Staged: "/etc/asterisk/.pbxsync/stage-12/empty.conf", Hash: index.Sum(nil), Mode: 0o644},
		{Path: "old.conf", Op: OpDelete, OldHash: index.Sum([]byte("gone"))},
		{Path: "sounds/en", Op: OpMkdir, Mode: 0o755},
		{Path: "sounds/fr", Op: OpRmdir},
		{Path: "extensions.conf", Op: OpMeta, Mode: 0o600, MTime: 5},
	}}
}

func TestJournalRoundTrip(t *testing.T) {
	s := newTestStore(t)
	if j, ok, err := s.ReadJournal("etc"); j != nil || ok || err != nil {
		t.Fatalf("no journal: %v %v %v", j, ok, err)
	}
	want := sampleJournal()
	want.Exchange = true
	want.Entries[2].Staged = "/etc/asterisk/.pbxsync/stage-12/old.conf" // where an Exchange journal's delete sets its file aside
	if err := s.WriteJournal("etc", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.ReadJournal("etc")
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %v %v\n got %+v\nwant %+v", ok, err, got, want)
	}
	// Another process sees it too.
	ro, err := OpenReadOnly(s.Dir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, ok, err := ro.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read-only: %v %v", ok, err)
	}
	if err := s.ClearJournal("etc"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearJournal("etc"); err != nil {
		t.Fatal("clearing twice:", err)
	}
	if _, ok, err := s.ReadJournal("etc"); ok || err != nil {
		t.Fatalf("after clear: %v %v", ok, err)
	}
}

func TestTornJournalDetected(t *testing.T) {
	s := newTestStore(t)
	if err := s.WriteJournal("etc", sampleJournal()); err != nil {
		t.Fatal(err)
	}
	var full []byte
	mangle(t, s, "etc", nil, keyJournal, func(v []byte) []byte { full = v; return v })
	for _, cut := range []int{0, 10, len(full) / 2, len(full) - 1} {
		mangle(t, s, "etc", nil, keyJournal, func([]byte) []byte { return append([]byte(nil), full[:cut]...) })
		j, ok, err := s.ReadJournal("etc")
		if j != nil || ok || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"etc"`) {
			t.Fatalf("cut at %d: %v %v %v", cut, j, ok, err)
		}
	}
	flipped := append([]byte(nil), full...)
	flipped[len(flipped)-20] ^= 4
	mangle(t, s, "etc", nil, keyJournal, func([]byte) []byte { return flipped })
	if _, ok, err := s.ReadJournal("etc"); ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v %v", ok, err)
	}
}

func TestJournalValidates(t *testing.T) {
	s := newTestStore(t)
	bad := map[string]JournalEntry{
		"dotdot":           {Path: "../../etc/shadow", Op: OpDelete},
		"absolute":         {Path: "/etc/shadow", Op: OpDelete},
		"unknown op":       {Path: "a", Op: "chmod"},
		"relative staged":  {Path: "a", Op: OpWrite, Staged: "stage/a", Hash: index.Sum(nil)},
		"unclean staged":   {Path: "a", Op: OpWrite, Staged: "/stage/../etc/a", Hash: index.Sum(nil)},
		"write, no hash":   {Path: "a", Op: OpWrite, Staged: "/stage/a"},
		"delete w/ staged": {Path: "a", Op: OpDelete, Staged: "/stage/a"},
		"mode type bits":   {Path: "a", Op: OpMeta, Mode: 0o40755},
	}
	for name, e := range bad {
		if err := s.WriteJournal("etc", &Journal{Entries: []JournalEntry{e}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// an Exchange journal's delete names where it sets its file aside:
	// a clean absolute path, as a write's staged file
	for _, staged := range []string{"stage/a", "/stage/../etc/a"} {
		if err := s.WriteJournal("etc", &Journal{Exchange: true, Entries: []JournalEntry{{Path: "a", Op: OpDelete, Staged: staged}}}); err == nil {
			t.Errorf("delete set aside at %q: accepted", staged)
		}
	}
	if err := s.WriteJournal("etc", &Journal{Job: "other"}); err == nil {
		t.Error("journal of another job accepted")
	}
	// A well-formed file of another job, or with a bad path, is corrupt.
	for _, j := range []*Journal{
		{Job: "other"},
		{Job: "etc", Entries: []JournalEntry{{Path: "a/../../b", Op: OpRmdir}}},
	} {
		b := seal(keyJournal, []byte(`{"job":"`+j.Job+`","generation":1,"entries":[`+func() string {
			if len(j.Entries) == 0 {
				return ""
			}
			return `{"path":"` + j.Entries[0].Path + `","op":"rmdir"}`
		}()+`]}`))
		if _, err := decodeJournal("etc", b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v: %v", j, err)
		}
	}
}

// TestJournalEncodingIsMarshal: the journal written entry by entry is
// the JSON json.Marshal makes of the whole diskJournal (older agents
// read it, and a journal an older agent left is read as before), sealed
// alike; and it allocates a small multiple of the value (json.Marshal
// of a 100k-entry journal, its copy and seal's copy took ~4× the
// journal's ~25 MB at once).
func TestJournalEncodingIsMarshal(t *testing.T) {
	big := &Journal{Job: "etc", Generation: 3}
	for i := range 5000 {
		p := "site" + strings.Repeat("x", i%7) + "/<endpoint>&\"" + string(rune('a'+i%26)) + ".conf"
		big.Entries = append(big.Entries, JournalEntry{Path: p, Op: OpWrite, Staged: "/var/lib/pbxsync/staging/etc/s-" + p,
			Hash: index.Sum([]byte(p)), OldHash: index.Sum([]byte("old" + p)), Mode: 0o640, MTime: int64(i) * 1e9})
	}
	for _, j := range []*Journal{sampleJournal(), {Job: "etc", Generation: 4, Restore: true, Entries: sampleJournal().Entries},
		{Job: "etc", Generation: 5, Exchange: true, Entries: sampleJournal().Entries}, {Job: "empty"}, big} {
		d := diskJournal{Job: j.Job, Generation: j.Generation, Restore: j.Restore, Exchange: j.Exchange, Entries: []diskJournalEntry{}}
		for _, e := range j.Entries {
			de := diskJournalEntry{Path: e.Path, Op: e.Op, Staged: e.Staged, Mode: e.Mode, MTime: e.MTime}
			if !e.Hash.IsZero() {
				de.Hash = e.Hash.String()
			}
			if !e.OldHash.IsZero() {
				de.OldHash = e.OldHash.String()
			}
			d.Entries = append(d.Entries, de)
		}
		marshalled, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeJournal(j)
		if err != nil {
			t.Fatal(err)
		}
		body, err := unseal("journal", keyJournal, got)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, body); err != nil {
			t.Fatalf("journal of %d entries is not JSON: %v", len(j.Entries), err)
		}
		if !bytes.Equal(compact.Bytes(), marshalled) {
			t.Fatalf("journal of %d entries differs from json.Marshal's:\n%.300s\n%.300s", len(j.Entries), compact.Bytes(), marshalled)
		}
		back, err := decodeJournal(j.Job, seal(keyJournal, marshalled))
		if err != nil || len(back.Entries) != len(j.Entries) {
			t.Fatalf("a journal as older agents wrote it does not decode: %v", err)
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b, err := encodeJournal(big)
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 7*uint64(len(b))/2 { // ~1.3× here, 2.4× under -race; 5.6× before
		t.Fatalf("encoding a journal of %d bytes allocated %d bytes", len(b), alloc)
	}
}

// bigJournal returns a journal of n entries for generation gen.
func bigJournal(gen uint64, n int) *Journal {
	j := &Journal{Job: "etc", Generation: gen}
	for i := range n {
		p := fmt.Sprintf("d/f%03d.conf", i)
		j.Entries = append(j.Entries, JournalEntry{Path: p, Op: OpWrite, Staged: "/var/stage/" + p, Hash: index.Sum([]byte(p)), Mode: 0o640, MTime: int64(gen)})
	}
	return j
}

// journalPartBuckets returns the numbers of the part buckets of job.
func journalPartBuckets(t *testing.T, s *Store) []uint64 {
	t.Helper()
	var ids []uint64
	err := s.view(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bktJobs).Bucket([]byte("etc")).Bucket(bktJournalParts)
		if pb == nil {
			return nil
		}
		return pb.ForEachBucket(func(k []byte) error { ids = append(ids, u64val(k)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestJournalInParts writes large journals in parts: each reads back
// whole, parts no head names (a write the process did not finish) are
// ignored and then dropped, a damaged or missing part is corrupt.
func TestJournalInParts(t *testing.T) {
	s := newTestStore(t, WithJournalParts(3))
	a := bigJournal(1, 10)
	if err := s.WriteJournal("etc", a); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip: %v %v", ok, err)
	}
	ids := journalPartBuckets(t, s)
	if len(ids) != 1 {
		t.Fatalf("part buckets %v, want one", ids)
	}
	// a write of b stopped before its head: its parts are there, a is
	// the journal
	b := bigJournal(2, 7)
	b.Exchange = true // in the head of a journal in parts
	err := s.update(func(tx *bolt.Tx) error {
		sub, err := tx.Bucket(bktJobs).Bucket([]byte("etc")).Bucket(bktJournalParts).CreateBucket(u64key(ids[0] + 1))
		if err != nil {
			return err
		}
		v, err := encodeJournalPart(ids[0]+1, 0, b.Entries[:3])
		if err != nil {
			return err
		}
		return sub.Put(u64key(0), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("after a torn write: %v %v", ok, err)
	}
	if err := s.WriteJournal("etc", b); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("replaced: %v %v", ok, err)
	}
	if ids := journalPartBuckets(t, s); len(ids) != 1 {
		t.Fatalf("part buckets after a replace: %v", ids)
	}
	// a part under another number, a flipped bit, a missing part
	swap := func(k1, k2 uint64) {
		err := s.update(func(tx *bolt.Tx) error {
			pb := tx.Bucket(bktJobs).Bucket([]byte("etc")).Bucket(bktJournalParts)
			k, _ := pb.Cursor().Last()
			sub := pb.Bucket(k)
			v1, v2 := bytes.Clone(readPart(sub, int(k1))), bytes.Clone(readPart(sub, int(k2)))
			if err := putPart(sub, int(k1), v2); err != nil {
				return err
			}
			if v1 == nil {
				return sub.DeleteBucket(u64key(k2))
			}
			return putPart(sub, int(k2), v1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	swap(0, 1)
	if _, ok, err := s.ReadJournal("etc"); ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("parts swapped: %v %v", ok, err)
	}
	swap(0, 1)
	swap(5, 2) // part 2 (the last) moves away
	if _, ok, err := s.ReadJournal("etc"); ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a part missing: %v %v", ok, err)
	}
	// a small journal replaces it in one value, and drops the parts
	small := sampleJournal()
	small.Entries = small.Entries[:3]
	if err := s.WriteJournal("etc", small); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, small) {
		t.Fatalf("small after large: %v %v", ok, err)
	}
	if ids := journalPartBuckets(t, s); len(ids) != 0 {
		t.Fatalf("part buckets under a small journal: %v", ids)
	}
	if err := s.WriteJournal("etc", a); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearJournal("etc"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ReadJournal("etc"); ok || err != nil {
		t.Fatalf("after clear: %v %v", ok, err)
	}
	if ids := journalPartBuckets(t, s); len(ids) != 0 {
		t.Fatalf("part buckets after clear: %v", ids)
	}
}

// TestJournalInPartsAsValuesReadsBack: a journal in parts as an earlier
// version wrote it, each part a value of the journal's bucket rather than
// in a bucket of its own (putPart), is read back whole after an upgrade,
// and a later journal replaces it.
func TestJournalInPartsAsValuesReadsBack(t *testing.T) {
	s := newTestStore(t, WithJournalParts(3))
	a := bigJournal(1, 8)
	err := s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, "etc", true)
		if err != nil {
			return err
		}
		pb, err := jb.CreateBucketIfNotExists(bktJournalParts)
		if err != nil {
			return err
		}
		sub, err := pb.CreateBucket(u64key(1))
		if err != nil {
			return err
		}
		parts := 0
		for lo := 0; lo < len(a.Entries); lo += 3 {
			v, err := encodeJournalPart(1, parts, a.Entries[lo:min(lo+3, len(a.Entries))])
			if err != nil {
				return err
			}
			if err := sub.Put(u64key(uint64(parts)), v); err != nil {
				return err
			}
			parts++
		}
		head, err := encodeJournalHead(a, nil, parts, 1)
		if err != nil {
			return err
		}
		return jb.Put(keyJournal, head)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("a journal of parts as values: %v %v", ok, err)
	}
	b := bigJournal(2, 7)
	if err := s.WriteJournal("etc", b); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.ReadJournal("etc"); !ok || err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("replaced: %v %v", ok, err)
	}
	if ids := journalPartBuckets(t, s); len(ids) != 1 || ids[0] != 2 {
		t.Fatalf("part buckets after a replace: %v, want [2]", ids)
	}
}
