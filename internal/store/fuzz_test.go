package store

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// Each fuzz target feeds bytes both as a whole file (mostly stopped by the
// checksum) and as a body wrapped in a valid envelope (reaching the JSON
// decoder and the validation). Whatever decodes must be valid, encode again
// and decode to the same value.

func FuzzReadJournal(f *testing.F) {
	good, err := encodeJournal(sampleJournal())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[len("pbxsync-journal 1 ")+65:])
	f.Add([]byte(`{"job":"etc","generation":1,"entries":[{"path":"../x","op":"delete"}]}`))
	f.Add([]byte(`{"job":"etc","entries":[{"path":"a","op":"write","staged":"/s/a","hash":"zz"}]}`))
	f.Add([]byte(`{"job":"etc","entries":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, encodeEnvelope("journal", b)} {
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

func FuzzDecodeMeta(f *testing.F) {
	info := GenerationInfo{Job: "etc", Number: 3, Time: time.Unix(1700000000, 5).UTC(), Origin: "pbx-a", SourceVersion: 9,
		Changed: []string{"sip.conf", "a/b"}, State: StateBad, Reason: "check failed"}
	good, err := encodeMeta(&info, index.Sum([]byte("i")), 2)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[len("pbxsync-meta 1 ")+65:])
	f.Add([]byte(`{"job":"etc","generation":3,"state":"good","changed":["/abs"],"index_sum":""}`))
	f.Add([]byte(`{"job":"etc","generation":3,"state":"good","time":"2024-01-01T00:00:00Z","index_sum":"` + index.Sum(nil).String() + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, encodeEnvelope("meta", b)} {
			m, err := decodeMeta("etc", 0, in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			for _, p := range m.info.Changed {
				if err := index.ValidatePath(p); err != nil {
					t.Fatalf("decoded an invalid path: %v", err)
				}
			}
			again, err := encodeMeta(&m.info, m.indexSum, m.items)
			if err != nil {
				t.Fatalf("decoded meta does not encode: %v", err)
			}
			m2, err := decodeMeta("etc", m.info.Number, again)
			if err != nil || !reflect.DeepEqual(m2.info.Changed, m.info.Changed) || m2.info.State != m.info.State || m2.indexSum != m.indexSum {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	x := index.Index{
		"a.conf": {Path: "a.conf", Kind: index.KindFile, Size: 3, Mode: 0o644, MTime: 9, Hash: index.Sum([]byte("abc")), Version: index.Vector{{Node: "n", Value: 2}}},
		"d":      {Path: "d", Kind: index.KindDir, Mode: 0o755},
		"gone":   {Path: "gone", Kind: index.KindFile, Deleted: true},
	}
	good, _, err := encodeIndex("etc", 1, x)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[len("pbxsync-index 1 ")+65:])
	f.Add([]byte(`{"job":"etc","generation":1,"items":[{"path":"a","kind":"file"},{"path":"a","kind":"dir"}]}`))
	f.Add([]byte(`{"job":"etc","generation":1,"items":[{"path":"a/./b","kind":"file","mode":4294967295}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, encodeEnvelope("index", b)} {
			x, err := decodeIndex("etc", 0, index.Hash{}, in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			for k, it := range x {
				if k != it.Path {
					t.Fatalf("key %q holds %q", k, it.Path)
				}
				if err := index.ValidatePath(k); err != nil {
					t.Fatalf("decoded an invalid path: %v", err)
				}
			}
			again, _, err := encodeIndex("etc", 1, x)
			if err != nil {
				t.Fatalf("decoded index does not encode: %v", err)
			}
			x2, err := decodeIndex("etc", 1, index.Hash{}, again)
			if err != nil || len(x2) != len(x) || x2.Digest() != x.Digest() {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzDecodeExtras(f *testing.F) {
	good, err := encodeExtras([]Extra{{Label: "local-edit sip.conf", Hash: index.Sum([]byte("x")), Generation: 4, Time: time.Unix(1, 0).UTC()}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[len("pbxsync-extras 1 ")+65:])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, encodeEnvelope("extras", b)} {
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
