package syncer

import (
	"testing"
	"time"

	"pbxsync/internal/wire"
)

func TestEstimate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                                 string
		files, filesTotal, bytes, bytesTotal uint64
		elapsed                              time.Duration
		want                                 float64
	}{
		{"by bytes: a quarter in 10 s leaves 30 s", 1, 100, 25, 100, 10 * time.Second, 30},
		{"bytes rule over files while bytes are left", 99, 100, 50, 100, 4 * time.Second, 4},
		{"files once the bytes are done (an apply's renames)", 50, 100, 100, 100, 4 * time.Second, 4},
		{"bytes done, no file yet: no estimate", 0, 100, 100, 100, 4 * time.Second, -1},
		{"no bytes: by files", 10, 40, 0, 0, 5 * time.Second, 15},
		{"nothing done yet: no estimate", 0, 10, 0, 1000, time.Second, -1},
		{"no time passed: no estimate", 1, 10, 10, 1000, 0, -1},
		{"all done", 10, 10, 1000, 1000, time.Second, 0},
		{"empty phase", 0, 0, 0, 0, time.Second, 0},
	} {
		if got := estimate(c.files, c.filesTotal, c.bytes, c.bytesTotal, c.elapsed); got != c.want {
			t.Errorf("%s: estimate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestProgressTrackerSnapshot(t *testing.T) {
	t.Parallel()
	var tr progressTracker
	tr.version = 7
	if p := tr.snapshot(time.Now()); p != nil {
		t.Fatalf("progress before the first phase: %v", p)
	}
	tr.begin(wire.PhaseFetching, 4, 400)
	tr.add(100)
	tr.mu.Lock()
	tr.phaseStart = time.Now().Add(-2 * time.Second)
	tr.mu.Unlock()
	p := tr.snapshot(time.Now())
	if p.Generation != 7 || p.Files != 1 || p.FilesTotal != 4 || p.Bytes != 100 || p.BytesTotal != 400 || p.ETASeconds < 5.9 || p.ETASeconds > 6.5 {
		t.Fatalf("snapshot %+v: want 1/4 files, 100/400 bytes, about 6 s left", p)
	}
	if s := p.String(); s != "fetching 1/4 files, 100 B/400 B, ETA 6s" {
		t.Errorf("String() = %q", s)
	}
	if err := p.wire().Validate(); err != nil {
		t.Errorf("its wire form is invalid: %v", err)
	}
	// inline content, then the fetch: one fetching phase; an inline
	// entry that did not apply leaves it (the fetch counts it again)
	tr.forget(100)
	tr.extend(wire.PhaseFetching, 2, 200)
	if p := tr.snapshot(time.Now()); p.Files != 1 || p.FilesTotal != 5 || p.Bytes != 100 || p.BytesTotal != 500 {
		t.Errorf("after forget and extend: %+v; want 1/5 files, 100/500 bytes", p)
	}
	// the record: changes recorded of all, as the store reports them
	tr.begin(wire.PhaseRecording, 13, 0) // the announced changes
	if p := tr.snapshot(time.Now()); p.Phase != wire.PhaseRecording || p.Files != 0 || p.FilesTotal != 13 || p.ETASeconds != -1 {
		t.Errorf("a record before the store's first report: %+v; want 0/13, no ETA", p)
	}
	tr.recorded(0, 12) // the store's count
	if p := tr.snapshot(time.Now()); p.Files != 0 || p.FilesTotal != 12 || p.ETASeconds != -1 {
		t.Errorf("a record that wrote nothing yet: %+v; want 0/12, no ETA", p)
	}
	if tr.rateFrom.IsZero() {
		t.Error("the store's first report did not start the rate")
	}
	tr.mu.Lock()
	tr.phaseStart = time.Now().Add(-5 * time.Second) // the check before the writes: no rate
	tr.rateFrom = time.Now().Add(-time.Second)       // as if the store's first report was 1 s ago
	tr.mu.Unlock()
	tr.recorded(3, 12)
	p = tr.snapshot(time.Now())
	if p.Phase != wire.PhaseRecording || p.Files != 3 || p.FilesTotal != 12 || p.Bytes != 0 || p.BytesTotal != 0 || p.ETASeconds < 2.9 || p.ETASeconds > 3.5 {
		t.Errorf("a record a quarter written in the 1 s since its writes began: %+v; want 3/12 changes, about 3 s left", p)
	}
	if s := p.String(); s != "recording it in the store: 3/12 changes recorded, ETA 3s" {
		t.Errorf("String() = %q", s)
	}
	if err := p.wire().Validate(); err != nil {
		t.Errorf("its wire form is invalid: %v", err)
	}
	// the apply after the record: its own phase, totals and start
	tr.retotal(wire.PhaseApplying, 2, 0)
	if p := tr.snapshot(time.Now()); p.Phase != wire.PhaseApplying || p.Files != 0 || p.FilesTotal != 2 || p.ETASeconds != -1 || time.Since(p.Since) > time.Second {
		t.Errorf("the apply after the record starts from nothing: %+v", p)
	}
	// an apply that starts over (its totals known late): from nothing
	// and from its own start
	tr.add(7)
	tr.mu.Lock()
	tr.phaseStart = time.Now().Add(-5 * time.Second)
	tr.mu.Unlock()
	tr.retotal(wire.PhaseApplying, 5, 50)
	if p := tr.snapshot(time.Now()); p.Phase != wire.PhaseApplying || p.Files != 0 || p.FilesTotal != 5 || p.Bytes != 0 || p.BytesTotal != 50 || time.Since(p.Since) > time.Second {
		t.Errorf("retotal of the same phase: %+v; want 0/5 files, 0/50 bytes, from now", p)
	}
	tr.retotal(wire.PhaseFetching, 1, 10)
	if p := tr.snapshot(time.Now()); p.Phase != wire.PhaseFetching || p.FilesTotal != 1 || p.BytesTotal != 10 {
		t.Errorf("retotal of another phase begins it: %+v", p)
	}
}

// TestSourceWaitsForATargetReportingProgress: a target that reports
// progress on the newest version is not sent it again while the reports
// keep coming; one whose reports stopped (a restart, a lost answer) is.
func TestSourceWaitsForATargetReportingProgress(t *testing.T) {
	t.Parallel()
	prog := &wire.Progress{Phase: wire.PhaseFetching, Files: 1, FilesTotal: 2, Bytes: 1, BytesTotal: 2, ETA: 1}
	for _, c := range []struct {
		name string
		t    targetState
		want bool
	}{
		{"fresh progress on v", targetState{result: &wire.Result{Version: 3, State: "applying", Progress: prog}, progressAt: time.Now()}, true},
		{"stale progress on v", targetState{result: &wire.Result{Version: 3, State: "applying", Progress: prog}, progressAt: time.Now().Add(-progressFresh - time.Second)}, false},
		{"progress on an older version", targetState{result: &wire.Result{Version: 2, State: "applying", Progress: prog}, progressAt: time.Now()}, false},
		{"applying without progress (Asterisk down)", targetState{result: &wire.Result{Version: 3, State: "applying"}, progressAt: time.Now()}, false},
		{"no answer", targetState{}, false},
	} {
		if got := c.t.busyWith(3); got != c.want {
			t.Errorf("%s: busyWith = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestWaitingProgressText: a wait for room reads as such in status, with
// what is free of what the apply needs when it knows that.
func TestWaitingProgressText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    Progress
		want string
	}{
		{Progress{Phase: wire.PhaseWaiting, Files: 76630, FilesTotal: 100100, Bytes: 145 << 20, BytesTotal: 390 << 20, ETASeconds: 278.4},
			"waiting for room on the file system: 145.0 MiB of 390.0 MiB and 76630 of 100100 inodes free, trying again in 4m38s at the latest"},
		{Progress{Phase: wire.PhaseWaiting, ETASeconds: 40},
			"waiting for room on the file system (a write ran out of space), trying again in 40s at the latest"},
	} {
		if s := c.p.String(); s != c.want {
			t.Errorf("String() = %q, want %q", s, c.want)
		}
		if err := c.p.wire().Validate(); err != nil {
			t.Errorf("%q: its wire form is invalid: %v", c.want, err)
		}
	}
}

// TestOfferedProgress: content fetched as the source offers it, before its
// first announcement: the totals grow with the offers, there is no ETA
// until the source has offered all, and the text says why.
func TestOfferedProgress(t *testing.T) {
	t.Parallel()
	tr := progressTracker{offered: true}
	tr.begin(wire.PhaseFetching, 0, 0)
	tr.growing = true
	tr.extend(wire.PhaseFetching, 4, 400)
	tr.add(100)
	tr.extend(wire.PhaseFetching, 1, 100)
	tr.shrink(1, 100) // not fetched after all
	at := time.Now().Add(2 * time.Second)
	p := tr.snapshot(at)
	if !p.Offered || p.Generation != 0 || p.Files != 1 || p.FilesTotal != 4 || p.Bytes != 100 || p.BytesTotal != 400 || p.ETASeconds != -1 {
		t.Fatalf("while offers come: %+v; want 1/4 files, 100/400 bytes, offered, no ETA", p)
	}
	if s := p.String(); s != "fetching 1/4 files, 100 B/400 B, ETA unknown: the source still scans and offers more" {
		t.Errorf("String() = %q", s)
	}
	tr.offering(false)
	if p := tr.snapshot(at); p.ETASeconds < 5.9 || p.ETASeconds > 6.5 {
		t.Errorf("once all is offered: ETA %v, want about 6 s (a quarter in 2 s)", p.ETASeconds)
	}
}

// TestScanProgress: what a source's scan reads counts as it goes, with
// no total and no ETA (the walk has not ended), in the job's status once
// the scan has run for progressAfter, and out of it when the scan ends.
func TestScanProgress(t *testing.T) {
	t.Parallel()
	j := &job{}
	p := j.startScanProgress()
	for range scanCheckEvery {
		p.add(100)
	}
	if j.status.Progress != nil {
		t.Fatalf("published before progressAfter: %+v", j.status.Progress)
	}
	p.next.Store(time.Now().Add(-time.Millisecond).UnixNano()) // as if a second had passed
	for range scanCheckEvery {
		p.add(1 << 10)
	}
	got := j.status.Progress
	if got == nil || got.Phase != PhaseScanning || got.Files != 2*scanCheckEvery || got.FilesTotal != got.Files ||
		got.Bytes != scanCheckEvery*(100+1<<10) || got.ETASeconds != -1 {
		t.Fatalf("after the second: %+v; want %d files, %d bytes, no ETA", got, 2*scanCheckEvery, scanCheckEvery*(100+1<<10))
	}
	if s := got.String(); s != "scanning for a new generation: 128 files read and stored, 70.2 KiB so far" {
		t.Errorf("String() = %q", s)
	}
	p.stop()
	if j.status.Progress != nil {
		t.Errorf("left after the scan: %+v", j.status.Progress)
	}
}

// TestRecordProgress: a source's record of a new generation shows in the
// job's status (changes recorded of all, with an ETA) once it has run for
// progressAfter, or from the store's first report when a scan's progress
// showed just before it; it is gone when the record ends.
func TestRecordProgress(t *testing.T) {
	t.Parallel()
	j := &job{}
	p := j.startRecordProgress()
	p.update(0, 100)
	if j.status.Progress != nil {
		t.Fatalf("published before progressAfter: %+v", j.status.Progress)
	}
	if p.rateFrom.IsZero() {
		t.Fatal("the store's first report did not start the rate")
	}
	p.start = time.Now().Add(-5 * time.Second)    // as if the record had run for 5 s,
	p.rateFrom = time.Now().Add(-2 * time.Second) // its writes for 2
	p.after = p.start
	p.update(50, 100)
	got := j.status.Progress
	if got == nil || got.Phase != wire.PhaseRecording || got.Files != 50 || got.FilesTotal != 100 || got.Bytes != 0 || got.ETASeconds < 1.9 || got.ETASeconds > 2.5 {
		t.Fatalf("half written in the 2 s since the writes began: %+v; want 50/100 changes, about 2 s left", got)
	}
	if s := got.String(); s != "recording the new generation in the store: 50/100 changes recorded, ETA 2s" {
		t.Errorf("String() = %q", s)
	}
	p.stop()
	if j.status.Progress != nil {
		t.Errorf("left after the record: %+v", j.status.Progress)
	}

	// right after a scan that showed its progress: at once
	j = &job{}
	sp := j.startScanProgress()
	sp.next.Store(time.Now().Add(-time.Millisecond).UnixNano())
	for range scanCheckEvery {
		sp.add(1)
	}
	sp.stop()
	if j.scanShown.IsZero() {
		t.Fatal("a scan that showed its progress did not say when it ended")
	}
	p = j.startRecordProgress()
	p.update(0, 100)
	if got := j.status.Progress; got == nil || got.Phase != wire.PhaseRecording || got.FilesTotal != 100 || got.ETASeconds != -1 {
		t.Fatalf("a record right after a scan that showed: %+v; want 0/100 at once, no ETA", got)
	}
	p.stop()
}
