package index

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestValidatePath(t *testing.T) {
	good := []string{"a", "a/b", "extensions.conf", "sounds/en/hello.gsm", ".hidden", "a..b", "...x"}
	for _, p := range good {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", p, err)
		}
	}
	bad := map[string]string{
		"":                                "empty",
		"/etc/passwd":                     "absolute",
		"..":                              "..",
		"../x":                            "..",
		"a/../../x":                       "..",
		"a/./b":                           ".",
		"a//b":                            "empty element",
		"a/":                              "empty element",
		"a\\b":                            "backslash",
		"a\x00b":                          "NUL",
		"\xff":                            "UTF-8",
		strings.Repeat("a", MaxPathLen+1): "too long",
	}
	for p, want := range bad {
		err := ValidatePath(p)
		if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePath(%q) = %v, want ErrBadPath mentioning %q", p, err, want)
		}
	}
}

func TestHashRoundTrip(t *testing.T) {
	h := Sum([]byte("exten => 100,1,Answer()"))
	got, err := ParseHash(h.String())
	if err != nil || got != h {
		t.Fatalf("ParseHash(String()) = %v, %v", got, err)
	}
	if _, err := ParseHash("zz"); err == nil {
		t.Fatal("short hash accepted")
	}
	hr, n, err := HashReader(strings.NewReader("exten => 100,1,Answer()"))
	if err != nil || hr != h || n != 23 {
		t.Fatalf("HashReader = %v %d %v", hr, n, err)
	}
	if Sum(nil) == Sum([]byte{0}) || !ZeroHash.IsZero() || h.IsZero() {
		t.Fatal("hash identity broken")
	}
}

func TestVectorCompare(t *testing.T) {
	a := Vector{}.Bump("x")
	b := a.Bump("y")
	c := a.Bump("x")
	cases := []struct {
		a, b Vector
		want Ordering
	}{
		{nil, nil, Equal},
		{a, a.Clone(), Equal},
		{a, b, Before},
		{b, a, After},
		{b, c, Concurrent},
		{nil, a, Before},
	}
	for i, tc := range cases {
		if got := Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("case %d: Compare = %v, want %v", i, got, tc.want)
		}
	}
	if a.Get("x") != 1 || b.Get("y") != 1 || c.Get("x") != 2 || a.Get("nobody") != 0 {
		t.Fatal("Get/Bump wrong")
	}
	if len(a) != 1 {
		t.Fatal("Bump mutated its receiver")
	}
}

func TestDigestAndParent(t *testing.T) {
	x := Of(Item{Path: "a", Kind: KindFile, Size: 1, Mode: 0o644, Hash: Sum([]byte("1"))})
	y := x.Clone()
	if x.Digest() != y.Digest() {
		t.Fatal("equal indexes have different digests")
	}
	it, _ := y.Get("a")
	it.Mode = 0o600
	y.Set(it)
	if x.Digest() == y.Digest() {
		t.Fatal("a mode change does not change the digest")
	}
	if Parent("a/b/c") != "a/b" || Parent("a") != "" {
		t.Fatal("Parent wrong")
	}
}

func TestUnixMode(t *testing.T) {
	for _, u := range []uint32{0, 0o644, 0o2775, 0o4755, 0o1777, 0o7777} {
		if got := UnixMode(FileMode(u)); got != u {
			t.Errorf("UnixMode(FileMode(%04o)) = %04o", u, got)
		}
	}
	if FileMode(0o2775)&fs.ModeSetgid == 0 || FileMode(0o2775).Perm() != 0o775 {
		t.Error("FileMode(2775) lost the setgid bit")
	}
}

// TestItemSize: an Item is 96 bytes on 64-bit platforms (its small
// fields packed at the end; 112 before).
func TestItemSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(Item{}) != 96 {
		t.Fatalf("an Item takes %d bytes, want 96", unsafe.Sizeof(Item{}))
	}
}

// TestCloneCopiesTheTables: a clone is an index of its own (changing,
// adding and deleting in one leaves the other as it was), sharing the
// items' vectors, and it is a copy of the chunks and the table, not
// 10,000 inserts with a vector allocated each (which took ~50 ms at
// 100,000 items on a target's edit path: see Clone).
func TestCloneCopiesTheTables(t *testing.T) {
	v := Vector{}.Bump("source")
	x := New(0)
	for i := range 10000 {
		p := "site/endpoint" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i) + ".conf"
		x.Set(Item{Path: p, Kind: KindFile, Size: int64(i), Version: v})
	}
	y := x.Clone()
	if y.Len() != x.Len() || y.Same(x) {
		t.Fatalf("clone has %d items, want %d, in a table of its own", y.Len(), x.Len())
	}
	for p, it := range x.All() {
		if got, ok := y.Get(p); !ok || got.Size != it.Size || got.Path != p || len(got.Version) != 1 {
			t.Fatalf("clone of %q is %+v, %v", p, got, ok)
		}
	}
	var some string
	for p := range y.All() {
		some = p
		break
	}
	it, _ := y.Get(some)
	it.Size = -1
	y.Set(it)
	y.Set(Item{Path: "new"})
	y.Delete("site/endpointa0.conf")
	if got, _ := x.Get(some); got.Size == -1 || x.Len() != 10000 || x.Has("new") {
		t.Fatal("changing the clone changed the original")
	}
	if !x.Has("site/endpointa0.conf") {
		t.Fatal("a delete in the clone removed the original's item")
	}
	if allocs := testing.AllocsPerRun(5, func() { _ = x.Clone() }); allocs > 20 {
		t.Fatalf("a clone of 10,000 items made %.0f allocations, want a copy of the chunks and the table (a dozen)", allocs)
	}
	if c := (Index{}).Clone(); c.IsNil() || c.Len() != 0 {
		t.Fatal("the clone of the zero index is not a new empty one")
	}
	y.Delete(some)
	z := y.Clone() // with a deleted position: built again
	if !SameItems(y, z) || z.Has(some) {
		t.Fatal("the clone of an index with deleted items differs from it")
	}
}

// BenchmarkClone copies an index of 100,000 items (what a target does to
// admit its first incremental announcement after a sync or an idle spell).
func BenchmarkClone(b *testing.B) {
	v := Vector{}.Bump("source")
	x := New(0)
	for i := range 100000 {
		p := "site" + strconv.Itoa(i%100) + "/endpoint" + strconv.Itoa(i) + ".conf"
		x.Set(Item{Path: p, Kind: KindFile, Size: int64(i), Version: v})
	}
	for b.Loop() {
		_ = x.Clone()
	}
}

// TestValidatePathAllocatesNothing: a target validates every path of an
// announcement (100,000 at a large job's first sync); a valid path costs
// no allocation.
func TestValidatePathAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if err := ValidatePath("sounds/en/custom/welcome-message.gsm"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("ValidatePath of a valid path: %v allocations, want 0", n)
	}
}
