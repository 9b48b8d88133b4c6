package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

func newCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sampleAnnounce(n int) *Announce {
	return &Announce{Job: "conf", Version: 7, Origin: "a", Items: FromIndex(sampleIndex(n))}
}

// sampleIndex is an index of n files in 10 directories and one directory.
func sampleIndex(n int) index.Index {
	x := index.New(n + 1)
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("dir%d/file%d.conf", i%10, i)
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: int64(i), Mode: 0o644, MTime: int64(i) * 1e9, Hash: index.Sum([]byte(p)),
			Version: index.Vector{}.Bump("node-a")})
	}
	x.Set(index.Item{Path: "dir0", Kind: index.KindDir, Mode: 0o755})
	return x
}

func TestRoundTrip(t *testing.T) {
	c := newCodec(t)
	for _, m := range []Message{
		&Hello{Node: "pbx-1", Agent: "pbxsync dev"},
		sampleAnnounce(3),
		sampleAnnounce(5000), // compressed
		&Announce{Job: "conf", Version: 2, Origin: "a", Items: []Item{}, Inline: []Inline{{Hash: make([]byte, 32), Base: make([]byte, 32), Encoding: EncodingDelta, Data: []byte("PBXD...")}}},
		&Result{Job: "conf", Version: 3, Generation: 9, State: "bad", Reason: "check failed"},
		&Ping{Seq: 1}, &Pong{Seq: 1},
		&State{Node: "a", Healthy: true, Jobs: []JobState{{Job: "conf", Generation: 2, State: "good"}}},
		&Get{Job: "conf", Path: "a/b.conf", Hash: make([]byte, 32)},
		&Get{Job: "conf", Path: "a/b.conf", Hash: make([]byte, 32), More: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}},
		&Get{Job: "conf", Path: "a/b.conf", Hash: make([]byte, 32), Base: bytes.Repeat([]byte{3}, 32), More: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}, MoreBase: [][]byte{nil, bytes.Repeat([]byte{4}, 32)}},
		&Data{Encoding: EncodingZstd, Size: 10, Length: 20, Hash: make([]byte, 32)},
		&Error{Message: "no such content"},
		&Wake{Job: "conf"},
	} {
		var buf bytes.Buffer
		if err := c.Write(&buf, m); err != nil {
			t.Fatalf("%s: %v", m.Type(), err)
		}
		got, err := c.Read(&buf)
		if err != nil {
			t.Fatalf("%s: %v", m.Type(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip changed the message:\n got %+v\nwant %+v", m.Type(), got, m)
		}
	}
}

func TestIndexConversion(t *testing.T) {
	a := sampleAnnounce(50)
	x := ToIndex(a.Items)
	if got := FromIndex(x); !reflect.DeepEqual(got, a.Items) {
		t.Fatal("FromIndex(ToIndex(items)) != items")
	}
}

func TestRejects(t *testing.T) {
	c := newCodec(t)
	frame := func(typ Type, flags byte, payload string) []byte {
		b := []byte{Version, byte(typ), flags, 0, 0, 0, 0, 0}
		n := len(payload)
		b[4], b[5], b[6], b[7] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return append(b, payload...)
	}
	hash := strings.Repeat("A", 43) + "=" // 32 bytes base64
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"dotdot":          {frame(TypeGet, 0, `{"job":"conf","path":"../etc/passwd","hash":"`+hash+`"}`), "contains .."},
		"absolute":        {frame(TypeAnnounce, 0, `{"job":"conf","version":1,"origin":"a","items":[{"p":"/etc/passwd","k":1,"m":420,"t":0,"h":"`+hash+`"}]}`), "absolute"},
		"nested dotdot":   {frame(TypeAnnounce, 0, `{"job":"conf","version":1,"origin":"a","items":[{"p":"a/../../x","k":1,"m":420,"t":0,"h":"`+hash+`"}]}`), "contains .."},
		"short hash":      {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"AAAA"}`), "hash"},
		"bad job":         {frame(TypeResult, 0, `{"job":"../x","version":1,"generation":1,"state":"good"}`), "job"},
		"unknown field":   {frame(TypeHello, 0, `{"node":"a","agent":"x","evil":1}`), "unknown field"},
		"unknown type":    {frame(Type(77), 0, `{}`), "unknown message type"},
		"bad flags":       {frame(TypeHello, 4, `{}`), "flags"},
		"not zstd":        {frame(TypeHello, flagZstd, `garbage`), "zstd"},
		"mode bits":       {frame(TypeAnnounce, 0, `{"job":"conf","version":1,"origin":"a","items":[{"p":"x","k":1,"m":4096,"t":0,"h":"`+hash+`"}]}`), "mode"},
		"negative size":   {frame(TypeData, 0, `{"encoding":"zstd","size":-1,"length":0,"hash":"`+hash+`"}`), "size"},
		"dup path":        {frame(TypeAnnounce, 0, `{"job":"conf","version":1,"origin":"a","items":[{"p":"x","k":2,"m":0,"t":0},{"p":"x","k":2,"m":0,"t":0}]}`), "twice"},
		"truncated":       {frame(TypeHello, 0, `{"node":"a"}`)[:12], "truncated"},
		"trailing":        {frame(TypeHello, 0, `{"node":"a","agent":""} {}`), "trailing"},
		"more short":      {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","more":["AAAA"]}`), "more[0]"},
		"more and base":   {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","base":"`+hash+`","more":["`+hash+`"]}`), "a base only with more_base"},
		"more signature":  {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","signature":10,"more":["`+hash+`"]}`), "not with a signature"},
		"more_base count": {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","more":["`+hash+`","`+hash+`"],"more_base":["`+hash+`"]}`), "1 bases for 2 hashes"},
		"more_base short": {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","more":["`+hash+`"],"more_base":["AAAA"]}`), "more_base[0]"},
		"more_base many":  {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","more":[`+strings.Repeat(`"`+hash+`",`, MaxGetMoreBased)+`"`+hash+`"],"more_base":[`+strings.Repeat(`"",`, MaxGetMoreBased)+`""]}`), "with bases, at most"},
		"more too many":   {frame(TypeGet, 0, `{"job":"conf","path":"x","hash":"`+hash+`","more":[`+strings.Repeat(`"`+hash+`",`, MaxGetMore)+`"`+hash+`"]}`), "at most"},
		"inline no base":  {frame(TypeAnnounce, 0, `{"job":"conf","version":1,"origin":"a","items":[],"inline":[{"hash":"`+hash+`","encoding":"delta","data":""}]}`), "without"},
		"inline bad enc":  {frame(TypeAnnounce, 0, `{"job":"conf","version":1,"origin":"a","items":[],"inline":[{"hash":"`+hash+`","encoding":"gzip","data":""}]}`), "inline encoding"},
	}
	for name, tc := range cases {
		_, err := c.Decode(tc.in)
		if err == nil {
			t.Errorf("%s: decoded without error", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", name, err, tc.want)
		}
	}
}

func TestRejectsHugeLength(t *testing.T) {
	c := newCodec(t)
	b := []byte{Version, byte(TypeHello), 0, 0, 0xff, 0xff, 0xff, 0xff}
	if _, err := c.Read(bytes.NewReader(b)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	b[0] = 9
	if _, err := c.Read(bytes.NewReader(b)); !errors.Is(err, ErrVersion) {
		t.Fatalf("want ErrVersion, got %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	c := newCodec(f)
	for _, m := range []Message{sampleAnnounce(2), sampleAnnounce(400), &Hello{Node: "a"}, &Get{Job: "j", Path: "p", Hash: make([]byte, 32)}, &Wake{Job: "j"}, &Data{Encoding: EncodingZstd, Size: 5, Length: 9, Hash: make([]byte, 32)}} {
		b, err := c.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := c.Decode(b)
		if err != nil {
			return
		}
		// whatever decodes must carry only safe paths and re-encode
		if a, ok := m.(*Announce); ok {
			for _, it := range a.Items {
				if index.ValidatePath(it.Path) != nil {
					t.Fatalf("unsafe path %q passed", it.Path)
				}
			}
		}
		if _, err := c.Encode(m); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
	})
}

func TestIncremental(t *testing.T) {
	prev := ToIndex(sampleAnnounce(20).Items)
	next := prev.Clone()
	next.Delete("dir3/file3.conf")
	it, _ := next.Get("dir1/file1.conf")
	it.Hash = index.Sum([]byte("new"))
	next.Set(it)
	next.Set(index.Item{Path: "new.conf", Kind: index.KindFile, Size: 3, Mode: 0o644, Hash: index.Sum([]byte("abc"))})
	items, removed, digest := Incremental(prev, next)
	if len(items) != 2 || len(removed) != 1 || removed[0] != "dir3/file3.conf" {
		t.Fatalf("incremental: %d items, removed %v", len(items), removed)
	}
	m := &Announce{Job: "conf", Version: 8, Origin: "a", Base: 7, Items: items, Removed: removed, Digest: digest}
	c := newCodec(t)
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := got.(*Announce).Apply(prev)
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt.Digest() != next.Digest() {
		t.Fatal("rebuilt index differs")
	}
	other := prev.Clone()
	other.Delete("dir0")
	if _, err := m.Apply(other); err == nil {
		t.Fatal("a wrong base was not detected")
	}
}

// TestAnnounceEveryFieldRoundTrips: announcements are decoded field by
// field (announce_decode.go), so a field added to Announce and not to the
// decoder would break every agent that sends it. The sample sets every
// field; the test fails when Announce gains one the sample does not set.
func TestAnnounceEveryFieldRoundTrips(t *testing.T) {
	m := &Announce{Job: "conf", Version: 9, Origin: "a", Reason: "rollback to 3", Time: 1e18,
		Items:      sampleAnnounce(2).Items,
		Base:       8,
		Removed:    []string{"old.conf"},
		Digest:     make([]byte, 32),
		Inline:     []Inline{{Hash: make([]byte, 32), Encoding: EncodingZstd, Data: []byte("x")}},
		Unreadable: []string{"root-only.conf"},
		Part:       1,
		Parts:      2,
	}
	v := reflect.ValueOf(*m)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Fatalf("the sample leaves Announce.%s unset: set it so the decoder is tested with it", v.Type().Field(i).Name)
		}
	}
	c := newCodec(t)
	var buf bytes.Buffer
	if err := c.Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	got, err := c.Read(&buf)
	if err != nil {
		t.Fatalf("an announcement with every field set does not decode: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip changed the announcement:\n got %+v\nwant %+v", got, m)
	}
}

// TestChangesAndApplyTo: an incremental announcement built from the
// changed paths (Changes, a kept SetDigest) equals the one built by
// diffing whole indexes, ApplyTo rebuilds next in place with its digest,
// and a wrong base leaves the index and digest as they were.
func TestChangesAndApplyTo(t *testing.T) {
	prev := ToIndex(sampleAnnounce(20).Items)
	next := prev.Clone()
	d := index.DigestOf(prev)
	change := func(p string, it index.Item, has bool) {
		old, had := next.Get(p)
		if has {
			next.Set(it)
		} else {
			next.Delete(p)
		}
		d.Replace(old, had, it, has)
	}
	change("dir3/file3.conf", index.Item{}, false)
	it, _ := next.Get("dir1/file1.conf")
	it.Hash = index.Sum([]byte("new"))
	change(it.Path, it, true)
	change("new.conf", index.Item{Path: "new.conf", Kind: index.KindFile, Size: 3, Mode: 0o644, Hash: index.Sum([]byte("abc"))}, true)
	paths := []string{"new.conf", "dir3/file3.conf", "dir1/file1.conf", "new.conf"}

	items, removed := Changes(next, paths)
	wantItems, wantRemoved, wantDigest := Incremental(prev, next)
	if !reflect.DeepEqual(items, wantItems) || !reflect.DeepEqual(removed, wantRemoved) {
		t.Fatalf("Changes = %v %v, Incremental = %v %v", items, removed, wantItems, wantRemoved)
	}
	if h := d.Hash(); !bytes.Equal(h[:], wantDigest) {
		t.Fatal("the kept digest differs from the digest of the whole index")
	}
	m := &Announce{Job: "conf", Version: 8, Origin: "a", Base: 7, Items: items, Removed: removed, Digest: wantDigest}

	x := prev.Clone()
	xd := index.DigestOf(x)
	changed, err := m.ApplyTo(x, &xd)
	if err != nil {
		t.Fatal(err)
	}
	if x.Digest() != next.Digest() || xd != index.DigestOf(next) || len(changed) != 3 {
		t.Fatalf("ApplyTo did not rebuild next (changed %v)", changed)
	}

	wrong := prev.Clone()
	wrong.Delete("dir0")
	wd := index.DigestOf(wrong)
	keep, keepD := wrong.Clone(), wd
	if _, err := m.ApplyTo(wrong, &wd); err == nil {
		t.Fatal("a wrong base was not detected")
	}
	if !index.SameItems(wrong, keep) || wd != keepD {
		t.Fatal("a failed ApplyTo changed the index or its digest")
	}
}

// TestDecodedItemsShareVectors: the items of a decoded announcement share
// equal version vectors (one slice and node string, not one per item: a
// complete announcement of 100k files held 100k copies of a handful).
func TestDecodedItemsShareVectors(t *testing.T) {
	c := newCodec(t)
	m := sampleAnnounce(50)
	var buf bytes.Buffer
	if err := c.Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	got, err := c.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatal("round trip changed the announcement")
	}
	items := got.(*Announce).Items
	var first []index.Counter
	for _, it := range items {
		if len(it.Version) == 0 {
			continue
		}
		if first == nil {
			first = it.Version
		} else if &first[0] != &it.Version[0] {
			t.Fatalf("%s has its own copy of the version vector %v", it.Path, it.Version)
		}
	}
	if first == nil {
		t.Fatal("no item with a vector")
	}
}
