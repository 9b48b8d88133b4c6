package store

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// Each fuzz target feeds bytes as a database value (the bbolt file has no
// checksums of its own: the decoders and the validation are what stands
// between a damaged page and a wrong value). Whatever decodes must be
// valid, encode again and decode to the same value.

func FuzzReadJournal(f *testing.F) {
	good, err := encodeJournal(sampleJournal())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"job":"etc","generation":1,"entries":[{"path":"../x","op":"delete"}]}`))
	f.Add([]byte(`{"job":"etc","entries":[{"path":"a","op":"write","staged":"/s/a","hash":"zz"}]}`))
	f.Add([]byte(`{"job":"etc","entries":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b} {
			j, err := decodeJournal("etc", in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			for _, e := range j.Entries {
				if err := index.ValidatePath(e.Path); err != nil {
					t.Fatalf("decoded an invalid path: %v", err)
				}
			}
			again, err := encodeJournal(j)
			if err != nil {
				t.Fatalf("decoded journal does not encode: %v", err)
			}
			j2, err := decodeJournal("etc", again)
			if err != nil || !reflect.DeepEqual(j, j2) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// FuzzJournalPart feeds bytes as a journal head and as a part of a
// journal: whatever decodes encodes again to the same value.
func FuzzJournalPart(f *testing.F) {
	j := sampleJournal()
	part, err := encodeJournalPart(7, 2, j.Entries)
	if err != nil {
		f.Fatal(err)
	}
	head, err := encodeJournalHead(j, nil, 3, 7)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(part)
	f.Add(head)
	f.Add(seal(partKey(7, 2), []byte(`[{"path":"a","op":"rmdir"}]`)))
	f.Add(seal(keyJournal, []byte(`{"job":"etc","generation":1,"entries":[],"parts":-1,"parts_id":7}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if es, err := decodeJournalPart(7, 2, b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("part: error does not wrap ErrCorrupt: %v", err)
			}
		} else if len(es) == 0 {
			t.Fatal("an empty part decoded")
		}
		d, err := decodeJournalHead(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("head: error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if d.Parts < 0 || d.Parts > maxJournalParts || d.Parts > 0 && (len(d.Entries) > 0 || d.PartsID == 0) {
			t.Fatalf("head decoded with %d parts (bucket %d) and %d entries", d.Parts, d.PartsID, len(d.Entries))
		}
		if d.Parts == 0 {
			return
		}
		j := &Journal{Job: d.Job, Generation: d.Generation, Restore: d.Restore, Exchange: d.Exchange}
		again, err := encodeJournalHead(j, nil, d.Parts, d.PartsID)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeJournalHead(again)
		if err == nil {
			d.Entries, d2.Entries = nil, nil // null or [], none
		}
		if err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("head round trip: %v", err)
		}
	})
}

// FuzzDecodeMark feeds bytes as a job's recording mark: whatever decodes
// encodes to the same bytes.
func FuzzDecodeMark(f *testing.F) {
	f.Add((&recordingMark{n: 5, prev: 4}).encode())
	f.Add((&recordingMark{n: 9, prev: 0, refs: true, done: index.Sum([]byte("x"))}).encode())
	f.Add(seal(keyRecording, make([]byte, 49)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMark(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if m.n == 0 || m.n <= m.prev {
			t.Fatalf("decoded generation %d after %d", m.n, m.prev)
		}
		if again := m.encode(); !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x, was %x", again, b)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	info := GenerationInfo{Job: "etc", Number: 3, Time: time.Unix(1700000000, 5).UTC(), Origin: "pbx-a", SourceVersion: 9,
		Changed: []string{"sip.conf", "a/b"}, State: StateBad, Reason: "check failed"}
	good, err := encodeMeta(&info, 2, 7, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"generation":3,"state":"good","changed":["/abs"]}`))
	f.Add([]byte(`{"generation":3,"state":"good","time":"2024-01-01T00:00:00Z","base":1}`))
	out, err := encodeMeta(&info, 2, 7, 1000)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, info, err := decodeMeta("etc", 3, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for _, p := range info.Changed {
			if err := index.ValidatePath(p); err != nil {
				t.Fatalf("decoded an invalid path: %v", err)
			}
		}
		if m.ChangedOut < 0 || (m.ChangedOut > 0 && len(info.Changed) > 0) {
			t.Fatalf("decoded changed_out %d beside %d inline paths", m.ChangedOut, len(info.Changed))
		}
		again, err := encodeMeta(&info, m.Base, m.Items, m.ChangedOut)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		m2, info2, err := decodeMeta("etc", 3, again)
		if err != nil || !reflect.DeepEqual(info2.Changed, info.Changed) || info2.State != info.State || m2.Base != m.Base || m2.ChangedOut != m.ChangedOut {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeItem(f *testing.F) {
	for _, it := range []index.Item{
		{Path: "a.conf", Kind: index.KindFile, Size: 3, Mode: 0o644, MTime: 9, Hash: index.Sum([]byte("abc")), Version: index.Vector{{Node: "n", Value: 2}}},
		{Path: "d", Kind: index.KindDir, Mode: 0o755},
		{Path: "gone", Kind: index.KindFile, Deleted: true},
	} {
		f.Add(it.Path, sealItem(&it))
	}
	f.Add("a/./b", seal([]byte("a/./b"), []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, path string, b []byte) {
		it, err := decodeItem(path, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if err := validateItem(&it); err != nil {
			t.Fatalf("decoded an invalid item: %v", err)
		}
		again := sealItem(&it)
		it2, err := decodeItem(path, again)
		if err != nil || !it.Equal(&it2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeExtras(f *testing.F) {
	good, err := encodeExtras([]Extra{{Label: "local-edit sip.conf", Hash: index.Sum([]byte("x")), Generation: 4, Time: time.Unix(1, 0).UTC()}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b} {
			xs, err := decodeExtras(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			again, err := encodeExtras(xs)
			if err != nil {
				t.Fatalf("decoded extras do not encode: %v", err)
			}
			if xs2, err := decodeExtras(again); err != nil || len(xs2) != len(xs) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
