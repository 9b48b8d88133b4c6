package asteriskctl

import (
	"context"
	"sync"
)

// DefaultEventBuffer is the queue length of a [Subscription] when none is
// given.
const DefaultEventBuffer = 4096

// Subscription receives the AMI events of a [Session] (all connections, in
// order) that do not belong to a list action. Each subscription has its own
// bounded queue; see the package documentation for what happens when it
// fills. Safe for concurrent use.
type Subscription struct {
	unsubscribe func()

	mu      sync.Mutex
	queue   []subEntry // ring buffer
	head    int
	n       int
	tailGap uint64 // events dropped after the last queued one
	dropped uint64 // total dropped
	closed  bool
	notify  chan struct{} // cap 1: something changed
}

type subEntry struct {
	msg       *Message
	gapBefore uint64 // events lost just before msg
}

func newSubscription(buffer int, unsubscribe func()) *Subscription {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	return &Subscription{
		unsubscribe: unsubscribe,
		queue:       make([]subEntry, buffer),
		notify:      make(chan struct{}, 1),
	}
}

// push queues m without blocking; it reports false when m was dropped.
func (s *Subscription) push(m *Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	if s.n == len(s.queue) {
		s.tailGap++
		s.dropped++
		return false
	}
	s.queue[(s.head+s.n)%len(s.queue)] = subEntry{msg: m, gapBefore: s.tailGap}
	s.tailGap = 0
	s.n++
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return true
}

// Next returns the next event, waiting until one arrives, ctx ends or the
// subscription is closed (ErrClosed). When events were lost because the
// queue was full, Next returns an [*OverflowError] once, at the position of
// the gap, and continues with the events after it on the following call.
func (s *Subscription) Next(ctx context.Context) (*Message, error) {
	for {
		s.mu.Lock()
		if s.n > 0 {
			e := &s.queue[s.head]
			if e.gapBefore > 0 {
				gap := e.gapBefore
				e.gapBefore = 0
				s.mu.Unlock()
				return nil, &OverflowError{Dropped: gap}
			}
			m := e.msg
			*e = subEntry{}
			s.head = (s.head + 1) % len(s.queue)
			s.n--
			s.mu.Unlock()
			return m, nil
		}
		if s.tailGap > 0 {
			gap := s.tailGap
			s.tailGap = 0
			s.mu.Unlock()
			return nil, &OverflowError{Dropped: gap}
		}
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Dropped returns how many events this subscription lost in total because
// its queue was full.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Len returns the number of queued events.
func (s *Subscription) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Close stops the subscription. Queued events can still be read; then Next
// returns ErrClosed.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if s.unsubscribe != nil {
		s.unsubscribe()
	}
}
