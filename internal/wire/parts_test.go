package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"pbxsync/internal/index"
)

// TestSplitAndAssemble: an announcement too large for one part goes as
// several, each a valid message of about the asked size that travels
// through the codec; assembled they are the announcement again. A small
// announcement stays one message without Part/Parts (what agents before
// parts read).
func TestSplitAndAssemble(t *testing.T) {
	m := sampleAnnounce(3000)
	m.Base, m.Removed, m.Digest = 6, []string{"gone.conf"}, make([]byte, index.HashSize)
	m.Inline = []Inline{{Hash: make([]byte, 32), Encoding: EncodingZstd, Data: []byte("x")}}
	m.Unreadable = []string{"root-only.conf"}
	if parts := Split(m, PartBytes); len(parts) != 1 || parts[0] != m {
		t.Fatalf("a small announcement split into %d parts", len(parts))
	}
	const limit = 64 << 10
	parts := Split(m, limit)
	if len(parts) < 5 {
		t.Fatalf("%d parts of about %d bytes for %d items", len(parts), limit, len(m.Items))
	}
	c := newCodec(t)
	var asm Assembler
	var whole *Announce
	for i, p := range parts {
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > limit*3/2 {
			t.Errorf("part %d: %d bytes of JSON, asked about %d", i, len(raw), limit)
		}
		var buf bytes.Buffer
		if err := c.Write(&buf, p); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got, err := c.Read(&buf)
		if err != nil {
			t.Fatalf("part %d does not decode: %v", i, err)
		}
		w, err := asm.Add(got.(*Announce))
		if err != nil {
			t.Fatal(err)
		}
		if (w != nil) != (i == len(parts)-1) {
			t.Fatalf("part %d of %d: assembled %v", i, len(parts), w != nil)
		}
		whole = w
	}
	if !reflect.DeepEqual(whole, m) {
		t.Fatal("the assembled announcement differs from the one split")
	}
	if parts[0].Parts == 0 || m.Parts != 0 || len(m.Items) != 3001 {
		t.Fatal("Split changed the announcement it split")
	}

	// a gap drops what was assembled; the next whole announcement is taken
	if _, err := asm.Add(parts[0]); err != nil {
		t.Fatal(err)
	}
	if w, err := asm.Add(parts[2]); err == nil || w != nil {
		t.Fatalf("a part after a gap was taken: %v %v", w, err)
	}
	if w, err := asm.Add(parts[len(parts)-1]); err == nil || w != nil {
		t.Fatal("the last part alone completed an announcement")
	}
	small := sampleAnnounce(3)
	if w, err := asm.Add(small); err != nil || w != small {
		t.Fatal("a whole announcement was not taken as it is")
	}
}

// TestPartValidation: parts that could be mistaken for a whole index or
// that carry the last part's lists early are refused.
func TestPartValidation(t *testing.T) {
	bad := map[string]*Announce{
		"one part":            {Parts: 1},
		"too many parts":      {Parts: MaxParts + 1},
		"part beyond parts":   {Part: 3, Parts: 3},
		"early removed paths": {Part: 0, Parts: 2, Removed: []string{"x"}},
		"early inline":        {Part: 0, Parts: 2, Inline: []Inline{{Hash: make([]byte, 32), Encoding: EncodingZstd}}},
	}
	for name, m := range bad {
		m.Job, m.Origin = "conf", "a"
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := &Announce{Job: "conf", Origin: "a", Base: 3, Part: 0, Parts: 2}
	if err := ok.Validate(); err != nil {
		t.Errorf("a first part of an incremental announcement (its digest comes last): %v", err)
	}
}
