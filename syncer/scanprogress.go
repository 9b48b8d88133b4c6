package syncer

import (
	"sync/atomic"
	"time"
)

// scanProgress counts what a source's scan reads and stores, and puts it
// into the job's status (phase PhaseScanning) once the scan has run for
// progressAfter, then about every progressEvery, from the scan's own
// readers: no goroutine or timer of its own, since every source scan has
// one, a one-file edit's too. A scan that reads nothing after that second
// (a restart over an unchanged tree) shows nothing.
type scanProgress struct {
	j            *job
	start        time.Time
	files, bytes atomic.Uint64
	next         atomic.Int64 // Unix nanoseconds of the next publish
	published    atomic.Bool
}

// scanCheckEvery is how many files a scan reads between two looks at the
// clock.
const scanCheckEvery = 64

func (j *job) startScanProgress() *scanProgress {
	p := &scanProgress{j: j, start: time.Now()}
	p.next.Store(p.start.Add(progressAfter).UnixNano())
	return p
}

// add counts one more file of n bytes read and stored; it may be called
// by several readers at once.
func (p *scanProgress) add(n int64) {
	files := p.files.Add(1)
	p.bytes.Add(uint64(max(n, 0)))
	if files%scanCheckEvery != 0 {
		return
	}
	now := time.Now()
	next := p.next.Load()
	if now.UnixNano() < next || !p.next.CompareAndSwap(next, now.Add(progressEvery).UnixNano()) {
		return // not yet, or another reader publishes
	}
	pr := p.snapshot(now)
	p.published.Store(true)
	p.j.setStatus(func(s *JobStatus) { s.Progress = pr })
}

// snapshot is the progress at now: what was read so far, in all as done
// (no total is known before the walk ends), no ETA.
func (p *scanProgress) snapshot(now time.Time) *Progress {
	files, bytes := p.files.Load(), p.bytes.Load()
	return &Progress{Phase: PhaseScanning, Files: files, FilesTotal: files, Bytes: bytes, BytesTotal: bytes, ETASeconds: -1, Since: p.start, At: now}
}

// stop takes what the scan published out of the job's status, and notes
// when for the record that may follow (startRecordProgress).
func (p *scanProgress) stop() {
	if p.published.Load() {
		p.j.scanShown = time.Now()
		p.j.setStatus(func(s *JobStatus) { s.Progress = nil })
	}
}
