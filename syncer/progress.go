package syncer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"pbxsync/internal/wire"
)

// progressAfter is how long a generation runs before its progress shows:
// status and the source hear of generations that take longer than this.
const progressAfter = time.Second

// progressEvery is how often a target tells its source how far it got.
const progressEvery = time.Second

// PhaseScanning is a source reading its tree for a new generation: in its
// own status only, never on the wire (a target reports fetching,
// applying and waiting). Files and bytes are what it read so far; how
// many it will read is not known before the walk ends.
const PhaseScanning = "scanning"

// Progress is how far this node (or, in a source's target row, that
// target) got with a generation that takes more than a second: files and
// bytes of the current phase done and in all, and an estimate of the time
// the phase still takes.
type Progress struct {
	Generation uint64 `json:"generation"` // the source's version being applied
	Phase      string `json:"phase"`      // fetching, recording (changes recorded in the store: files), applying, waiting (for room on the file system), or scanning (a source, its own tree)
	Files      uint64 `json:"files"`
	FilesTotal uint64 `json:"files_total"`
	Bytes      uint64 `json:"bytes"`
	BytesTotal uint64 `json:"bytes_total"`
	// ETASeconds is the estimated time left in the phase, -1 while there
	// is no estimate yet.
	ETASeconds float64 `json:"eta_s"`
	// Offered says the phase fetches content the source offers while it
	// still scans its first generation (Generation 0): the totals are
	// what it offered so far, and grow until it has offered all.
	Offered bool `json:"offered,omitempty"`
	// Since is when the phase started (zero in a source's target row);
	// At is when this was measured, or when the source received it.
	Since time.Time `json:"since,omitzero"`
	At    time.Time `json:"at"`
}

// String is the progress as `pbxsync status` prints it.
func (p *Progress) String() string {
	switch p.Phase {
	case wire.PhaseWaiting:
		return p.waitingText()
	case PhaseScanning:
		return fmt.Sprintf("scanning for a new generation: %d files read and stored, %s so far", p.Files, bytesText(p.Bytes))
	}
	eta := "ETA unknown"
	switch {
	case p.ETASeconds >= 0:
		eta = "ETA " + p.eta()
	case p.Offered:
		eta = "ETA unknown: the source still scans and offers more"
	}
	if p.Phase == wire.PhaseRecording {
		what := "recording it in the store" // a target's, after "generation N from S: "
		if p.Generation == 0 {
			what = "recording the new generation in the store" // a source's own
		}
		return fmt.Sprintf("%s: %d/%d changes recorded, %s", what, p.Files, p.FilesTotal, eta)
	}
	return fmt.Sprintf("%s %d/%d files, %s/%s, %s", p.Phase, p.Files, p.FilesTotal, bytesText(p.Bytes), bytesText(p.BytesTotal), eta)
}

// waitingText is a wait for room (spacewait.go) as `pbxsync status`
// prints it.
func (p *Progress) waitingText() string {
	s := "waiting for room on the file system"
	if p.BytesTotal > 0 || p.FilesTotal > 0 {
		s += fmt.Sprintf(": %s of %s and %d of %d inodes free", bytesText(p.Bytes), bytesText(p.BytesTotal), p.Files, p.FilesTotal)
	} else {
		s += " (a write ran out of space)"
	}
	if p.ETASeconds >= 0 {
		s += ", trying again in " + p.eta() + " at the latest"
	}
	return s
}

// eta is the ETA as a duration to the second ("4m47s").
func (p *Progress) eta() string {
	return time.Duration(p.ETASeconds * float64(time.Second)).Round(time.Second).String()
}

func (p *Progress) wire() *wire.Progress {
	return &wire.Progress{Phase: p.Phase, Files: p.Files, FilesTotal: p.FilesTotal, Bytes: p.Bytes, BytesTotal: p.BytesTotal, ETA: p.ETASeconds}
}

func progressFromWire(version uint64, w *wire.Progress, at time.Time) *Progress {
	return &Progress{Generation: version, Phase: w.Phase, Files: w.Files, FilesTotal: w.FilesTotal, Bytes: w.Bytes, BytesTotal: w.BytesTotal, ETASeconds: w.ETA, At: at}
}

// bytesText is n in binary units (1.5 MiB).
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// estimate is the time left when done of total units took elapsed: the
// rate so far applied to the rest, by bytes while bytes are left, else by
// files (an apply writes the bytes of its files first, then puts the
// files in place one by one). It is -1 when nothing is done yet (no rate
// to go by).
func estimate(files, filesTotal, bytes, bytesTotal uint64, elapsed time.Duration) float64 {
	done, total := bytes, bytesTotal
	if bytes >= bytesTotal {
		done, total = files, filesTotal
	}
	switch {
	case done >= total:
		return 0
	case done == 0 || elapsed <= 0:
		return -1
	}
	return elapsed.Seconds() * float64(total-done) / float64(done)
}

// progressTracker counts one generation's work on a target as it happens
// (from the fetch and stage workers at once) and, once the generation has
// run for progressAfter, publishes it to the job's status and to the
// source about once a second.
type progressTracker struct {
	j       *job
	peer    string
	version uint64
	started time.Time

	files, bytes atomic.Uint64

	// offered: the tracker counts content fetched as the source offers
	// it, before its first announcement (prefetch.go); its progress shows
	// in the job's status only (there is no generation to report to the
	// source yet)
	offered bool

	mu         sync.Mutex
	growing    bool // the totals still grow (offered content): no ETA
	phase      string
	phaseStart time.Time
	rateFrom   time.Time // what the ETA's rate goes from when not phaseStart: a record's first write
	filesTotal uint64
	bytesTotal uint64

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// startProgress begins tracking the generation the source announced as
// version; stop ends it and clears what it published.
func (j *job) startProgress(ctx context.Context, peer string, version uint64) *progressTracker {
	t := j.newTracker(peer, version)
	go t.run(ctx)
	return t
}

// newTracker is a tracker of the job's progress on version from peer,
// not started.
func (j *job) newTracker(peer string, version uint64) *progressTracker {
	return &progressTracker{j: j, peer: peer, version: version, started: time.Now(), stopCh: make(chan struct{}), done: make(chan struct{})}
}

// startOfferedProgress begins tracking the content a target fetches as
// its source offers it, before the source announces its first generation
// (a first sync's longest part): one fetching phase whose totals grow with
// every offer taken (extend) until the source has offered all (offering).
func (j *job) startOfferedProgress(ctx context.Context, peer string) *progressTracker {
	t := j.newTracker(peer, 0)
	t.offered = true
	t.begin(wire.PhaseFetching, 0, 0)
	t.growing = true
	go t.run(ctx)
	return t
}

// offering says whether the totals still grow: the source offers more
// (a stream of offers begins), or it offered all (the stream ended).
func (t *progressTracker) offering(more bool) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.growing = more
	t.mu.Unlock()
}

// begin starts a phase of files files and bytes bytes in all.
func (t *progressTracker) begin(phase string, files, bytes uint64) {
	if t == nil {
		return
	}
	t.endPhase()
	t.start(phase, files, bytes)
}

// start makes phase the current one, from now and from nothing done.
func (t *progressTracker) start(phase string, files, bytes uint64) {
	t.mu.Lock()
	t.phase, t.phaseStart, t.filesTotal, t.bytesTotal = phase, time.Now(), files, bytes
	t.rateFrom = time.Time{}
	t.files.Store(0)
	t.bytes.Store(0)
	t.mu.Unlock()
}

// endPhase logs a phase that took more than progressAfter: where the time
// of a long generation went.
func (t *progressTracker) endPhase() {
	t.mu.Lock()
	phase, took := t.phase, time.Since(t.phaseStart)
	t.mu.Unlock()
	if phase != "" && took > progressAfter && t.j != nil {
		t.j.log.Info("phase done", "phase", phase, "source_version", t.version, "files", t.files.Load(), "bytes", t.bytes.Load(), "took", took.Round(time.Millisecond))
	}
}

// retotal starts the current phase over with these totals when it is
// phase (its rate and ETA go from the new start, and the log has one
// phase), and begins phase otherwise (an apply after its record).
func (t *progressTracker) retotal(phase string, files, bytes uint64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	same := t.phase == phase
	t.mu.Unlock()
	if !same {
		t.endPhase()
	}
	t.start(phase, files, bytes)
}

// recorded sets the current phase, a record's, to written of total
// changes recorded in the store (store.Generation.OnProgress). The ETA's
// rate goes from the store's first report, once it checked every change
// (a third of a 100k record, which counts no change: from the phase's
// start, the first ETA was 12 s for 1 s left).
func (t *progressTracker) recorded(written, total int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.filesTotal, t.bytesTotal = uint64(max(total, 0)), 0
	if written == 0 {
		t.rateFrom = time.Now()
	}
	t.mu.Unlock()
	t.files.Store(uint64(max(written, 0)))
}

// extend adds files and bytes to the current phase when it is phase, and
// begins phase otherwise: content taken from an announcement and content
// fetched over streams are one fetching phase.
func (t *progressTracker) extend(phase string, files, bytes uint64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	same := t.phase == phase
	if same {
		t.filesTotal += files
		t.bytesTotal += bytes
	}
	t.mu.Unlock()
	if !same {
		t.begin(phase, files, bytes)
	}
}

// forget takes one file of n bytes out of the current phase's total (an
// inline entry that did not apply: the fetch counts it again).
func (t *progressTracker) forget(n int64) {
	t.shrink(1, uint64(max(n, 0)))
}

// shrink takes files files and bytes bytes out of the current phase's
// total (offered content a prefetch does not fetch after all).
func (t *progressTracker) shrink(files, bytes uint64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.filesTotal -= min(t.filesTotal, files)
	t.bytesTotal -= min(t.bytesTotal, bytes)
	t.mu.Unlock()
}

// add counts one more file of n bytes done in the current phase.
func (t *progressTracker) add(n int64) {
	if t == nil {
		return
	}
	t.files.Add(1)
	t.addBytes(n)
}

// addBytes counts n bytes done in the current phase (an apply's staged
// content, whose file counts once it is in place: addFile).
func (t *progressTracker) addBytes(n int64) {
	if t != nil && n > 0 {
		t.bytes.Add(uint64(n))
	}
}

// addFile counts one more file done in the current phase.
func (t *progressTracker) addFile() {
	if t != nil {
		t.files.Add(1)
	}
}

// snapshot returns the progress now, or nil before the first phase.
func (t *progressTracker) snapshot(now time.Time) *Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase == "" {
		return nil
	}
	p := &Progress{Generation: t.version, Phase: t.phase, Files: min(t.files.Load(), t.filesTotal), FilesTotal: t.filesTotal,
		Bytes: min(t.bytes.Load(), t.bytesTotal), BytesTotal: t.bytesTotal, Since: t.phaseStart, At: now, Offered: t.offered}
	p.ETASeconds = -1
	if !t.growing {
		from := t.phaseStart
		if !t.rateFrom.IsZero() {
			from = t.rateFrom
		}
		p.ETASeconds = estimate(p.Files, p.FilesTotal, p.Bytes, p.BytesTotal, now.Sub(from))
	}
	return p
}

func (t *progressTracker) run(ctx context.Context) {
	defer close(t.done)
	first := time.NewTimer(progressAfter)
	defer first.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.stopCh:
		return
	case <-first.C:
	}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		t.publish()
		select {
		case <-ctx.Done():
			return
		case <-t.stopCh:
			return
		case <-tick.C:
		}
	}
}

// publish puts the progress into the job's status and tells the source.
func (t *progressTracker) publish() {
	p := t.snapshot(time.Now())
	if p == nil {
		return
	}
	t.j.setStatus(func(s *JobStatus) { s.Progress = p })
	if !t.offered {
		t.j.sendProgress(t.peer, p)
	}
}

// sendProgress tells peer (the source) how far this target got with the
// generation p is of: "applying" with progress, so that it does not
// repeat its announcement meanwhile.
func (j *job) sendProgress(peer string, p *Progress) {
	r := &wire.Result{Job: j.cfg.Name, Version: p.Generation, State: "applying", Reason: p.String(), Progress: p.wire()}
	if err := j.sendResult(peer, r); err != nil {
		j.log.Debug("cannot send progress", "peer", peer, "err", err)
	}
}

// stop ends the tracking and removes the progress from the job's status.
func (t *progressTracker) stop() {
	if t == nil {
		return
	}
	t.stopOnce.Do(func() {
		close(t.stopCh)
		t.endPhase()
		<-t.done
		// once: a later call (the take's deferred one) must not clear
		// what a wait for room published since (spacewait.go)
		t.j.setStatus(func(s *JobStatus) { s.Progress = nil })
	})
}

// progressFresh is how long a target's progress report counts as proof
// that it is still working on a generation (it reports every
// progressEvery).
const progressFresh = 5 * progressEvery

// busyWith reports whether the target reported progress on version v
// recently: the source does not repeat v's announcement to it meanwhile.
func (t *targetState) busyWith(v uint64) bool {
	return t.view("").Busy(v, time.Now().UnixNano(), int64(progressFresh))
}
