package syncer

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestE2EFirstGenerationPrefetched: a source that builds its first
// generation offers what its scan stores, and the target fetches that
// content before it takes the announcement (status "prefetched", which
// only a fetch before the take counts: the take stops the prefetch and
// waits for it); the sync converges, the large files included.
func TestE2EFirstGenerationPrefetched(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	const files = 1500
	for i := range files {
		a.write(fmt.Sprintf("d%02d/f%04d.conf", i%20, i), fmt.Sprintf("[f%d]\nexten => %d,1,NoOp()\n", i, i), 0o644)
	}
	for i := range 2 {
		a.write(fmt.Sprintf("sounds/big%d.wav", i), strings.Repeat(fmt.Sprintf("%d-%d ", i, i*7), 100_000), 0o644)
	}
	b.start()
	waitingForFirst(t, b)
	a.start()
	converged(t, "the first generation arrives", a, b)
	st, _ := b.jobStatus("conf")
	if st.Prefetched == 0 {
		t.Fatalf("b fetched nothing before the announcement (%d fetches in all)", st.Fetches)
	}
	if st.Prefetched > st.Fetches {
		t.Errorf("prefetched %d > fetches %d", st.Prefetched, st.Fetches)
	}
	t.Logf("b prefetched %d of %d fetched contents on %d streams", st.Prefetched, st.Fetches, st.FetchStreams)
	if !a.logHas("offered the first generation's content") {
		t.Error("a does not log what it offered")
	}
}

// TestE2EOffersRefused: a target takes offers only from its job's source
// and only for paths its job admits. A pinned peer that is not the source
// has its offer stream refused; the source's offer of names the target
// never syncs, control characters and paths its filters exclude makes it
// ask for none of that content, only for the admitted path's.
func TestE2EOffersRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	c := h.node("c")
	b.pin(c)
	b.Jobs[0].Extra = `exclude = ["secret"]` + "\n"
	b.start()
	waitingForFirst(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	hash := func(i byte) []byte { return bytes.Repeat([]byte{i}, index.HashSize) }

	// c is pinned, but not the job's source
	pc, err := dialTestPeer(ctx, c, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	s, err := pc.qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.codec.Write(s, &wire.Offer{Job: "conf", Items: []wire.OfferItem{{Path: "good.conf", Hash: hash(1), Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	m, err := pc.codec.Read(s)
	if e, ok := m.(*wire.Error); err != nil || !ok || !strings.Contains(e.Message, "refused") {
		t.Fatalf("an offer from a peer that is not the source: got %v %v, want a refusal", m, err)
	}

	// the source's identity offers hostile and admitted paths alike
	pa, err := dialTestPeer(ctx, a, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pa.close()
	var mu sync.Mutex
	asked := map[byte]string{} // first byte of a requested hash → the Get's path
	gotGood := make(chan struct{})
	go func() {
		for {
			gs, err := pa.qc.AcceptStream(ctx)
			if err != nil {
				return
			}
			m, err := pa.codec.Read(gs)
			if err != nil {
				continue
			}
			if g, ok := m.(*wire.Get); ok {
				mu.Lock()
				for _, h := range append([][]byte{g.Hash}, g.More...) {
					asked[h[0]] = g.Path
					if h[0] == 1 {
						close(gotGood)
					}
				}
				mu.Unlock()
			}
			gs.CancelRead(0)
			gs.Close()
		}
	}()
	os, err := pa.qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hostile := []wire.OfferItem{
		{Path: "secret/keys.conf", Hash: hash(2), Size: 10},     // excluded by b's filters (below an excluded directory)
		{Path: "secret", Hash: hash(3), Size: 10},               // excluded itself
		{Path: "astdb.sqlite3", Hash: hash(4), Size: 10},        // never synced
		{Path: ".pbxsync-state", Hash: hash(5), Size: 10},       // never synced
		{Path: "bad\nname.conf", Hash: hash(6), Size: 10},       // a control character
		{Path: "d/.pbxsync-staging/x", Hash: hash(7), Size: 10}, // never synced, below a directory
	}
	// the admitted one last: when it is asked for, every hostile one
	// was decided before it
	items := append(hostile, wire.OfferItem{Path: "good.conf", Hash: hash(1), Size: 10})
	if err := pa.codec.Write(os, &wire.Offer{Job: "conf", Items: items}); err != nil {
		t.Fatal(err)
	}
	os.Close()
	select {
	case <-gotGood:
	case <-ctx.Done():
		t.Fatal("b never asked for the offered good.conf")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, it := range hostile {
		if p, ok := asked[it.Hash[0]]; ok {
			t.Errorf("b asked for the content offered at %q (Get path %q)", it.Path, p)
		}
	}
	if _, err := b.a().store.Generations("conf"); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.jobStatus("conf"); st.Generation != 0 || st.Prefetched != 0 {
		t.Errorf("offers changed b's job: generation %d, prefetched %d", st.Generation, st.Prefetched)
	}
}

// TestE2EOffersToAnOlderTarget: a target that predates offers refuses the
// offer stream (its decoder does not know the type: the stream ends, the
// connection goes on). The source opens at most offerRefusals of them and
// announces its first generation on the same connection as before.
func TestE2EOffersToAnOlderTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	for i := range 3 * wire.MaxOfferItems * offerRefusals {
		a.write(fmt.Sprintf("d%02d/f%04d.conf", i%10, i), fmt.Sprintf("[f%d]\n", i), 0o644)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	a.start()
	pb, err := dialTestPeer(ctx, b, a.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pb.close()
	var mu sync.Mutex
	var offerStreams int
	go func() {
		for {
			s, err := pb.qc.AcceptStream(ctx)
			if err != nil {
				return
			}
			var hdr [wire.HeaderSize]byte
			if _, err := s.Read(hdr[:]); err == nil && wire.Type(hdr[1]) == wire.TypeOffer {
				mu.Lock()
				offerStreams++
				mu.Unlock()
			}
			// as an older agent's unknown message type: the stream ends
			s.CancelRead(1)
			s.CancelWrite(1)
		}
	}()
	for {
		pb.ctrl.SetReadDeadline(time.Now().Add(waitLimit))
		m, err := pb.codec.Read(pb.ctrl)
		if err != nil {
			t.Fatalf("no announcement on the connection: %v", err)
		}
		if an, ok := m.(*wire.Announce); ok && an.Version == 1 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if offerStreams == 0 || offerStreams > offerRefusals {
		t.Errorf("the source opened %d offer streams, want 1 to %d", offerStreams, offerRefusals)
	}
}

// waitingForFirst waits until n's job "conf" waits for its first
// generation (it has started and takes offers).
func waitingForFirst(t *testing.T, n *tnode) {
	t.Helper()
	eventually(t, waitLimit, n.name+" waits for its first generation", func() error {
		if st, _ := n.jobStatus("conf"); st.State != "waiting" {
			return fmt.Errorf("state %q", st.State)
		}
		return nil
	})
}
