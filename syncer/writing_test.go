package syncer

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

// TestE2EFileOpenForWritingWaitsUntilClosed: a file some process has open
// for writing (an upload that paused after truncating the dialplan, a
// recording under way) is not synced half-written: the target keeps the
// old content and never sees the new file until both are closed, no
// generation of the source ever holds the half content, the source's
// status names both files meanwhile, and once they are closed both sync.
func TestE2EFileOpenForWritingWaitsUntilClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", "[old]\nexten => 100,1,Answer()\n", 0o644)
	a.write("voicemail/greeting.wav", "RIFF greeting", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)

	half := "[new]\nexten => 1"
	open := func(rel, content string) *os.File {
		f, err := os.OpenFile(a.path(rel), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		return f
	}
	dialplan := open("extensions.conf", half)
	recording := open("voicemail/msg0001.wav", "RIFF half a recording")
	defer dialplan.Close()
	defer recording.Close()
	eventually(t, waitLimit, "the source's status names both files open for writing", func() error {
		st, _ := a.jobStatus("conf")
		for _, want := range []string{"extensions.conf: open for writing", "voicemail/msg0001.wav: open for writing"} {
			if !slices.ContainsFunc(st.Writing, func(s string) bool { return strings.HasPrefix(s, want) }) {
				return fmt.Errorf("writing: %q", st.Writing)
			}
		}
		return nil
	})
	if got := string(b.read("extensions.conf")); got != "[old]\nexten => 100,1,Answer()\n" {
		t.Fatalf("the target holds %q while the source's file is open for writing", got)
	}
	if _, err := os.Stat(b.path("voicemail/msg0001.wav")); !os.IsNotExist(err) {
		t.Fatalf("the target has the recording under way: %v", err)
	}

	if _, err := dialplan.WriteString("00,1,Answer()\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := recording.WriteString(" and the rest"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{dialplan, recording} {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	converged(t, "both files closed", a, b)
	if got := string(b.read("voicemail/msg0001.wav")); got != "RIFF half a recording and the rest" {
		t.Fatalf("the target holds the recording as %q", got)
	}
	st, _ := a.jobStatus("conf")
	if len(st.Writing) != 0 {
		t.Fatalf("the status still names files open for writing: %q", st.Writing)
	}
	halfHash := index.Sum([]byte(half))
	gens, err := a.a().store.Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, gi := range gens {
		g, err := a.a().store.Generation("conf", gi.Number)
		if err != nil {
			t.Fatal(err)
		}
		if it, ok := g.Index.Get("extensions.conf"); ok && it.Hash == halfHash {
			t.Fatalf("generation %d holds the half-written dialplan", g.Number)
		}
		if it, ok := g.Index.Get("voicemail/msg0001.wav"); ok && it.Hash == index.Sum([]byte("RIFF half a recording")) {
			t.Fatalf("generation %d holds the half recording", g.Number)
		}
	}
}
