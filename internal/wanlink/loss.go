package wanlink

import (
	"math/rand/v2"
	"sync"
)

// loss decides which datagrams of one direction a link drops: each with
// probability rate, drawn from a generator seeded once, so the n-th
// datagram of a direction meets the same fate in every run. A nil *loss
// drops nothing.
type loss struct {
	rate float64
	mu   sync.Mutex // the sessions of a link share the down direction
	rng  *rand.Rand
}

// newLoss returns the loss of one direction; dir tells the directions of
// one link apart, so that they do not lose in lockstep.
func newLoss(rate float64, seed, dir uint64) *loss {
	return &loss{rate: rate, rng: rand.New(rand.NewPCG(seed, dir))}
}

// drop reports whether the next datagram is lost.
func (l *loss) drop() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64() < l.rate
}
