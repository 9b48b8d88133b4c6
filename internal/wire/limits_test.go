package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/index"
)

// bombFrame returns a frame of type t whose zstd payload is prefix followed
// by unit repeated until the payload decodes to about size bytes: a few KB
// on the wire.
func bombFrame(t testing.TB, typ Type, prefix, unit string, size int) []byte {
	return bombFrameWindow(t, typ, prefix, unit, size, 1<<20)
}

func bombFrameWindow(t testing.TB, typ Type, prefix, unit string, size, window int) []byte {
	t.Helper()
	raw := make([]byte, 0, size+len(unit)) // no regrowth: copying 64 MiB is slow under -race
	raw = append(raw, prefix...)
	for len(raw) < size {
		raw = append(raw, unit...)
	}
	// SpeedDefault: 64 MiB of repeats still compress to a few KB (7 KB
	// against 6 KB), and it takes 0.3 s under -race where
	// SpeedBestCompression took 27 s per bomb.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	payload := enc.EncodeAll(raw, nil)
	out := make([]byte, HeaderSize, HeaderSize+len(payload))
	out[0], out[1], out[2] = Version, byte(typ), flagZstd
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	return append(out, payload...)
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestBombRefusedBeforeBody: a 64 MiB announcement that compresses to a
// few KB, for a job the gate refuses, is read off the stream without its
// body being decoded (a few MiB allocated at most, not hundreds), and the
// next frame on the stream reads fine.
func TestBombRefusedBeforeBody(t *testing.T) {
	c := newCodec(t)
	bomb := bombFrame(t, TypeAnnounce, `{"job":"other","version":1,"origin":"a","items":[`, `{"p":"a","k":2,"m":0,"t":0},`, MaxDecoded-1024)
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes on the wire; want a small one", len(bomb))
	}
	next, err := c.Encode(&Hello{Node: "b"})
	if err != nil {
		t.Fatal(err)
	}
	stream := bytes.NewReader(append(append([]byte(nil), bomb...), next...))
	gate := func(typ Type, job string) error {
		if typ == TypeAnnounce && job != "conf" {
			return errors.New("peer is not the source of job " + job)
		}
		return nil
	}
	var err1, err2 error
	var m Message
	n := allocated(func() {
		_, err1 = c.ReadGated(stream, gate)
		m, err2 = c.ReadGated(stream, gate)
	})
	if !errors.Is(err1, ErrRefused) || !strings.Contains(err1.Error(), `"other"`) {
		t.Fatalf("bomb: err = %v, want ErrRefused naming the job", err1)
	}
	if err2 != nil || m.(*Hello).Node != "b" {
		t.Fatalf("frame after the refused one: %v %v", m, err2)
	}
	if n > 16<<20 {
		t.Fatalf("refusing the bomb allocated %d MiB", n>>20)
	}
	t.Logf("refusing a %d-byte frame that decodes to 64 MiB allocated %d KiB", len(bomb), n>>10)
}

// TestBombBoundedByKind: a bomb of a small kind stops at its kind's limit;
// an announcement of tiny items accepted by the gate stops at the item
// limit while it is decoded (the Codec's MaxItems, lowered here to keep the
// test cheap under the race detector), long before 64 MiB of JSON turned
// into structs; so does one item with endless version counters.
func TestBombBoundedByKind(t *testing.T) {
	c := newCodec(t)
	c.maxItems = 10000
	for _, tc := range []struct {
		name   string
		frame  []byte
		budget uint64
		want   string
	}{
		{"result", bombFrameWindow(t, TypeResult, `{"job":"conf","version":1,"state":"bad","reason":"`, "xxxxxxxxxxxxxxxx", 60<<20, 32<<10), 8 << 20, "more than 32768 bytes"},
		{"result window", bombFrame(t, TypeResult, `{"job":"conf","version":1,"state":"bad","reason":"`, "xxxxxxxxxxxxxxxx", 60<<20), 8 << 20, "window size exceeded"},
		{"state", bombFrame(t, TypeState, `{"node":"a","jobs":[`, `{"job":"j","generation":1,"version":1,"state":"good"},`, 60<<20), 16 << 20, "more than 1048576 bytes"},
		{"announce", bombFrame(t, TypeAnnounce, `{"job":"conf","version":1,"origin":"a","items":[`, `{"p":"a","k":2,"m":0,"t":0},`, MaxDecoded-1024), 16 << 20, "items: more than 10000 entries"},
		{"one item", bombFrame(t, TypeAnnounce, `{"job":"conf","version":1,"origin":"a","items":[{"p":"a","k":2,"m":0,"t":0,"v":[`, `{"Node":"n","Value":1},`, MaxDecoded+4096), 16 << 20, "an announcement element of more than"},
		{"counters", bombFrame(t, TypeAnnounce, `{"job":"conf","version":1,"origin":"a","items":[`, `{"p":"a","k":2,"m":0,"t":0,"v":[{"Node":"n","Value":1},{"Node":"n","Value":2}]},`, MaxDecoded-1024), 16 << 20, "more than 10000 version counters"},
	} {
		var err error
		n := allocated(func() { _, err = c.ReadGated(bytes.NewReader(tc.frame), nil) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if n > tc.budget {
			t.Errorf("%s: decoding the bomb allocated %d MiB, budget %d MiB", tc.name, n>>20, tc.budget>>20)
		}
		t.Logf("%s: %d-byte frame refused after %d MiB allocated: %v", tc.name, len(tc.frame), n>>20, err)
	}
}

// TestLargeAnnounceRoundTrip: an announcement far larger than the zstd
// window (MaxWindow) encodes and decodes within the limits.
func TestLargeAnnounceRoundTrip(t *testing.T) {
	c := newCodec(t)
	m := sampleAnnounce(60000)
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("decode a %d-byte frame of %d items: %v", len(b), len(m.Items), err)
	}
	if n := len(got.(*Announce).Items); n != len(m.Items) {
		t.Fatalf("%d items decoded, want %d", n, len(m.Items))
	}
}

// FuzzReadGated: whatever the first frame holds, ReadGated never panics;
// when it refuses the frame (the gate refuses every job but "conf"), it has
// read exactly that frame, so a valid frame after it decodes.
func FuzzReadGated(f *testing.F) {
	c := newCodec(f)
	for _, m := range []Message{sampleAnnounce(3), &Announce{Job: "other", Version: 1, Origin: "a", Items: []Item{}}, &Result{Job: "other", State: "good"}, &Get{Job: "x", Path: "p", Hash: make([]byte, 32)}, &State{Node: "a"}} {
		b, err := c.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(bombFrameWindow(f, TypeAnnounce, `{"job":"other","items":[`, `{"p":"a","k":2,"m":0,"t":0},`, 1<<20, 1<<16))
	next, err := c.Encode(&Hello{Node: "after"})
	if err != nil {
		f.Fatal(err)
	}
	gate := func(t Type, job string) error {
		if job != "" && job != "conf" {
			return errors.New("no role")
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		all := append(append([]byte(nil), b...), next...)
		r := bytes.NewReader(all)
		_, err := c.ReadGated(r, gate)
		if !errors.Is(err, ErrRefused) {
			return
		}
		// a refused frame was read exactly: header and declared payload
		if read, want := len(all)-r.Len(), HeaderSize+int(binary.BigEndian.Uint32(all[4:8])); read != want {
			t.Fatalf("refused frame: %d bytes read, the frame has %d", read, want)
		}
		if len(b) == HeaderSize+int(binary.BigEndian.Uint32(b[4:8])) {
			m, err := c.ReadGated(r, gate)
			if err != nil || m.(*Hello).Node != "after" {
				t.Fatalf("frame after a refused one: %v %v", m, err)
			}
		}
	})
}

// TestLargestGetFits: a Get with the longest path, every byte of it
// escaped by the JSON encoder, and MaxGetMore more hashes (or
// MaxGetMoreBased with a base each) stays within the limit of a Get (an
// owner would refuse it otherwise).
func TestLargestGetFits(t *testing.T) {
	c := newCodec(t)
	hashes := func(n int, b byte) [][]byte {
		hs := make([][]byte, n)
		for i := range hs {
			hs[i] = bytes.Repeat([]byte{b + byte(i)}, 32)
		}
		return hs
	}
	path := strings.Repeat("<", index.MaxPathLen)
	for _, m := range []*Get{
		{Job: strings.Repeat("j", 64), Path: path, Hash: make([]byte, 32), More: hashes(MaxGetMore, 0)},
		{Job: strings.Repeat("j", 64), Path: path, Hash: make([]byte, 32), Base: make([]byte, 32), More: hashes(MaxGetMoreBased, 0), MoreBase: hashes(MaxGetMoreBased, 100)},
	} {
		if err := m.Validate(); err != nil {
			t.Fatalf("the largest Get is not valid: %v", err)
		}
		var buf bytes.Buffer
		if err := c.Write(&buf, m); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(&buf); err != nil {
			t.Fatalf("the largest Get (%d more, %d bases) does not decode: %v", len(m.More), len(m.MoreBase), err)
		}
	}
}
