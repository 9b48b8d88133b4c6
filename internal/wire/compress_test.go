package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

// TestSmallFramesCompressed: the announcement of a one-line edit (one item,
// one inline delta: ~600 bytes of JSON) goes out zstd-compressed and
// smaller, and reads back the same; a frame that compression would not
// shrink goes out as JSON.
func TestSmallFramesCompressed(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := bytes.Repeat([]byte{0x5a, 0x13, 0xc7, 0x01}, 8)
	m := &Announce{Job: "dialplan", Version: 3, Origin: "pbx-src", Time: 1764636848791000000,
		Items: []Item{{Path: "extensions.conf", Kind: uint8(index.KindFile), Size: 1951234, Mode: 0o644, MTime: 1764636848791000000, Hash: h, Version: []index.Counter{{Node: "pbx-src", Value: 3}}}},
		Base:  2, Digest: bytes.Repeat([]byte{0x77, 0x02}, 16),
		Inline: []Inline{{Hash: h, Base: bytes.Repeat([]byte{0x31}, 32), Encoding: EncodingDelta, Data: append([]byte("PBXD\x01\x04\x00"), bytes.Repeat([]byte("exten => 100,1,Answer()\n"), 4)...)}}}
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := jsonSize(m)
	if err != nil {
		t.Fatal(err)
	}
	if b[2]&flagZstd == 0 || len(b)-HeaderSize >= plain {
		t.Fatalf("a %d-byte announcement went out as %d bytes, flags %#x; want it compressed", plain, len(b)-HeaderSize, b[2])
	}
	got, err := c.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("read back %+v, want %+v", got, m)
	}
	// random bytes do not compress: the frame stays JSON
	noise := &Announce{Job: "dialplan", Version: 3, Origin: "pbx-src", Items: []Item{}, Inline: []Inline{{Hash: h, Encoding: EncodingZstd, Data: pseudoRandom(400)}}}
	b, err = c.Encode(noise)
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := jsonSize(noise); b[2]&flagZstd != 0 && len(b)-HeaderSize >= plain {
		t.Fatalf("compressed frame of %d bytes for %d bytes of JSON", len(b)-HeaderSize, plain)
	}
	if _, err := c.Read(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func jsonSize(m Message) (int, error) {
	b, err := json.Marshal(m)
	return len(b), err
}

// pseudoRandom returns n bytes no compressor shrinks (xorshift).
func pseudoRandom(n int) []byte {
	out := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x)
	}
	return out
}

// TestGetNotCompressed: a Get (content hashes, which do not compress) is
// sent as it is, however long; an announcement of the same size is
// compressed; both decode.
func TestGetNotCompressed(t *testing.T) {
	c := newCodec(t)
	g := &Get{Job: "conf", Path: "a.conf", Hash: make([]byte, 32)}
	for i := range MaxGetMore {
		h := index.Sum([]byte{byte(i), byte(i >> 8)})
		g.More = append(g.More, h[:])
	}
	f, err := c.Encode(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) <= HeaderSize+CompressAbove || f[2]&flagZstd != 0 {
		t.Fatalf("a Get of %d bytes: flags %#x, want a frame over CompressAbove sent uncompressed", len(f), f[2])
	}
	if m, err := c.Decode(f); err != nil || len(m.(*Get).More) != MaxGetMore {
		t.Fatalf("decode: %v", err)
	}
	// the largest Get, uncompressed, still fits its frame type's bound:
	// the longest path, every byte of it escaped by JSON
	g.Path = strings.Repeat("\x01", index.MaxPathLen)
	if f, err = c.Encode(g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(bytes.NewReader(f)); err != nil {
		t.Fatalf("the largest Get (%d bytes) is not read: %v", len(f), err)
	}
	a, err := c.Encode(sampleAnnounce(20))
	if err != nil {
		t.Fatal(err)
	}
	if a[2]&flagZstd == 0 {
		t.Fatal("an announcement was not compressed")
	}
}
