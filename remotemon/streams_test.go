package remotemon

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"pbxsync/internal/wire"
)

// TestManyStreamsWithLargeRequests: a peer may open any number of
// transfer streams one after another, also when each request spans more
// than one packet (its end of stream then arrives after the data the
// handler read): the accepting side completes every stream once its
// handler returns, so the stream credit (maxIncomingStreams) comes back.
func TestManyStreamsWithLargeRequests(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	addrA, addrB := reserve(t, a), reserve(t, b)
	a.startAt(t, addrA, b.peer(addrB))
	b.startAt(t, addrB, a.peer(addrA))
	waitFor(t, "a sees b", func() bool { return a.mon.Connected("b") && b.mon.Connected("a") })
	go func() {
		for range a.rec.streams { // the handler reports each stream here
		}
	}()
	r := rand.New(rand.NewPCG(1, 2))
	letters := []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
	for i := range 3 * maxIncomingStreams {
		// a path of 4 KiB that compresses little: a request of several packets
		p := make([]byte, 4000)
		for k := range p {
			p[k] = letters[r.IntN(len(letters))]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s, err := b.mon.OpenStream(ctx, "a")
		cancel()
		if err != nil {
			t.Fatalf("stream %d: %v (stream credit not returned?)", i, err)
		}
		s.SetDeadline(time.Now().Add(20 * time.Second))
		if err := s.WriteMessage(&wire.Get{Job: "conf", Path: string(p), Hash: make([]byte, 32)}); err != nil {
			t.Fatal(err)
		}
		// let the request leave before the end of stream: on a loaded
		// machine the two often travel apart
		time.Sleep(2 * time.Millisecond)
		s.Close()
		m, err := s.ReadMessage()
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if _, err := io.Copy(io.Discard, io.LimitReader(s, m.(*wire.Data).Size)); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		s.Abort() // as a fetch does once it has what it asked for
	}
}
