package delta

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestLikelyRelated(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	base := random(200000)
	edited := append([]byte(nil), base...)
	edited[100000] ^= 0xff
	inserted := append(append(append([]byte(nil), base[:50000]...), random(5000)...), base[50000:]...)
	conf := bytes.Repeat([]byte("exten => 100,1,Answer()\n"), 2000)
	confEdited := append([]byte("[new-context]\n"), conf...)
	cases := []struct {
		name         string
		base, target []byte
		want         bool
	}{
		{"one byte changed", base, edited, true},
		{"block inserted", base, inserted, true},
		{"config with a new line", conf, confEdited, true},
		{"recorded anew", base, random(200000), false},
		{"tiny target", base, []byte("x"), true},
		{"empty base", nil, base, true},
	}
	for _, tc := range cases {
		got, err := LikelyRelated(BytesFile(tc.base), BytesFile(tc.target), 64<<20)
		if err != nil || got != tc.want {
			t.Errorf("%s: LikelyRelated = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if got, _ := LikelyRelated(BytesFile(base), BytesFile(random(200000)), 1000); !got {
		t.Error("a base over maxScan must count as related")
	}
}
