package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func relayKey(t testing.TB, seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// TestRelayRoundTrip: a sealed envelope crosses the wire and opens to the
// message that was sealed.
func TestRelayRoundTrip(t *testing.T) {
	c := newCodec(t)
	a := sampleAnnounce(3)
	r, err := SealRelay(c, relayKey(t, 1), a.Job, []string{"b", "c"}, a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.(*Relay)
	if !ok || strings.Join(got.To, ",") != "b,c" {
		t.Fatalf("decoded %#v", m)
	}
	inner, err := OpenRelay(c, got)
	if err != nil {
		t.Fatal(err)
	}
	ia, ok := inner.(*Announce)
	if !ok || ia.Version != a.Version || len(ia.Items) != len(a.Items) {
		t.Fatalf("inner %#v", inner)
	}
}

// TestRelayRefused: an envelope whose inner frame, job, key or signature
// was changed does not open.
func TestRelayRefused(t *testing.T) {
	c := newCodec(t)
	a := sampleAnnounce(3)
	seal := func() *Relay {
		r, err := SealRelay(c, relayKey(t, 1), a.Job, []string{"b"}, a)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	other := relayKey(t, 2)
	for name, change := range map[string]func(r *Relay){
		"payload byte": func(r *Relay) { r.Payload[len(r.Payload)-2] ^= 1 },
		"job":          func(r *Relay) { r.Job = "other" },
		"key":          func(r *Relay) { r.Key = other.Public().(ed25519.PublicKey) },
		"re-signed by another key for the job of the envelope": func(r *Relay) {
			r.Job = "other"
			r.Key = other.Public().(ed25519.PublicKey)
			r.Sig = ed25519.Sign(other, RelaySigned(r.Job, r.Payload))
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := seal()
			change(r)
			m, err := OpenRelay(c, r)
			if err == nil {
				t.Fatalf("opened %#v", m)
			}
			if name != "re-signed by another key for the job of the envelope" && !errors.Is(err, ErrRelaySignature) {
				t.Errorf("err = %v, want ErrRelaySignature", err)
			}
		})
	}
	// an inner message other than an announcement or its answer
	r, err := SealRelay(c, relayKey(t, 1), "j", []string{"b"}, &Hello{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRelay(c, r); err == nil || !strings.Contains(err.Error(), "only announcements and their answers") {
		t.Errorf("a relayed Hello: %v", err)
	}
}

// TestRelayRows: a postgres job's announcement and a target's RowsHave
// are relayed, for the job the envelope names only.
func TestRelayRows(t *testing.T) {
	c := newCodec(t)
	key := relayKey(t, 1)
	for _, m := range []Message{
		sampleRows(),
		&RowsHave{Job: "realtime", Version: 6},
	} {
		r, err := SealRelay(c, key, "realtime", []string{"b"}, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := OpenRelay(c, r)
		if err != nil {
			t.Fatalf("%s: %v", m.Type(), err)
		}
		if got.Type() != m.Type() {
			t.Errorf("opened %s, sealed %s", got.Type(), m.Type())
		}
		other, err := SealRelay(c, key, "other", []string{"b"}, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenRelay(c, other); err == nil || !strings.Contains(err.Error(), "of job \"realtime\"") {
			t.Errorf("%s of job realtime in an envelope of job other: %v", m.Type(), err)
		}
	}
}

// TestRelayValidate: bounds of the envelope's fields.
func TestRelayValidate(t *testing.T) {
	ok := func() *Relay {
		return &Relay{Job: "j", To: []string{"b"}, Key: make([]byte, 32), Sig: make([]byte, 64), Payload: make([]byte, HeaderSize)}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(r *Relay){
		"no recipient":   func(r *Relay) { r.To = nil },
		"bad recipient":  func(r *Relay) { r.To = []string{"../x"} },
		"short key":      func(r *Relay) { r.Key = r.Key[:31] },
		"short sig":      func(r *Relay) { r.Sig = nil },
		"short payload":  func(r *Relay) { r.Payload = r.Payload[:3] },
		"bad job":        func(r *Relay) { r.Job = "" },
		"many receivers": func(r *Relay) { r.To = make([]string, MaxRelayTo+1) },
	} {
		r := ok()
		change(r)
		if r.Validate() == nil {
			t.Errorf("%s: valid", name)
		}
	}
}

// FuzzRelay: whatever decodes as an envelope and opens yields a valid
// announcement or answer of the envelope's job.
func FuzzRelay(f *testing.F) {
	c := newCodec(f)
	for _, x := range []struct {
		job string
		m   Message
	}{
		{"conf", sampleAnnounce(2)}, {"conf", &Result{Job: "conf", Version: 1, State: "good"}},
		{"realtime", sampleRows()}, {"realtime", &RowsHave{Job: "realtime", Version: 4}},
	} {
		r, err := SealRelay(c, relayKey(f, 1), x.job, []string{"b"}, x.m)
		if err != nil {
			f.Fatal(err)
		}
		b, err := c.Encode(r)
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
		r, ok := m.(*Relay)
		if !ok {
			return
		}
		inner, err := OpenRelay(c, r)
		if err != nil {
			return
		}
		if err := inner.Validate(); err != nil {
			t.Fatalf("opened an invalid message: %v", err)
		}
	})
}
