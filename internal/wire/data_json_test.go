package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
)

// sameData reports whether a and b are the same message, a nil hash being
// the empty one (encoding/json decodes "" to an empty slice).
func sameData(a, b *Data) bool {
	return a.Encoding == b.Encoding && a.Size == b.Size && a.Length == b.Length && bytes.Equal(a.Hash, b.Hash) && (a.Hash == nil) == (b.Hash == nil)
}

// TestAppendDataIsMarshal: appendData writes what json.Marshal writes, or
// declines where json.Marshal escapes the encoding or writes a null hash.
func TestAppendDataIsMarshal(t *testing.T) {
	h := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 11)[:32]
	for _, m := range []*Data{
		{Encoding: EncodingZstd, Size: 1234, Length: 4096, Hash: h},
		{Encoding: EncodingDelta, Size: 0, Length: 0, Hash: h[:0]},
		{Encoding: "x", Size: -1, Length: 1 << 62, Hash: h[:5]},
		{Encoding: "", Size: 9, Length: 9, Hash: h},
		{Encoding: "a<b", Size: 1, Length: 1, Hash: h},
		{Encoding: "é", Size: 1, Length: 1, Hash: h},
		{Encoding: `q"`, Size: 1, Length: 1, Hash: h},
		{Encoding: EncodingZstd, Size: 1, Length: 1, Hash: nil},
	} {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendData([]byte("prefix"), m)
		plain := m.Hash != nil && plainJSON(m.Encoding)
		if ok != plain {
			t.Errorf("%+v: appendData ok=%v, want %v", m, ok, plain)
		}
		if !ok {
			if string(got) != "prefix" {
				t.Errorf("%+v: declined, but appended %q", m, got)
			}
			continue
		}
		if string(got) != "prefix"+string(want) {
			t.Errorf("%+v:\nappendData %s\njson       %s", m, got[6:], want)
		}
		var back Data
		if !parseData(got[6:], &back) && m.Size >= 0 {
			t.Errorf("%+v: parseData refused appendData's %s", m, got[6:])
		}
	}
}

// TestDataFrameForms: a Data frame in any JSON form decodes to the same
// message; the forms encoding/json refuses are refused.
func TestDataFrameForms(t *testing.T) {
	c := newCodec(t)
	h := bytes.Repeat([]byte{7}, 32)
	want := &Data{Encoding: EncodingZstd, Size: 10, Length: 20, Hash: h}
	canonical, err := c.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := json.Marshal(want); string(canonical[HeaderSize:]) != string(js) || canonical[1] != byte(TypeData) ||
		binary.BigEndian.Uint32(canonical[4:]) != uint32(len(js)) || canonical[2] != 0 {
		t.Fatalf("Encode wrote % x, want the header and %s", canonical, js)
	}
	frame := func(payload string) []byte {
		b := make([]byte, HeaderSize, HeaderSize+len(payload))
		b[0], b[1] = Version, byte(TypeData)
		binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
		return append(b, payload...)
	}
	hash := `"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="`
	for _, p := range []string{
		string(canonical[HeaderSize:]),
		`{"hash":` + hash + `,"length":20,"size":10,"encoding":"zstd"}`,
		`{ "encoding" : "zstd", "size": 10, "length": 20, "hash": ` + hash + ` }`,
		`{"encoding":"z\u0073td","size":10,"length":20,"hash":` + hash + `}`,
		`{"encoding":"zstd","size":1e1,"length":20,"hash":` + hash + `}`,
	} {
		m, err := c.Read(bytes.NewReader(frame(p)))
		if p == `{"encoding":"zstd","size":1e1,"length":20,"hash":`+hash+`}` {
			if err == nil {
				t.Errorf("%s: decoded %+v, want encoding/json's refusal", p, m)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if d, ok := m.(*Data); !ok || !sameData(d, want) {
			t.Errorf("%s: decoded %+v, want %+v", p, m, want)
		}
	}
	for _, p := range []string{
		`{"encoding":"zstd","size":10,"length":20,"hash":` + hash + `,"more":1}`,
		`{"encoding":"zstd","size":10,"length":20,"hash":` + hash + `}x`,
		`{"encoding":"zstd","size":-10,"length":20,"hash":` + hash + `}`,
		`{"encoding":"zstd","size":10,"length":20,"hash":"BwcH"}`,
		`{"encoding":"gzip","size":10,"length":20,"hash":` + hash + `}`,
		`{"encoding":"zstd","size":010,"length":20,"hash":` + hash + `}`,
		`{"encoding":"zstd","size":99999999999999999999,"length":20,"hash":` + hash + `}`,
	} {
		if m, err := c.Read(bytes.NewReader(frame(p))); err == nil {
			t.Errorf("%s: decoded %+v, want an error", p, m)
		}
	}
	// a frame cut short is an error, not a message
	cut := frame(string(canonical[HeaderSize:]))
	if m, err := c.Read(bytes.NewReader(cut[:len(cut)-3])); err == nil {
		t.Errorf("a cut frame decoded to %+v", m)
	}
}

// FuzzParseData: whatever parseData takes, encoding/json decodes to the
// same message, and parseData takes every payload appendData writes.
func FuzzParseData(f *testing.F) {
	h := bytes.Repeat([]byte{0xa5}, 32)
	for _, m := range []*Data{{Encoding: EncodingZstd, Size: 3, Length: 7, Hash: h}, {Encoding: EncodingDelta, Size: 0, Length: 1 << 40, Hash: h[:3]}} {
		b, _ := appendData(nil, m)
		f.Add(b)
	}
	f.Add([]byte(`{"encoding":"zstd","size":01,"length":2,"hash":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Data
		if parseData(b, &fast) {
			var slow Data
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&slow); err != nil {
				t.Fatalf("parseData took %q, encoding/json refuses it: %v", b, err)
			}
			if !sameData(&fast, &slow) {
				t.Fatalf("%q: parseData %+v, encoding/json %+v", b, fast, slow)
			}
			return
		}
		var slow Data
		if json.Unmarshal(b, &slow) != nil || slow.Size < 0 || slow.Length < 0 {
			return
		}
		if again, ok := appendData(nil, &slow); ok && bytes.Equal(again, b) {
			t.Fatalf("parseData refused %q, appendData's own form of %+v", b, slow)
		}
		if !reflect.DeepEqual(fast, Data{}) {
			t.Fatalf("parseData refused %q but changed its message to %+v", b, fast)
		}
	})
}

// BenchmarkDataFrame encodes and reads back the frame before each
// fetched file.
func BenchmarkDataFrame(b *testing.B) {
	c := newCodec(b)
	m := &Data{Encoding: EncodingZstd, Size: 1234, Length: 4096, Hash: bytes.Repeat([]byte{9}, 32)}
	var r bytes.Reader
	b.ReportAllocs()
	for b.Loop() {
		f, err := c.Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		r.Reset(f)
		if _, err := c.Read(&r); err != nil {
			b.Fatal(err)
		}
	}
}
