package wire

import (
	"bytes"
	"io/fs"
	"math"
	"reflect"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

func sampleOffer() *Offer {
	return &Offer{Job: "conf", Items: []OfferItem{
		{Path: "extensions.conf", Hash: bytes.Repeat([]byte{1}, 32), Size: 1200, Mode: 0o640, MTime: 1764852000123456789},
		{Path: "sounds/en/hello.wav", Hash: bytes.Repeat([]byte{2}, 32), Size: 0},
	}}
}

func TestOfferRoundTrip(t *testing.T) {
	c := newCodec(t)
	m := sampleOffer()
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: got %#v, want %#v", got, m)
	}
}

func TestOfferValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(m *Offer)
		want string
	}{
		"no job":        {func(m *Offer) { m.Job = "" }, "job"},
		"no items":      {func(m *Offer) { m.Items = nil }, "items: 0"},
		"too many":      {func(m *Offer) { m.Items = make([]OfferItem, MaxOfferItems+1) }, "items: 257"},
		"parent":        {func(m *Offer) { m.Items[1].Path = "../etc/passwd" }, "contains .."},
		"absolute":      {func(m *Offer) { m.Items[0].Path = "/etc/passwd" }, "absolute"},
		"inner parent":  {func(m *Offer) { m.Items[0].Path = "a/../../b" }, "contains .."},
		"short hash":    {func(m *Offer) { m.Items[0].Hash = m.Items[0].Hash[:5] }, "hash: 5 bytes"},
		"negative size": {func(m *Offer) { m.Items[1].Size = -1 }, "size -1"},
		"file type bit": {func(m *Offer) { m.Items[0].Mode = uint32(fs.ModeSymlink | 0o777) }, "bits other than"},
	} {
		m := sampleOffer()
		tc.mod(m)
		err := m.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}

// TestLargestOfferFits: an Offer at both bounds (MaxOfferItems items,
// MaxOfferPathBytes of paths, every path byte escaped by the JSON
// encoder) stays within the limit of an Offer, so a target takes what a
// source's batching sends.
func TestLargestOfferFits(t *testing.T) {
	c := newCodec(t)
	m := &Offer{Job: strings.Repeat("j", MaxNameLen)}
	per := MaxOfferPathBytes / MaxOfferItems
	for i := range MaxOfferItems {
		m.Items = append(m.Items, OfferItem{Path: strings.Repeat("<", per-4) + string(rune('a'+i%26)) + "/" + "xy", Hash: bytes.Repeat([]byte{byte(i)}, index.HashSize), Size: MaxBody, Mode: uint32(index.ModeBits), MTime: math.MinInt64})
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("the largest Offer is not valid: %v", err)
	}
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(b); err != nil {
		t.Fatalf("the largest Offer does not decode: %v", err)
	}
}

// FuzzOffer: whatever decodes as an Offer is valid (every path passes
// index.ValidatePath, every hash has its size, the item count its bound)
// and encodes again.
func FuzzOffer(f *testing.F) {
	c := newCodec(f)
	b, err := c.Encode(sampleOffer())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[HeaderSize:])
	f.Add([]byte(`{"job":"conf","items":[{"path":"../x","hash":"AAAA","size":1}]}`))
	f.Add([]byte(`{"job":"conf","items":[{"path":"a","hash":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","size":1,"x":2}]}`))
	f.Add([]byte(`{"job":"conf","items":[{"path":"a","hash":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","size":1,"mode":2147484141,"mtime":-1}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := rawOfferFrame(payload)
		m, err := c.Decode(frame)
		if err != nil {
			return
		}
		o, ok := m.(*Offer)
		if !ok {
			t.Fatalf("an Offer frame decoded as %T", m)
		}
		if len(o.Items) == 0 || len(o.Items) > MaxOfferItems {
			t.Fatalf("%d items passed", len(o.Items))
		}
		for _, it := range o.Items {
			if index.ValidatePath(it.Path) != nil || len(it.Hash) != index.HashSize || it.Size < 0 || fs.FileMode(it.Mode)&^index.ModeBits != 0 {
				t.Fatalf("invalid item passed: %+v", it)
			}
		}
		if _, err := c.Encode(m); err != nil {
			t.Fatalf("decoded Offer does not re-encode: %v", err)
		}
	})
}

// rawOfferFrame wraps payload (uncompressed) in an Offer frame header.
func rawOfferFrame(payload []byte) []byte {
	out := make([]byte, HeaderSize, HeaderSize+len(payload))
	out[0], out[1] = Version, byte(TypeOffer)
	out[4], out[5], out[6], out[7] = byte(len(payload)>>24), byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	return append(out, payload...)
}
