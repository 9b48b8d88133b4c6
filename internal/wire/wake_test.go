package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestWakeGatedByItsJob: the gate sees a Wake (by that name) and its job
// before its body is decoded, and a refused Wake leaves the stream at the
// next frame. TestRoundTrip has it too.
func TestWakeGatedByItsJob(t *testing.T) {
	c := newCodec(t)
	var stream bytes.Buffer
	for _, m := range []Message{&Wake{Job: "secret"}, &Wake{Job: "conf"}} {
		if err := c.Write(&stream, m); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	gate := func(t Type, job string) error {
		seen = append(seen, t.String()+" "+job)
		if job == "secret" {
			return errors.New("not this job's source")
		}
		return nil
	}
	if _, err := c.ReadGated(&stream, gate); !errors.Is(err, ErrRefused) {
		t.Fatalf("first Wake: got %v, want ErrRefused", err)
	}
	m, err := c.ReadGated(&stream, gate)
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := m.(*Wake); !ok || w.Job != "conf" {
		t.Fatalf("second frame: got %#v, want the Wake of conf", m)
	}
	if want := []string{"Wake secret", "Wake conf"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("gate saw %q, want %q", seen, want)
	}
}

func TestWakeValidate(t *testing.T) {
	for _, job := range []string{"", "../conf", strings.Repeat("j", MaxNameLen+1), "a b"} {
		if err := (&Wake{Job: job}).Validate(); err == nil || !strings.Contains(err.Error(), "job") {
			t.Errorf("job %q: got %v, want an error naming the job", job, err)
		}
	}
}
