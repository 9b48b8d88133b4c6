package astgen

import (
	"bytes"
	"testing"
)

func TestDeterministicAndEdits(t *testing.T) {
	a, b := New(1).Dialplan(500), New(1).Dialplan(500)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different dialplans")
	}
	g := New(2)
	for name, f := range map[string]func([]byte) []byte{
		"change": g.ChangeLine,
		"insert": func(x []byte) []byte { return g.InsertLines(x, 100) },
		"append": func(x []byte) []byte { return g.AppendLines(x, 40) },
		"delete": func(x []byte) []byte { return g.DeleteLines(x, 100) },
		"swap":   g.SwapSections,
	} {
		for _, data := range [][]byte{a, g.PJSIP(20), g.Voicemail(300)} {
			out := f(data)
			if bytes.Equal(out, data) {
				t.Errorf("%s: no change", name)
			}
			if name == "swap" && len(out) != len(data) {
				t.Errorf("swap changed the length")
			}
		}
	}
	w := g.WAV(100000)
	if string(w[:4]) != "RIFF" || string(w[8:12]) != "WAVE" || len(w) != 100000 {
		t.Fatalf("wav header %q, %d bytes", w[:12], len(w))
	}
	if p := g.PokeBytes(w, 5, 44); bytes.Equal(p, w) || !bytes.Equal(p[:44], w[:44]) {
		t.Fatal("PokeBytes")
	}
}
