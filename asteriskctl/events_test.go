package asteriskctl

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/testwait"
)

func TestEventsNotDroppedUnderSlowConsumer(t *testing.T) {
	sim := startSim(t, amisim.Config{})
	s, _ := connected(t, sim)
	sub := s.Subscribe(0)
	defer sub.Close()
	const n = 2000
	go func() {
		for i := range n {
			sim.Emit("UserEvent", amisim.H("UserEvent", "tick"), amisim.H("Seq_Nr2", strconv.Itoa(i)))
		}
	}()
	ctx := testwait.Context(t)
	next := 0
	for next < n {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", next, err)
		}
		if m.Event() != "UserEvent" {
			continue // FullyBooted
		}
		if got := m.Get("seq_nr2"); got != strconv.Itoa(next) {
			t.Fatalf("event %d has Seq_Nr2 %q", next, got)
		}
		if next < 20 {
			time.Sleep(15 * time.Millisecond) // slower than goami2's 10 ms
		}
		next++
	}
	if d := sub.Dropped(); d != 0 {
		t.Fatalf("%d events dropped", d)
	}
	// Actions are answered while events pile up unread.
	if _, err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEventOverflowIsReported(t *testing.T) {
	sim := startSim(t, amisim.Config{})
	s, _ := connected(t, sim)
	// Let FullyBooted (sent right after the Login answer) arrive before
	// subscribing, or it would take a place in the queue.
	eventually(t, "FullyBooted", s.fullyBooted)
	sub := s.Subscribe(8)
	defer sub.Close()
	for i := range 20 {
		sim.Emit("UserEvent", amisim.H("N", strconv.Itoa(i)))
	}
	// The slow (here: stalled) consumer does not stall actions.
	if _, err := s.Ping(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "overflow", func() bool { return sub.Dropped() == 12 })
	ctx := testwait.Context(t)
	for i := range 8 {
		m, err := sub.Next(ctx)
		if err != nil || m.Get("N") != strconv.Itoa(i) {
			t.Fatalf("event %d: %v %v", i, m, err)
		}
	}
	// The gap is reported where the events are missing.
	_, err := sub.Next(ctx)
	var oe *OverflowError
	if !errors.As(err, &oe) || oe.Dropped != 12 || !errors.Is(err, ErrEventOverflow) {
		t.Fatalf("want overflow of 12, got %v", err)
	}
	sim.Emit("UserEvent", amisim.H("N", "20"))
	m, err := sub.Next(ctx)
	if err != nil || m.Get("N") != "20" {
		t.Fatalf("after gap: %v %v", m, err)
	}
	if sub.Dropped() != 12 {
		t.Fatalf("dropped %d", sub.Dropped())
	}
}

func TestSubscriptionUnit(t *testing.T) {
	sub := newSubscription(2, nil)
	for i := range 5 {
		sub.push(&Message{Fields: []Field{{"N", strconv.Itoa(i)}}})
	}
	ctx := context.Background()
	for _, want := range []string{"0", "1"} {
		if m, err := sub.Next(ctx); err != nil || m.Get("N") != want {
			t.Fatalf("want %s: %v %v", want, m, err)
		}
	}
	if _, err := sub.Next(ctx); !errors.Is(err, ErrEventOverflow) {
		t.Fatalf("tail gap: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty: %v", err)
	}
	// A gap in the middle of the queue: 0 1 [lost 2] 3.
	sub = newSubscription(2, nil)
	for i := range 3 {
		sub.push(&Message{Fields: []Field{{"N", strconv.Itoa(i)}}})
	}
	if m, _ := sub.Next(ctx); m.Get("N") != "0" {
		t.Fatal(m)
	}
	sub.push(&Message{Fields: []Field{{"N", "3"}}})
	if m, _ := sub.Next(ctx); m.Get("N") != "1" {
		t.Fatal(m)
	}
	var oe *OverflowError
	if _, err := sub.Next(ctx); !errors.As(err, &oe) || oe.Dropped != 1 {
		t.Fatalf("mid gap: %v", err)
	}
	if m, _ := sub.Next(ctx); m.Get("N") != "3" {
		t.Fatal(m)
	}
	sub.push(&Message{Fields: []Field{{"N", "x"}}})
	sub.Close()
	if m, err := sub.Next(ctx); err != nil || m.Get("N") != "x" {
		t.Fatalf("queued after close: %v %v", m, err)
	}
	if _, err := sub.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if sub.Dropped() != 1 {
		t.Fatalf("dropped %d", sub.Dropped())
	}
}
