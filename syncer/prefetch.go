package syncer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// A target that holds no generation of a files push job takes the
// source's offers (wire.Offer: content the source stored while it builds
// its first generation) and fetches that content into its store before
// the announcement comes: the fetch of the announcement then finds it
// stored, and the apply takes the staging copies the fetch wrote
// (Applier.prestage). An offer is a hint, never an instruction: nothing
// is applied or referenced, a path the job's own filters or names refuse
// is not fetched, nor one where the tree has anything (the announcement's
// fetch may get a delta against it, or copy it), and what does not fit
// the bounded queue is dropped. Content fetched for an offer that no
// announcement names is unreferenced; the store's GC removes it.

// prefetchQueue bounds the offered contents a target keeps waiting to be
// fetched (about 150 bytes each); offers beyond it are dropped.
const prefetchQueue = 32 << 10

// prefetchMax bounds the offered contents one job start takes (each
// leaves a staging copy until an announcement takes it): a source that
// offers without ever announcing cannot make a target store without end.
const prefetchMax = 4 << 20

// prefetchLinger is how long a batch waits for more offered contents to
// fill it: the source offers them as its scan stores them.
const prefetchLinger = 20 * time.Millisecond

// offerReadTimeout bounds the wait for the next frame of an offer stream.
const offerReadTimeout = 30 * time.Second

// prefetcher fetches offered content from the job's source. Its queue
// and workers start with the first admitted offer.
type prefetcher struct {
	j         *job
	ctx       context.Context
	queue     chan index.Item
	stopping  chan struct{}
	start     sync.Once
	mu        sync.Mutex // orders the workers' start before stopPrefetch's wait
	gathering sync.Mutex // held by the worker that gathers the next batch
	wg        sync.WaitGroup
	done      atomic.Int64 // contents fetched
	taken     atomic.Int64 // offered contents admitted (queued or dropped)
	// prog counts what is queued and fetched for the job's status (made
	// with the workers; nil before)
	prog *progressTracker
}

// startPrefetch makes a files push target whose store holds no
// generation of the job take offers, from the job's start (before its
// own scan: the source offers from its first stored file on) until it
// takes an announcement; ctx bounds its fetches.
func (j *job) startPrefetch(ctx context.Context) {
	if j.isSource || j.kind != nil || j.cfg.Mode != config.ModePush || j.pre.Load() != nil {
		return
	}
	if gens, err := j.a.store.Generations(j.cfg.Name); err != nil || len(gens) > 0 {
		return
	}
	j.pre.Store(&prefetcher{j: j, ctx: ctx, stopping: make(chan struct{})})
}

// stopPrefetch makes the job refuse offers and waits for the fetches
// under way: what is still queued is fetched, if announced, by the
// announcement's fetch.
func (j *job) stopPrefetch() {
	p := j.pre.Swap(nil)
	if p == nil {
		return
	}
	p.mu.Lock()
	close(p.stopping) // no worker starts after this, nor the progress
	prog := p.prog
	p.mu.Unlock()
	p.wg.Wait()
	prog.stop() // the announcement's take tracks its own
	if n := p.done.Load(); n > 0 {
		p.mu.Lock()
		left := len(p.queue)
		p.mu.Unlock()
		j.log.Info("fetched offered content before the announcement", "files", n, "left_queued", left)
	}
}

// takeOffers reads the offers of peer (the job's source, as the gate
// checked) from s, first among them, and queues what the job admits.
// What the store holds already is dropped when a worker takes it
// (needed), not looked up here as well: the two lookups of every offered
// content were 0.9 s of a target's CPU in a 100k initial sync, and a
// content stored meanwhile (the same content at another path) is found
// by the second one only.
func (j *job) takeOffers(peer string, first *wire.Offer, s *remotemon.Stream) {
	defer s.Close()
	var taken, dropped int
	var admitted []index.Item
	defer func() {
		if taken+dropped > 0 {
			j.log.Debug("took a source's offers", "peer", peer, "queued", taken, "dropped", dropped)
		}
	}()
	if p := j.pre.Load(); p != nil {
		p.offering(true) // until this stream ends (a later stream, after a reconnect, offers more)
	}
	for m := first; ; {
		p := j.pre.Load()
		if p == nil {
			s.Abort() // this target takes no offers (it holds a generation, or takes the announcement)
			return
		}
		// the frame's items are admitted first and queued together, so
		// that a batch takes them at once
		admitted = admitted[:0]
		var dirs offeredDirs
		for _, oi := range m.Items {
			if it, ok := j.admitOffered(oi, &dirs); ok {
				admitted = append(admitted, it)
			}
		}
		for _, it := range admitted {
			if !p.add(it) {
				dropped++
				continue
			}
			taken++
		}
		s.SetDeadline(time.Now().Add(offerReadTimeout))
		next, err := s.ReadMessage()
		if errors.Is(err, io.EOF) {
			p.offering(false) // the source offered all it scanned
			return
		}
		o, isOffer := next.(*wire.Offer)
		if err != nil || !isOffer || o.Job != first.Job {
			if err == nil {
				j.log.Warn("refusing an offer stream that goes on with another message", "peer", peer, "type", next.Type().String())
			}
			s.Abort()
			return
		}
		m = o
	}
}

// admitOffered decides without I/O whether an offered content is
// fetched, if the store lacks it (see needed): a path the job admits as
// a file (its filters at the path and every parent, the never-synced
// names, no control characters). dirs keeps the frame's last directory
// decided (a frame comes in path order: its files share directories).
func (j *job) admitOffered(oi wire.OfferItem, dirs *offeredDirs) (index.Item, bool) {
	if index.ValidateName(oi.Path) != nil || !j.filter.Match(oi.Path, false) || !dirs.admits(j, index.Parent(oi.Path)) {
		return index.Item{}, false
	}
	return index.Item{Path: oi.Path, Kind: index.KindFile, Hash: wire.HashOf(oi.Hash), Size: oi.Size, Mode: fs.FileMode(oi.Mode), MTime: oi.MTime}, true
}

// offeredDirs is the last directory an offer frame's admission decided.
type offeredDirs struct {
	dir   string
	ok    bool
	known bool
}

// admits reports whether the job's filters admit dir and every parent of
// it as directories ("" is the job's root).
func (o *offeredDirs) admits(j *job, dir string) bool {
	if o.known && o.dir == dir {
		return o.ok
	}
	ok := true
	for d := dir; d != ""; d = index.Parent(d) {
		if !j.filter.Match(d, true) {
			ok = false
			break
		}
	}
	o.dir, o.ok, o.known = dir, ok, true
	return ok
}

// lacking keeps of items the content the store lacks, looked up in one
// pass (Store.Lacking: a content it holds but does not find costs a
// redundant fetch only).
func (j *job) lacking(items []index.Item) []index.Item {
	if len(items) == 0 {
		return items
	}
	hs := make([]index.Hash, len(items))
	sizes := make([]int64, len(items))
	for i, it := range items {
		hs[i], sizes[i] = it.Hash, it.Size
	}
	lack := j.a.store.Lacking(hs, sizes)
	out := items[:0]
	for i, it := range items {
		if lack[i] {
			out = append(out, it)
		}
	}
	return out
}

// add queues it unless the queue is full or the job start took
// prefetchMax offers; it starts the workers.
func (p *prefetcher) add(it index.Item) bool {
	p.start.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.queue = make(chan index.Item, prefetchQueue)
		if p.stopped() {
			return
		}
		p.j.log.Info("fetching the content the source offers before it announces its first generation")
		p.prog = p.j.startOfferedProgress(p.ctx, p.j.cfg.Source)
		for range fetchParallel {
			p.wg.Add(1)
			go p.work()
		}
	})
	if p.taken.Add(1) > prefetchMax {
		return false
	}
	select {
	case p.queue <- it:
		p.prog.extend(wire.PhaseFetching, 1, uint64(max(it.Size, 0)))
		return true
	default:
		return false
	}
}

// offering says whether the source offers more (a stream of offers
// begins) or offered all (it ended): whether the progress's totals are
// final.
func (p *prefetcher) offering(more bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prog.offering(more)
}

// work fetches queued content until the prefetcher stops: small files
// together on one stream (Get.More), as the announcement's fetch does.
func (p *prefetcher) work() {
	defer p.wg.Done()
	for {
		batch, large, ok := p.next()
		if !ok {
			return
		}
		p.fetch(batch, large)
	}
}

// next waits for the next batch (see gather); one worker gathers at a
// time, so that batches fill while offers trickle in. It reports false
// when the prefetcher stops.
func (p *prefetcher) next() (batch, large []index.Item, ok bool) {
	p.gathering.Lock()
	defer p.gathering.Unlock()
	var first index.Item
	select {
	case <-p.stopping:
		return nil, nil, false
	case <-p.ctx.Done():
		return nil, nil, false
	case first = <-p.queue:
	}
	if p.stopped() {
		return nil, nil, false // select chose the item, though stopping too was ready
	}
	batch, large = p.gather(first)
	return batch, large, true
}

// stopped reports whether stopPrefetch began.
func (p *prefetcher) stopped() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}

// gather takes more queued items, for at most prefetchLinger, into a
// batch of small files (up to wire.MaxGetMore+1 of them and batchBytes in
// all) beside the large ones among them.
func (p *prefetcher) gather(first index.Item) (batch, large []index.Item) {
	var bytes int64
	take := func(it index.Item) {
		if it.Size > batchItemMax {
			large = append(large, it)
			return
		}
		batch = append(batch, it)
		bytes += it.Size
	}
	take(first)
	linger := time.NewTimer(prefetchLinger)
	defer linger.Stop()
	for len(batch) <= wire.MaxGetMore && bytes < batchBytes && len(large) < fetchParallel {
		select {
		case it := <-p.queue:
			take(it)
		case <-linger.C:
			return batch, large
		case <-p.stopping:
			return batch, large
		}
	}
	return batch, large
}

// fetch gets what is still missing of batch (one stream) and large (one
// stream each) from the source into the store.
func (p *prefetcher) fetch(batch, large []index.Item) {
	j, peer := p.j, p.j.cfg.Source
	files, bytes := len(batch)+len(large), sizeOf(batch)+sizeOf(large)
	batch, large = p.needed(batch), p.needed(large)
	// what is not fetched here leaves the progress's totals
	p.prog.shrink(uint64(files-len(batch)-len(large)), uint64(bytes-sizeOf(batch)-sizeOf(large)))
	done := 0
	switch {
	case len(batch) > 1:
		n, err := j.fetchBatch(p.ctx, peer, batch, p.prog)
		done += n
		if err != nil {
			j.log.Debug("prefetching offered content failed; the announcement's fetch gets it", "err", err)
			for _, it := range batch[n:] {
				p.prog.forget(it.Size)
			}
		}
	case len(batch) == 1:
		large = append(large, batch[0])
	}
	for _, it := range large {
		if err := j.fetchFrom(p.ctx, peer, it, fetchRequest{}); err != nil {
			j.log.Debug("prefetching offered content failed; the announcement's fetch gets it", "path", it.Path, "err", err)
			p.prog.forget(it.Size)
			continue
		}
		p.prog.add(it.Size)
		done++
	}
	if done > 0 {
		p.done.Add(int64(done))
		j.setStatus(func(s *JobStatus) { s.Prefetched += uint64(done) })
	}
}

// sizeOf is the size of items' content in all.
func sizeOf(items []index.Item) int64 {
	var n int64
	for _, it := range items {
		n += it.Size
	}
	return n
}

// needed drops from items the content the store holds by now (see
// lacking) and the paths where the tree has anything. A directory found
// missing is not looked at again for the files below it: the first
// sync's tree is empty, and a batch's files share a few directories.
func (p *prefetcher) needed(items []index.Item) []index.Item {
	items = p.j.lacking(items)
	out := items[:0]
	absent := map[string]bool{} // directories looked at in this call: whether missing
	for _, it := range items {
		if underAbsent(it.Path, absent) {
			out = append(out, it)
			continue
		}
		if _, err := os.Lstat(filepath.Join(p.j.cfg.Path, filepath.FromSlash(it.Path))); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if d := index.Parent(it.Path); d != "" {
			if _, seen := absent[d]; !seen {
				_, err := os.Lstat(filepath.Join(p.j.cfg.Path, filepath.FromSlash(d)))
				absent[d] = errors.Is(err, fs.ErrNotExist)
			}
		}
		out = append(out, it)
	}
	return out
}

// underAbsent reports whether absent says a parent directory of p is
// missing.
func underAbsent(p string, absent map[string]bool) bool {
	for d := index.Parent(p); d != ""; d = index.Parent(d) {
		if absent[d] {
			return true
		}
	}
	return false
}
