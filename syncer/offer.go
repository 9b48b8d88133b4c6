package syncer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// While a source's scan stores the content of the job's first generation
// (it holds none yet: the first start of the job, the case where every
// target lacks everything and waits longest), it offers that content to
// the targets in its own site (wire.Offer, on one transfer stream per
// target) in batches, so that they fetch it while the source still scans
// and records; it serves Get for what it offered until the generation is
// recorded (then it serves the generation). Later generations are not
// offered: a restart's rescan must send nothing, and a change is
// announced within a second or two of its scan anyway. Offers are hints:
// a batch that finds no connection, or a full queue, is dropped, and the
// announcement's fetch gets that content.

// offerQueue bounds the batches waiting to go to one target (at most
// wire.MaxOfferItems items each).
const offerQueue = 64

// offerWriteTimeout bounds the write of one Offer.
const offerWriteTimeout = 10 * time.Second

// offerRefusals is how many refused offer streams end a sender's offers.
const offerRefusals = 3

// A sender without a connection tries again every offerRetry, and gives
// up offerConnectWait after the scan ended.
const (
	offerRetry       = 50 * time.Millisecond
	offerConnectWait = 5 * time.Second
)

// offerer batches what a scan stores and hands each batch to one sender
// per target.
type offerer struct {
	j         *job
	ctx       context.Context
	mu        sync.Mutex
	batch     []wire.OfferItem
	pathBytes int
	to        []chan *wire.Offer
	wg        sync.WaitGroup
	sent      atomic.Int64 // items sent (counted once per target)
	dropped   atomic.Int64 // items dropped (counted once per target)
	giveUp    atomic.Int64 // when a sender stops waiting for a connection (UnixNano; 0 while the scan goes on)
}

// newOfferer returns the offerer of the scan that builds the job's first
// generation, or nil when this scan offers nothing: the job is no files
// push source, holds a generation, waits for sync windows, or has no
// target in this node's site (the others are sent to through their
// site's relay, one copy per site).
func (j *job) newOfferer(ctx context.Context) *offerer {
	if j.a.noOffers || !j.isSource || j.kind != nil || j.cfg.Mode != config.ModePush || j.latest != nil || j.servedRefs != nil || len(j.cfg.Windows) > 0 {
		return nil
	}
	// j.latest is nil only in the scan before startSource: a job whose
	// store holds a generation (a restart) offers nothing
	if gens, err := j.a.store.Generations(j.cfg.Name); err != nil || len(gens) > 0 {
		return nil
	}
	cfg := j.a.cfgSnapshot()
	o := &offerer{j: j, ctx: ctx}
	for _, t := range j.cfg.Targets {
		if cfg.SiteOf(t) != cfg.Node.Site {
			continue
		}
		q := make(chan *wire.Offer, offerQueue)
		o.to = append(o.to, q)
		o.wg.Add(1)
		go o.send(t, q)
	}
	if len(o.to) == 0 {
		return nil
	}
	return o
}

// stored takes one file the scan stored (hostmon.StoredFunc).
func (o *offerer) stored(it index.Item) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.batch) > 0 && o.pathBytes+len(it.Path) > wire.MaxOfferPathBytes {
		o.flushLocked()
	}
	h := it.Hash // only the hash escapes, not the whole item
	o.batch = append(o.batch, wire.OfferItem{Path: it.Path, Hash: h[:], Size: it.Size, Mode: uint32(it.Mode), MTime: it.MTime})
	o.pathBytes += len(it.Path)
	if len(o.batch) == wire.MaxOfferItems {
		o.flushLocked()
	}
}

// flushLocked serves the batch's content and queues it for every target.
func (o *offerer) flushLocked() {
	if len(o.batch) == 0 {
		return
	}
	j := o.j
	j.mu.Lock()
	for _, it := range o.batch {
		j.serving.set(wire.HashOf(it.Hash), it.Size)
	}
	j.mu.Unlock()
	m := &wire.Offer{Job: j.cfg.Name, Items: o.batch}
	for _, q := range o.to {
		select {
		case q <- m:
		default:
			o.dropped.Add(int64(len(m.Items)))
		}
	}
	o.batch, o.pathBytes = nil, 0
}

// open opens the offer stream to peer. While the scan goes on, and for
// offerConnectWait after it, it waits for a connection (both agents
// start at once: the first batches are stored before they connect); nil
// when there is none by then.
func (o *offerer) open(peer string) *remotemon.Stream {
	tick := time.NewTicker(offerRetry)
	defer tick.Stop()
	for {
		s, err := o.j.a.mon.OpenStream(o.ctx, peer)
		if err == nil {
			return s
		}
		if !errors.Is(err, remotemon.ErrNotConnected) {
			return nil
		}
		if until := o.giveUp.Load(); until != 0 && time.Now().UnixNano() > until {
			return nil
		}
		select {
		case <-o.ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// close sends what is left and ends the senders' streams; it does not
// wait for them.
func (o *offerer) close() {
	o.mu.Lock()
	o.flushLocked()
	for _, q := range o.to {
		close(q)
	}
	o.to = nil
	o.giveUp.Store(time.Now().Add(offerConnectWait).UnixNano())
	o.mu.Unlock()
	go func() {
		o.wg.Wait()
		o.j.log.Info("offered the first generation's content to the targets while scanning", "items", o.sent.Load(), "dropped", o.dropped.Load())
	}()
}

// send writes the batches of q to peer on one transfer stream. A batch
// that finds no connection is dropped (the next one tries again); a
// stream the target refuses (an agent that predates offers, a target that
// holds a generation, or one whose job has not started yet) is opened
// again with the next batch, up to offerRefusals times, then the offers
// to it end.
func (o *offerer) send(peer string, q <-chan *wire.Offer) {
	defer o.wg.Done()
	var s *remotemon.Stream
	refused, refusals := false, 0
	for m := range q {
		if refused {
			o.dropped.Add(int64(len(m.Items)))
			continue
		}
		if s == nil {
			if s = o.open(peer); s == nil {
				o.dropped.Add(int64(len(m.Items)))
				continue
			}
		}
		s.SetDeadline(time.Now().Add(offerWriteTimeout))
		if err := s.WriteMessage(m); err != nil {
			s.Abort()
			s = nil
			o.dropped.Add(int64(len(m.Items)))
			if refusals++; refusals == offerRefusals {
				o.j.log.Debug("target takes no offers; it fetches after the announcement", "peer", peer, "err", err)
				refused = true
			}
			continue
		}
		o.sent.Add(int64(len(m.Items)))
	}
	if s != nil {
		s.Close()
	}
}
