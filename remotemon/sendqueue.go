package remotemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"pbxsync/internal/wire"
)

// Defaults of the per-connection send queue.
const (
	// DefaultMaxQueue bounds the bytes waiting for one connection's control
	// stream (a frame larger than that is still taken when the queue is
	// empty).
	DefaultMaxQueue = 8 << 20
	// DefaultSlowAfter: a peer whose control stream took nothing for this
	// long while frames wait is reported slow.
	DefaultSlowAfter = 2 * time.Second
	// DefaultStallAfter: a peer whose control stream took nothing for this
	// long is disconnected.
	DefaultStallAfter = 20 * time.Second
	// writeChunk is how much is written at a time, so that progress (and
	// its absence) is seen on large frames.
	writeChunk = 64 << 10
)

// ErrPeerSlow is returned by Send when the peer's send queue is full: the
// peer does not read what it is sent. The message is dropped; the caller
// repeats what matters.
var ErrPeerSlow = errors.New("peer is not reading its control stream (send queue full)")

// sendQueue holds the frames waiting for one connection's control stream;
// one writer goroutine drains it, so that a peer that stops reading never
// blocks the sender (a job loop, the control reader answering a Ping).
type sendQueue struct {
	max  int
	wake chan struct{} // a frame was queued

	mu       sync.Mutex
	frames   [][]byte
	bytes    int
	writing  bool      // the writer holds a frame
	progress time.Time // last time the stream took bytes (or the writer took a frame from an idle queue)
	dropped  int       // frames refused since the last progress
}

func newSendQueue(max int) *sendQueue {
	return &sendQueue{max: max, wake: make(chan struct{}, 1), progress: time.Now()}
}

// push queues frame b; it reports false (and counts a drop) when the queue
// is full. A frame is always taken by an empty queue.
func (q *sendQueue) push(b []byte) bool {
	q.mu.Lock()
	if len(q.frames) > 0 && q.bytes+len(b) > q.max {
		q.dropped++
		q.mu.Unlock()
		return false
	}
	if len(q.frames) == 0 && !q.writing {
		q.progress = time.Now() // idle until now: the clock of slowness starts here
	}
	q.frames = append(q.frames, b)
	q.bytes += len(b)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// pop takes the next frame for the writer, or nil when the queue is empty.
func (q *sendQueue) pop() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 {
		q.writing = false
		return nil
	}
	b := q.frames[0]
	q.frames[0] = nil
	q.frames = q.frames[1:]
	q.bytes -= len(b)
	q.writing = true
	return b
}

// progressed records that the stream took bytes.
func (q *sendQueue) progressed(now time.Time) {
	q.mu.Lock()
	q.progress, q.dropped = now, 0
	q.mu.Unlock()
}

// slow reports whether the peer has taken nothing for after while frames
// wait (or a frame was dropped), and since when it took nothing.
func (q *sendQueue) slow(now time.Time, after time.Duration) (bool, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	busy := q.writing || len(q.frames) > 0
	if q.dropped > 0 || busy && now.Sub(q.progress) >= after {
		return true, q.progress
	}
	return false, time.Time{}
}

// queued returns the frames and bytes waiting.
func (q *sendQueue) queued() (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames), q.bytes
}

// enqueue encodes m and queues it for c's control stream without blocking.
func (c *conn) enqueue(codec *wire.Codec, m wire.Message) error {
	b, err := codec.Encode(m)
	if err != nil {
		return err
	}
	if !c.q.push(b) {
		return ErrPeerSlow
	}
	return nil
}

// writeLoop drains c's send queue onto its control stream until ctx is
// done. A peer that takes nothing for StallAfter is disconnected.
func (m *Monitor) writeLoop(ctx context.Context, c *conn) {
	for {
		b := c.q.pop()
		if b == nil {
			select {
			case <-ctx.Done():
				return
			case <-c.q.wake:
				continue
			}
		}
		for len(b) > 0 {
			n := min(len(b), writeChunk)
			c.wmu.Lock()
			c.ctrl.SetWriteDeadline(time.Now().Add(m.opts.StallAfter))
			w, err := c.ctrl.Write(b[:n])
			c.wmu.Unlock()
			if w > 0 {
				c.q.progressed(time.Now())
			}
			if err != nil {
				if ctx.Err() == nil {
					m.noteError(c.peer, "peer stopped reading its control stream; disconnecting it", fmt.Errorf("nothing taken for %s: %w", m.opts.StallAfter, err))
				}
				c.qc.CloseWithError(3, "peer stopped reading")
				return
			}
			b = b[w:]
		}
	}
}
