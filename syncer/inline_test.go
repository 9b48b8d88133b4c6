package syncer

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestInlineContentNeedsNoTransfer: a small edit reaches the target inside
// the announcement (as a delta against the previous version, with delta =
// "always"; on loopback "auto" would send the zstd frame), so the source
// serves no transfer stream for it.
func TestInlineContentNeedsNoTransfer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("delta = \"always\"\n")
	var dialplan strings.Builder
	dialplan.WriteString(seedExtensions)
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&dialplan, "exten => %d,1,Dial(PJSIP/%d,30)\n same => n,VoiceMail(%d@default,u)\n", 1000+i, 1000+i, 1000+i)
	}
	a.write("extensions.conf", dialplan.String(), 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	receivedBefore := b.a().Status().Jobs[0]
	for i := 0; i < 3; i++ {
		a.appendTo("extensions.conf", fmt.Sprintf("exten => %d,1,Hangup()\n", 200+i))
		converged(t, "an appended line", a, b)
	}
	waitGood(t, b, "conf")
	after := b.a().Status().Jobs[0]
	if after.Fetches != receivedBefore.Fetches {
		t.Errorf("the target fetched %d contents over transfer streams for small edits; want them inline", after.Fetches-receivedBefore.Fetches)
	}
	if sent := a.a().Status().Jobs[0].BytesSent; sent == 0 {
		t.Error("the source counted no bytes for the inline content it sent")
	}
	logical := after.LogicalBytesReceived - receivedBefore.LogicalBytesReceived
	wire := after.BytesReceived - receivedBefore.BytesReceived
	if logical == 0 || wire == 0 {
		t.Fatalf("the target counted no inline content: logical %d, wire %d", logical, wire)
	}
	if wire*4 > logical {
		t.Errorf("inline content took %d wire bytes for %d logical bytes; want a delta, not the whole file", wire, logical)
	}
}

// TestLargeEditTravelsAsDelta: a one-line edit to a dialplan too big to
// ride inline is fetched with the target's copy named as base, and the
// source answers with a delta: a few hundred bytes, not the file.
func TestLargeEditTravelsAsDelta(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("delta = \"always\"\n")
	var dialplan strings.Builder
	for i := 0; len(dialplan.String()) < 2<<20; i++ {
		fmt.Fprintf(&dialplan, "exten => %d,1,Dial(PJSIP/%d,30,tT)\n same => n,VoiceMail(%d@default,u)\n same => n,Hangup()\n", 10000+i, 10000+i, 10000+i)
	}
	a.write("extensions.conf", dialplan.String(), 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	before := b.a().Status().Jobs[0]
	a.appendTo("extensions.conf", "exten => 99999,1,Hangup()\n")
	converged(t, "a one-line edit", a, b)
	waitGood(t, b, "conf")
	after := b.a().Status().Jobs[0]
	wire := after.BytesReceived - before.BytesReceived
	logical := after.LogicalBytesReceived - before.LogicalBytesReceived
	if logical < 2<<20 {
		t.Fatalf("logical bytes %d: the edit was not counted", logical)
	}
	if wire > 4096 {
		t.Errorf("a one-line edit of a %d-byte file took %d bytes on the wire; want a delta of a few hundred", logical, wire)
	}
	t.Logf("one-line edit of %d bytes: %d bytes on the wire", logical, wire)
}

// TestIncrementalAnnouncements: once a target acknowledged a generation,
// the next announcement carries only what changed; a target that lost its
// state (wiped and restarted) asks for the complete index and converges.
func TestIncrementalAnnouncements(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	for i := 0; i < 300; i++ {
		a.write(fmt.Sprintf("sounds/prompt%03d.gsm", i), strings.Repeat("x", 100+i), 0o644)
	}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	// The source sends an incremental announcement to a target whose
	// answer for the previous generation it has: wait for that answer
	// before each edit, or the next announcement is (rightly) complete.
	acked := func(what string) {
		eventually(t, waitLimit, what, func() error {
			js, _ := a.jobStatus("conf")
			for _, tg := range js.Targets {
				if tg.Name == "b" && tg.State == "good" && tg.Version == js.Generation {
					return nil
				}
			}
			return fmt.Errorf("source: generation %d, targets %+v", js.Generation, js.Targets)
		})
	}
	converged(t, "initial sync", a, b)
	acked("b acknowledged the initial sync")
	sent := func() uint64 { return a.a().mon.Status()[0].BytesSent }
	// The connection also carries pings and published state, by the
	// clock: a loaded machine takes longer per edit and so sends more of
	// them. Measure that background rate while nothing changes and take
	// it off, so the figure is the announcements'.
	idleFrom, idleStart := sent(), time.Now()
	time.Sleep(time.Second)
	idleRate := float64(sent()-idleFrom) / time.Since(idleStart).Seconds()
	sentBefore, editsStart := sent(), time.Now()
	for i := 0; i < 5; i++ {
		a.appendTo("extensions.conf", fmt.Sprintf("exten => %d,1,Hangup()\n", 300+i))
		converged(t, "an edit", a, b)
		acked("b acknowledged the edit")
	}
	background := idleRate * time.Since(editsStart).Seconds()
	perEdit := (float64(sent()-sentBefore) - background) / 5
	// A complete index of 300 files is well over 10 KB even compressed
	// (each item carries a 32-byte hash); an incremental one is a few
	// hundred bytes plus QUIC overhead.
	if perEdit > 6000 {
		t.Errorf("each one-line edit cost the source %.0f wire bytes beyond the idle traffic (%.0f B/s); the announcements are not incremental", perEdit, idleRate)
	}
	t.Logf("wire bytes per one-line edit in a 301-file job: %.0f (idle traffic %.0f B/s taken off)", perEdit, idleRate)
}

// TestSignatureForContentOnlyTheTargetHas: a target that starts with an
// old copy of a big dialplan (not in its store, so the source cannot know
// it) sends a signature of it, and the source answers with a delta: a few
// KB instead of the file.
func TestSignatureForContentOnlyTheTargetHas(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("delta = \"always\"\n")
	// Lines carry per-line secrets, as a pjsip.conf does, so the file does
	// not compress small enough to ride inline.
	var dialplan strings.Builder
	for i := 0; dialplan.Len() < 2<<20; i++ {
		fmt.Fprintf(&dialplan, "exten => %d,1,Set(PIN=%x)\n same => n,Dial(PJSIP/%d,30,tT)\n", 10000+i, randBytes(uint64(i), 8), 10000+i)
	}
	old := dialplan.String()
	b.write("extensions.conf", old, 0o644)
	a.write("extensions.conf", old+"exten => 99999,1,Hangup()\n", 0o644)
	a.start()
	b.start()
	converged(t, "first sync over an old copy", a, b)
	waitGood(t, b, "conf")
	js := b.a().Status().Jobs[0]
	if js.LogicalBytesReceived < 2<<20 {
		t.Fatalf("logical bytes %d: the file was not fetched", js.LogicalBytesReceived)
	}
	if js.BytesReceived > 64<<10 {
		t.Errorf("first sync over an old copy took %d wire bytes for a %d-byte file; want a signature delta", js.BytesReceived, js.LogicalBytesReceived)
	}
	t.Logf("first sync over an old copy: %d logical bytes, %d on the wire", js.LogicalBytesReceived, js.BytesReceived)
}

// TestSmallFilesShareTransferStreams: an initial sync of many small new
// files (too many to ride inline) fetches them many to a stream
// (Get.More), not one stream each, and the target holds them all.
func TestSmallFilesShareTransferStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	const files = 600
	for i := range files {
		// random content: 2 KiB that does not compress, 1.2 MB in all,
		// over the announcement's inline budget
		a.write(fmt.Sprintf("sounds/d%d/f%03d.gsm", i%7, i), string(randBytes(uint64(i+1), 2048)), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	if err := diffTrees(a.tree, b.tree); err != nil {
		t.Fatal(err)
	}
	js := b.a().Status().Jobs[0]
	if js.Fetches < files/2 {
		t.Fatalf("the target fetched %d contents over transfer streams; want most of the %d files (the rest inline)", js.Fetches, files)
	}
	if js.FetchStreams*20 > js.Fetches {
		t.Errorf("the target opened %d transfer streams for %d contents; want many contents to a stream", js.FetchStreams, js.Fetches)
	}
}

// TestBulkEditSharesStreamsWithDeltas: an edit of many small files that
// the target holds (a sed over every endpoint file) is fetched many to a
// stream, each content a delta against the file there (Get.MoreBase), not
// one stream per file: the fetch of 100,000 edited files took one stream
// each, 3-4k files a second on loopback and one round trip each over a
// WAN. Nothing rides inline here (Options.NoInline), so every edited file
// goes over a transfer stream.
func TestBulkEditSharesStreamsWithDeltas(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("delta = \"always\"\n")
	a.tune = func(o *Options) { o.NoInline = true }
	const files = 300
	for i := range files {
		// 3 KiB that does not compress: a whole content costs its size
		a.write(fmt.Sprintf("pjsip.d/d%d/ep%03d.conf", i%5, i), fmt.Sprintf("%x\n", randBytes(uint64(i+1), 1536)), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	before := b.a().Status().Jobs[0]
	for i := range files {
		a.appendTo(fmt.Sprintf("pjsip.d/d%d/ep%03d.conf", i%5, i), fmt.Sprintf("; edited %d\n", i))
	}
	converged(t, "bulk edit", a, b)
	waitGood(t, b, "conf")
	if err := diffTrees(a.tree, b.tree); err != nil {
		t.Fatal(err)
	}
	after := b.a().Status().Jobs[0]
	fetches, streams := after.Fetches-before.Fetches, after.FetchStreams-before.FetchStreams
	wireBytes, logical := after.BytesReceived-before.BytesReceived, after.LogicalBytesReceived-before.LogicalBytesReceived
	t.Logf("bulk edit of %d files: %d contents on %d streams, %d logical bytes, %d on the wire", files, fetches, streams, logical, wireBytes)
	if fetches < files {
		t.Fatalf("the target fetched %d contents over transfer streams; want the %d edited files", fetches, files)
	}
	if streams*10 > fetches {
		t.Errorf("the target opened %d transfer streams for %d edited files; want many to a stream", streams, fetches)
	}
	if wireBytes*4 > logical {
		t.Errorf("%d wire bytes for %d logical bytes of one-line edits; want deltas against the files the target holds", wireBytes, logical)
	}
}
