package asteriskctl

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type fakeRunner struct {
	calls [][]string
	out   []byte
	err   error
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, append([]string{name}, args...))
	return f.out, f.err
}

type exitErr int

func (e exitErr) Error() string { return "exit status 3" }
func (e exitErr) ExitCode() int { return int(e) }

func TestServiceControl(t *testing.T) {
	r := &fakeRunner{}
	sc, err := NewServiceControl("", r, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, f := range []func(context.Context) error{sc.Start, sc.Stop, sc.Restart} {
		if err := f(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"systemctl start -- asterisk.service", "systemctl stop -- asterisk.service", "systemctl restart -- asterisk.service"}
	for i, c := range r.calls {
		if strings.Join(c, " ") != want[i] {
			t.Errorf("call %d: %q", i, c)
		}
	}
	if ok, err := sc.IsActive(ctx); !ok || err != nil {
		t.Fatalf("active: %v %v", ok, err)
	}
	r.err, r.out = exitErr(3), []byte("inactive\n")
	if ok, err := sc.IsActive(ctx); ok || err != nil {
		t.Fatalf("inactive: %v %v", ok, err)
	}
	r.err, r.out = exitErr(1), []byte("Failed to start asterisk.service: Unit not found.\n")
	err = sc.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "Unit not found") || !strings.Contains(err.Error(), "systemctl start asterisk.service") {
		t.Fatalf("start failure: %v", err)
	}
	r.err = errors.New("exec: \"systemctl\": executable file not found in $PATH")
	if _, err := sc.IsActive(ctx); err == nil {
		t.Fatal("missing systemctl not reported")
	}
	for _, bad := range []string{"-H evil", "--host=x", "a b", "x;rm"} {
		if _, err := NewServiceControl(bad, r, nil); err == nil {
			t.Errorf("unit %q accepted", bad)
		}
	}
}
