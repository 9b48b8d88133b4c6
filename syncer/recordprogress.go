package syncer

import (
	"time"

	"pbxsync/internal/wire"
)

// recordProgress puts a source's record of a new generation into the
// job's status (phase recording: changes recorded in the store of those it
// makes) once the record has run for progressAfter, or from its first
// report when the scan before it was in the status (a long first scan's
// progress goes straight on to its record, one or two seconds at 100,000
// files that showed nothing). The store reports after its check of every
// change and after every chunk of changes it writes
// (store.Generation.OnProgress), on the job's goroutine.
type recordProgress struct {
	j         *job
	start     time.Time
	after     time.Time // when the first report may be published
	rateFrom  time.Time // the store's first report (its writes begin): the ETA's rate goes from it
	published bool
}

// startRecordProgress begins the progress of a source's record.
func (j *job) startRecordProgress() *recordProgress {
	p := &recordProgress{j: j, start: time.Now()}
	p.after = p.start.Add(progressAfter)
	if !j.scanShown.IsZero() && p.start.Sub(j.scanShown) < progressAfter {
		p.after = p.start
	}
	return p
}

// update is store.Generation.OnProgress: the record got as far as
// written of total changes.
func (p *recordProgress) update(written, total int) {
	now := time.Now()
	if written == 0 || p.rateFrom.IsZero() {
		p.rateFrom = now
	}
	if now.Before(p.after) {
		return
	}
	pr := p.snapshot(written, total, now)
	p.published = true
	p.j.setStatus(func(s *JobStatus) { s.Progress = pr })
}

// snapshot is the progress of a record that wrote written of total
// changes by now.
func (p *recordProgress) snapshot(written, total int, now time.Time) *Progress {
	done, all := uint64(max(written, 0)), uint64(max(total, 0))
	return &Progress{Phase: wire.PhaseRecording, Files: min(done, all), FilesTotal: all, ETASeconds: estimate(min(done, all), all, 0, 0, now.Sub(p.rateFrom)),
		Since: p.start, At: now}
}

// stop takes what the record published out of the job's status.
func (p *recordProgress) stop() {
	if p.published {
		p.j.setStatus(func(s *JobStatus) { s.Progress = nil })
	}
}
