package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// State is the outcome of a generation.
type State string

// The states of a generation.
const (
	StateApplying   State = "applying"    // recorded, being applied and checked
	StateGood       State = "good"        // applied and passed its checks: known-good
	StateBad        State = "bad"         // failed to apply or failed a check; Reason says why
	StateRolledBack State = "rolled-back" // was good, then replaced by a rollback to an older one
)

// Valid reports whether st is one of the four states.
func (st State) Valid() bool {
	switch st {
	case StateApplying, StateGood, StateBad, StateRolledBack:
		return true
	}
	return false
}

// Limits on metadata, enforced when writing and when reading.
const (
	MaxReasonLen = 16 << 10 // longer reasons are truncated by AddGeneration and SetState
	maxOriginLen = 1024
)

// Generation is one numbered index of a job with its history metadata.
type Generation struct {
	Job           string      `json:"job"`
	Number        uint64      `json:"generation"`
	Time          time.Time   `json:"time"`
	Origin        string      `json:"origin"`         // name of the node the change came from
	SourceVersion uint64      `json:"source_version"` // the origin's index version; 0 if local
	Changed       []string    `json:"changed"`        // paths changed against the previous generation
	State         State       `json:"state"`
	Reason        string      `json:"reason"`
	Links         []Link      `json:"links,omitempty"` // local symlinks its apply replaced
	Index         index.Index `json:"-"`               // the job's items in this generation
	// OnProgress, when set, hears how far AddGeneration or
	// AddGenerationChanges got with it, in changes: total of total once
	// recorded. A generation of more than recordChunkChanges changes is
	// written a chunk per transaction (its changes, then a long changed
	// list, then the reference counts of its content): it hears 0 of
	// total once the record checked every change, then after each chunk,
	// the rows of the later passes counted in proportion (written grows
	// with every row, whichever pass wrote it). It is called on the
	// recording goroutine, between the store's transactions, and is not
	// stored.
	OnProgress func(written, total int) `json:"-"`
}

// Link is a local symlink on a target that the apply of a generation
// replaced by the source's directory or file (as rsync does without
// --keep-dirlinks). Links are not items of any index; the generation keeps
// them so that rolling it back puts each link back.
type Link struct {
	Path   string `json:"path"`   // relative to the job root, as index.ValidatePath
	Target string `json:"target"` // what the link pointed to, verbatim
}

// Limits on the links of one generation.
const (
	maxLinks      = 4096
	maxLinkTarget = 4095 // PATH_MAX - 1
)

// GenerationInfo is a Generation without its index: what `pbxsync history
// --json` prints, one object per generation.
type GenerationInfo struct {
	Job           string    `json:"-"`
	Number        uint64    `json:"generation"`
	Time          time.Time `json:"time"`
	Origin        string    `json:"origin"`
	SourceVersion uint64    `json:"source_version"`
	Changed       []string  `json:"changed"` // never nil: prints as []
	State         State     `json:"state"`
	Reason        string    `json:"reason"`
	Links         []Link    `json:"links,omitempty"`
}

// Info returns g's metadata.
func (g *Generation) Info() GenerationInfo {
	ch := g.Changed
	if ch == nil {
		ch = []string{}
	}
	return GenerationInfo{Job: g.Job, Number: g.Number, Time: g.Time, Origin: g.Origin,
		SourceVersion: g.SourceVersion, Changed: ch, State: g.State, Reason: g.Reason, Links: g.Links}
}

// changeList is what a record writes: paths (sorted once the record is
// prepared) and, for each, its new item, or none: the path is removed.
// The items are looked up where the caller holds them (a generation's
// index, a list of changes) as they are written, not copied into the
// list: a first generation's 100,000 changes held a copy of every item,
// and the blobs they need a list of their own (~14 MB of heap at the
// record of an initial sync, on both sides).
type changeList struct {
	paths []string
	item  func(p string) (index.Item, bool)
}

func (c changeList) len() int { return len(c.paths) }

// part is the changes of c.paths[i:j].
func (c changeList) part(i, j int) changeList { return changeList{paths: c.paths[i:j], item: c.item} }

// missingChunk is how many blobs a record looks up at once to check that
// the store holds them (prepareRecord).
const missingChunk = 8192

// Change is what one generation did to one path: the item before (in the
// previous generation) and after; nil where the path was absent.
type Change struct {
	Path     string
	Old, New *index.Item
}

// dbMeta is the value of jobs/<job>/gens/<n>.
type dbMeta struct {
	Generation    uint64    `json:"generation"`
	Time          time.Time `json:"time"`
	Origin        string    `json:"origin"`
	SourceVersion uint64    `json:"source_version"`
	Changed       []string  `json:"changed"`
	State         State     `json:"state"`
	Reason        string    `json:"reason"`
	Links         []Link    `json:"links,omitempty"`
	Base          uint64    `json:"base"`  // the generation this one's change record applies to; 0: none
	Items         int       `json:"items"` // for humans
	// ChangedOut is the number of changed paths kept out of line (see
	// putChanged); Changed is then empty.
	ChangedOut int `json:"changed_out,omitempty"`
}

func truncateReason(r string) string {
	if len(r) <= MaxReasonLen {
		return r
	}
	return strings.ToValidUTF8(r[:MaxReasonLen-len(" …(truncated)")], "") + " …(truncated)"
}

// validateInfo checks the metadata of a generation of job; the same rules
// apply on write and on read, so the store never writes what it refuses to
// read back.
func validateInfo(job string, g *GenerationInfo) error {
	if g.Job != job {
		return fmt.Errorf("belongs to job %q", g.Job)
	}
	if g.Number == 0 {
		return errors.New("generation number 0")
	}
	if !g.State.Valid() {
		return fmt.Errorf("unknown state %q", g.State)
	}
	if len(g.Origin) > maxOriginLen || !utf8.ValidString(g.Origin) {
		return errors.New("bad origin")
	}
	if len(g.Reason) > MaxReasonLen || !utf8.ValidString(g.Reason) {
		return errors.New("bad reason")
	}
	for _, p := range g.Changed {
		if err := index.ValidatePath(p); err != nil {
			return fmt.Errorf("changed: %w", err)
		}
	}
	if len(g.Links) > maxLinks {
		return fmt.Errorf("%d replaced links, at most %d", len(g.Links), maxLinks)
	}
	for _, l := range g.Links {
		if err := index.ValidatePath(l.Path); err != nil {
			return fmt.Errorf("links: %w", err)
		}
		if l.Target == "" || len(l.Target) > maxLinkTarget || strings.ContainsRune(l.Target, 0) {
			return fmt.Errorf("links: %s: bad target", l.Path)
		}
	}
	return nil
}

// encodeMeta encodes the meta record of g; changedOut > 0 says that its
// changed paths are kept out of line (putChanged), and the record holds
// only their number.
func encodeMeta(g *GenerationInfo, base uint64, items, changedOut int) ([]byte, error) {
	if err := validateInfo(g.Job, g); err != nil {
		return nil, err
	}
	ch := g.Changed
	if ch == nil || changedOut > 0 {
		ch = []string{}
	}
	b, err := json.Marshal(dbMeta{Generation: g.Number, Time: g.Time, Origin: g.Origin, SourceVersion: g.SourceVersion,
		Changed: ch, State: g.State, Reason: g.Reason, Links: g.Links, Base: base, Items: items, ChangedOut: changedOut})
	if err != nil {
		return nil, err
	}
	return seal(u64key(g.Number), b), nil
}

// decodeMeta parses and validates the meta of generation n of job. Every
// error wraps ErrCorrupt.
func decodeMeta(job string, n uint64, v []byte) (*dbMeta, GenerationInfo, error) {
	b, err := unseal(fmt.Sprintf("meta of generation %d", n), u64key(n), v)
	if err != nil {
		return nil, GenerationInfo{}, err
	}
	var m dbMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, GenerationInfo{}, fmt.Errorf("%w: meta of generation %d: %v", ErrCorrupt, n, err)
	}
	g := GenerationInfo{Job: job, Number: m.Generation, Time: m.Time, Origin: m.Origin,
		SourceVersion: m.SourceVersion, Changed: m.Changed, State: m.State, Reason: m.Reason, Links: m.Links}
	if g.Changed == nil {
		g.Changed = []string{}
	}
	if err := validateInfo(job, &g); err != nil {
		return nil, g, fmt.Errorf("%w: meta of generation %d: %v", ErrCorrupt, n, err)
	}
	if g.Number != n {
		return nil, g, fmt.Errorf("%w: meta of generation %d holds generation %d", ErrCorrupt, n, g.Number)
	}
	if m.ChangedOut < 0 || (m.ChangedOut > 0 && len(m.Changed) > 0) {
		return nil, g, fmt.Errorf("%w: meta of generation %d: bad changed_out %d", ErrCorrupt, n, m.ChangedOut)
	}
	return &m, g, nil
}

// readMeta is decodeMeta of generation n of jb, its changed paths read
// from where they are kept (out of line for a long list).
func readMeta(jb *bolt.Bucket, job string, n uint64, v []byte) (*dbMeta, GenerationInfo, error) {
	m, g, err := decodeMeta(job, n, v)
	if err != nil || m.ChangedOut == 0 {
		return m, g, err
	}
	if g.Changed, err = readChanged(jb, n, m.ChangedOut); err != nil {
		return nil, g, err
	}
	return m, g, nil
}

// putMeta writes the meta record of generation g.Number of jb, its
// changed paths out of line when they are many (encodeMeta validates g;
// on an error the caller's transaction is rolled back whole).
//
// listed says the changed paths are written out of line already
// (putChangedPart).
func putMeta(jb *bolt.Bucket, g *GenerationInfo, base uint64, items int, listed bool) error {
	out := len(g.Changed)
	if !listed {
		var err error
		if out, err = putChanged(jb, g.Number, g.Changed); err != nil {
			return err
		}
	}
	meta, err := encodeMeta(g, base, items, out)
	if err != nil {
		return err
	}
	return jb.Bucket(bktGens).Put(u64key(g.Number), meta)
}

// newestGen returns the number of the newest generation of jb (0: none).
func newestGen(jb *bolt.Bucket) uint64 {
	k, _ := jb.Bucket(bktGens).Cursor().Last()
	return u64val(k)
}

// nextNumber returns the number the next generation of jb gets.
func nextNumber(jb *bolt.Bucket) uint64 {
	if jb == nil {
		return 1
	}
	return max(u64val(jb.Get(keyNext)), newestGen(jb)+1, 1)
}

// NextGeneration returns the number AddGeneration would give the next
// generation of job now. It reserves nothing: it is a hint for display.
func (s *Store) NextGeneration(job string) (uint64, error) {
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		n = nextNumber(jb)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: job %q: next generation: %w", job, err)
	}
	return n, nil
}

// AddGeneration records g as the newest generation of g.Job, assigns it
// the next number (monotonic, never reused, even after GC), stores that in
// g.Number and returns it. Any number already in g.Number is ignored. A
// zero g.Time becomes now, an empty g.State becomes StateApplying, and a
// Reason longer than MaxReasonLen is truncated. Every live file item of
// g.Index that changed against the newest generation must have its blob in
// the store: otherwise nothing is recorded and the error lists the missing
// blobs. Paths in g.Index and g.Changed are validated with
// index.ValidatePath.
//
// The store keeps the job's newest index once and a generation as what it
// changed: AddGeneration compares g.Index with the newest index (a read of
// every item) and writes only the differences, in one transaction, or,
// for more than recordChunkChanges of them, in several that no reader sees
// until the last commits (a crash in between leaves nothing recorded).
// AddGenerationChanges records a generation from its changes alone.
//
// Blobs must stay in the store between Put and AddGeneration: Pin them, or
// record the generation within the GC grace period.
func (s *Store) AddGeneration(ctx context.Context, g *Generation) (uint64, error) {
	return s.addGeneration(ctx, g, 0, false, func(items *bolt.Bucket) (changeList, error) {
		return diffItems(ctx, items, g.Index)
	})
}

// AddGenerationChanges records a generation like AddGeneration, from what
// it changes against generation base, which must be the job's newest (0
// when it has none; otherwise the error wraps ErrConflict): set holds the
// new or changed items, del the removed paths. g.Index is ignored (the
// caller keeps it: it must be base's index with the changes applied);
// g.Changed is recorded as given. The cost is O(len(set)+len(del))
// whatever the size of the job.
func (s *Store) AddGenerationChanges(ctx context.Context, g *Generation, base uint64, set []index.Item, del []string) (uint64, error) {
	return s.addGeneration(ctx, g, base, true, func(*bolt.Bucket) (changeList, error) {
		paths := make([]string, 0, len(set)+len(del))
		at := make(map[string]int, len(set)) // path → its item in set
		for i := range set {
			paths = append(paths, set[i].Path)
			at[set[i].Path] = i
		}
		paths = append(paths, del...)
		return changeList{paths: paths, item: func(p string) (index.Item, bool) {
			i, ok := at[p]
			if !ok {
				return index.Item{}, false
			}
			return set[i], true
		}}, nil
	})
}

// ErrConflict: a write assumed a newest generation that is not the newest.
var ErrConflict = errors.New("conflict")

// addGeneration records a generation whose changes (New only; nil New
// removes the path) diff computes against the job's items.
func (s *Store) addGeneration(ctx context.Context, g *Generation, base uint64, checkBase bool, diff func(items *bolt.Bucket) (changeList, error)) (uint64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	job := g.Job
	fail := func(err error) (uint64, error) {
		return 0, fmt.Errorf("store: job %q: add generation: %w", job, err)
	}
	if _, err := jobDirName(job); err != nil {
		return fail(err)
	}
	info := g.Info()
	info.Reason = truncateReason(info.Reason)
	if info.State == "" {
		info.State = StateApplying
	}
	if info.Time.IsZero() {
		info.Time = time.Now()
	}
	info.Time = info.Time.UTC().Round(0)
	unlock := s.lockJob(job)
	defer unlock()
	if err := s.undoFailed(job); err != nil {
		return fail(err)
	}
	if err := s.flushBeforeRecord(); err != nil {
		return fail(err)
	}
	var nitems, nchanged int
	var big *chunkedRecord
	counted := false
	var total int // changes to write
	err := s.update(func(tx *bolt.Tx) error {
		jb, prev, changes, err := s.prepareRecord(ctx, tx, &info, base, checkBase, true, diff)
		if err != nil {
			return err
		}
		total = changes.len()
		if changes.len() > s.recordChunk() {
			// counted under s.mu, as GC's sweep checks it (recordChunked
			// and the failure below count it down)
			s.recording.Add(1)
			counted = true
			big, err = startRecording(tx, jb, &info, prev, changes)
			if big != nil {
				listed := 0
				if len(info.Changed) > changedInlineMax {
					listed = len(info.Changed)
				}
				big.progress = newRecordSteps(g.OnProgress, changes.len(), listed)
			}
			return err
		}
		nitems, nchanged, err = writeRecord(ctx, tx, jb, &info, prev, changes)
		return err
	})
	switch {
	case big != nil && err == nil:
		if g.OnProgress != nil {
			g.OnProgress(0, total) // checked: the chunks begin
		}
		nitems, nchanged, err = s.recordChunked(ctx, big)
	case counted:
		s.recording.Add(-1)
	}
	if err == nil && g.OnProgress != nil {
		g.OnProgress(total, total)
	}
	n := info.Number
	if err != nil {
		return fail(err)
	}
	g.Number, g.Time, g.State, g.Reason, g.Changed = n, info.Time, info.State, info.Reason, info.Changed
	s.log.Info("generation recorded", "job", job, "generation", n, "state", string(info.State), "items", nitems, "changed", nchanged)
	return n, nil
}

// flushFirstBlobs is the number of pending blobs from which a record
// makes them durable in a transaction of their own before it (see
// flushBeforeRecord).
const flushFirstBlobs = 256

// flushBeforeRecord makes the pending blobs durable in a transaction of
// their own when there are many of them: their hashes are random, so a
// few thousand touch nearly every leaf of the unref and pack-location
// buckets, and bbolt holds every node a transaction touches until its
// commit (~15-21 MiB of nodes at 100,000 blobs, the source's peak of an
// initial sync with the changes the record had built in the same
// transaction). The record's own transaction then flushes the few put
// meanwhile. An edit's record, with a blob or two pending, pays no
// extra commit.
func (s *Store) flushBeforeRecord() error {
	s.pendMu.Lock()
	n := len(s.pending)
	s.pendMu.Unlock()
	if n < flushFirstBlobs {
		return nil
	}
	return s.update(nil)
}

// recordTx records a generation in tx: info (Number 0: the next one) with
// the changes diff returns against the job's items, in this one
// transaction whatever their number. checkBlobs refuses a change whose
// blob the store lacks.
func (s *Store) recordTx(ctx context.Context, tx *bolt.Tx, info *GenerationInfo, base uint64, checkBase, checkBlobs bool, diff func(items *bolt.Bucket) (changeList, error)) (nitems, nchanged int, err error) {
	jb, prev, changes, err := s.prepareRecord(ctx, tx, info, base, checkBase, checkBlobs, diff)
	if err != nil {
		return 0, 0, err
	}
	return writeRecord(ctx, tx, jb, info, prev, changes)
}

// prepareRecord returns the bucket of info's job (created if needed), its
// newest generation and the changes diff returns against its items,
// sorted by path and checked: each path once, valid items, and (with
// checkBlobs) every blob they need in the store.
func (s *Store) prepareRecord(ctx context.Context, tx *bolt.Tx, info *GenerationInfo, base uint64, checkBase, checkBlobs bool, diff func(items *bolt.Bucket) (changeList, error)) (jb *bolt.Bucket, prev uint64, changes changeList, err error) {
	job := info.Job
	jb, err = jobBucket(tx, job, true)
	if err != nil {
		return nil, 0, changeList{}, err
	}
	prev = newestGen(jb)
	if checkBase && prev != base {
		return nil, 0, changeList{}, fmt.Errorf("%w: the changes apply to generation %d, the newest is %d", ErrConflict, base, prev)
	}
	items := jb.Bucket(bktItems)
	changes, err = diff(items)
	if err != nil {
		return nil, 0, changeList{}, err
	}
	slices.Sort(changes.paths)
	// the blobs the items need are looked up a chunk at a time (their
	// hashes sorted within it), not listed all at once
	var need []blobUse
	var missing []string
	for i, p := range changes.paths {
		if i > 0 && changes.paths[i-1] == p {
			return nil, 0, changeList{}, fmt.Errorf("path %q changed twice", p)
		}
		it, ok := changes.item(p)
		if !ok {
			if err := index.ValidatePath(p); err != nil {
				return nil, 0, changeList{}, err
			}
			continue
		}
		if it.Path != p {
			return nil, 0, changeList{}, fmt.Errorf("item %q under path %q", it.Path, p)
		}
		if err := validateItem(&it); err != nil {
			return nil, 0, changeList{}, err
		}
		if checkBlobs && it.Kind == index.KindFile && !it.Deleted {
			if need == nil {
				need = make([]blobUse, 0, min(changes.len(), missingChunk))
			}
			need = append(need, blobUse{it.Hash, p})
			if len(need) == missingChunk {
				missing = append(missing, s.missingTx(tx, need)...)
				need = need[:0]
			}
		}
	}
	missing = append(missing, s.missingTx(tx, need)...)
	if len(missing) > 0 {
		slices.Sort(missing)
		total := len(missing)
		more := ""
		if total > 10 {
			more = fmt.Sprintf(" and %d more", total-10)
			missing = missing[:10]
		}
		return nil, 0, changeList{}, fmt.Errorf("%w: %d blobs missing from the store: %s%s", ErrNotFound, total, strings.Join(missing, ", "), more)
	}
	return jb, prev, changes, nil
}

// writeRecord writes the checked changes of a generation (see
// prepareRecord) and its metadata in tx: the generation is complete when
// tx commits.
func writeRecord(ctx context.Context, tx *bolt.Tx, jb *bolt.Bucket, info *GenerationInfo, prev uint64, changes changeList) (nitems, nchanged int, err error) {
	if info.Number == 0 {
		info.Number = nextNumber(jb)
	}
	var rec *bolt.Bucket
	if prev != 0 {
		if rec, err = jb.Bucket(bktChanges).CreateBucket(u64key(info.Number)); err != nil {
			return 0, 0, err
		}
		rec.FillPercent = fillPercent
	}
	count := int64(u64val(jb.Get(keyCount)))
	// the reference counts change in hash order after the loop: bbolt
	// inserts into a node's sorted slice and splits nodes only at the
	// commit, so the random hashes of a large generation put one by one
	// cost O(n²) copying (6 s of CPU for a 100k-file initial sync)
	deltas := newRefDeltas(changes.len())
	if nchanged, err = writeChanges(ctx, jb, rec, prev != 0, changes, deltas, &count); err != nil {
		return 0, 0, err
	}
	if err := refSorted(tx, deltas.sorted()); err != nil {
		return 0, 0, err
	}
	nitems, err = finishRecord(jb, info, prev, count, false)
	return nitems, nchanged, err
}

// writeChanges writes changes (sorted by path) to the job's items,
// keeping what each replaced in rec (when not nil). The reference count
// changes they need go to deltas: +1 for each new live file, -1 for each
// old one unless keepOld (rec keeps the old items for good). count
// follows the number of items.
func writeChanges(ctx context.Context, jb, rec *bolt.Bucket, keepOld bool, changes changeList, deltas *refDeltas, count *int64) (nchanged int, err error) {
	items := jb.Bucket(bktItems)
	items.FillPercent = fillPercent
	var buf []byte
	for _, p := range changes.paths {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		c := Change{Path: p}
		if it, ok := changes.item(p); ok {
			c.New = &it
		}
		k := []byte(c.Path)
		oldv := items.Get(k)
		if c.New != nil {
			buf = sealItem(c.New)
			if bytes.Equal(oldv, buf) {
				continue
			}
		} else if oldv == nil {
			continue
		}
		nchanged++
		switch {
		case c.New != nil && oldv == nil:
			*count++
		case c.New == nil && oldv != nil:
			*count--
		}
		if rec != nil {
			r := []byte{0}
			if oldv != nil {
				r = append([]byte{1}, oldv...)
			}
			if err := rec.Put(k, r); err != nil {
				return 0, err
			}
		}
		if !keepOld && oldv != nil {
			// no record keeps the old item: release its blob
			old, err := decodeItem(c.Path, oldv)
			if err != nil {
				return 0, err
			}
			if liveFile(&old) {
				deltas.add(old.Hash, -1)
			}
		}
		if c.New == nil {
			if err := items.Delete(k); err != nil {
				return 0, err
			}
			continue
		}
		if err := items.Put(k, buf); err != nil {
			return 0, err
		}
		if liveFile(c.New) {
			deltas.add(c.New.Hash, 1)
		}
	}
	return nchanged, nil
}

// finishRecord writes the item count and the metadata of generation
// info.Number (whose changes against prev are written): it is the newest
// generation once the transaction commits.
func finishRecord(jb *bolt.Bucket, info *GenerationInfo, prev uint64, count int64, listed bool) (nitems int, err error) {
	n := info.Number
	nitems = int(count)
	if err := jb.Put(keyCount, u64key(uint64(count))); err != nil {
		return 0, err
	}
	if err := putMeta(jb, info, prev, nitems, listed); err != nil {
		return 0, err
	}
	return nitems, jb.Put(keyNext, u64key(max(n+1, u64val(jb.Get(keyNext)))))
}

// blobUse is a blob an item of a generation needs, and that item's path.
type blobUse struct {
	h    index.Hash
	path string
}

// missingTx returns, sorted by path, "path (blob hash)" for each of need
// whose blob will not be in the store when tx commits. It looks the blobs
// up in hash order (a first generation's 100,000 lookups in path order
// faulted in a random page of the packed bucket each).
func (s *Store) missingTx(tx *bolt.Tx, need []blobUse) []string {
	slices.SortFunc(need, func(a, b blobUse) int { return compareHashes(a.h, b.h) })
	var missing []string
	pass := mappedPass{tx: tx}
	lacks := false
	for i, u := range need {
		if i == 0 || need[i-1].h != u.h {
			lacks = !pass.check(s, u.h)
		}
		if lacks {
			missing = append(missing, fmt.Sprintf("%s (blob %s)", u.path, u.h))
		}
	}
	slices.Sort(missing)
	return missing
}

// SetState sets the state of generation n of job, with the reason (why it
// is bad, what rolled it back; truncated to MaxReasonLen).
func (s *Store) SetState(job string, n uint64, st State, reason string) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("store: job %q generation %d: set state %q: %w", job, n, st, err)
	}
	if !st.Valid() {
		return fail(errors.New("unknown state"))
	}
	reason = truncateReason(reason)
	err := s.updateMeta(job, n, func(info *GenerationInfo) { info.State, info.Reason = st, reason })
	if err != nil {
		return fail(err)
	}
	s.log.Info("generation state", "job", job, "generation", n, "state", string(st), "reason", reason)
	return nil
}

// updateMeta changes the metadata of generation n of job by edit, in one
// transaction; ErrNotFound when there is no such generation.
func (s *Store) updateMeta(job string, n uint64, edit func(*GenerationInfo)) error {
	return s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil {
			return err
		}
		if jb == nil {
			return ErrNotFound
		}
		gens := jb.Bucket(bktGens)
		v := gens.Get(u64key(n))
		if v == nil {
			return ErrNotFound
		}
		// the changed paths are not read: an edit changes other fields,
		// and a list kept out of line stays where it is
		m, info, err := decodeMeta(job, n, v)
		if err != nil {
			return err
		}
		edit(&info)
		b, err := encodeMeta(&info, m.Base, m.Items, m.ChangedOut)
		if err != nil {
			return err
		}
		return gens.Put(u64key(n), b)
	})
}

// AddLinks records on generation n of job the local symlinks its apply
// is about to replace (durably, before the apply touches them), so that a
// rollback of n puts them back. A link already recorded at the same path
// keeps its first target: that is what the path held before n.
func (s *Store) AddLinks(job string, n uint64, links []Link) error {
	if len(links) == 0 {
		return nil
	}
	if err := s.writable(); err != nil {
		return err
	}
	err := s.updateMeta(job, n, func(info *GenerationInfo) {
		for _, l := range links {
			if !slices.ContainsFunc(info.Links, func(x Link) bool { return x.Path == l.Path }) {
				info.Links = append(info.Links, l)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("store: job %q generation %d: record replaced links: %w", job, n, err)
	}
	return nil
}

// readItems decodes every item of jb; the items share their version
// vectors through vs (which may be nil). Their paths are cut from blocks
// of paths (pathBlocks: one allocation for many paths, not one a path: a
// tenth of reading 100,000 items back, and that many fewer objects for
// the collector to trace while they are held).
func readItems(jb *bolt.Bucket, vs *index.Vectors) (index.Index, error) {
	c := jb.Bucket(bktItems).Cursor()
	// one goroutine walks and decodes while this one fills the map: the
	// two halves of the work cost about the same (~25 ms each at 100,000
	// items)
	batches, free := make(chan itemBatch, 2), make(chan []index.Item, 3)
	for range cap(free) {
		free <- make([]index.Item, 0, readBatch)
	}
	go func() {
		defer close(batches)
		// the pages of the items (~12 MiB of the database at 100,000
		// files) are dropped as the one walk over them goes (walkDrop). Kept to the
		// end, they stayed resident with whatever was read next (a
		// restart held ~40 MiB of meta.db mapped besides its heap); the
		// three walks readItems made before (count, paths, items) could
		// only drop them at the end, as each walk mapped them again
		pass := mappedPass{tx: jb.Tx()}
		defer pass.drop()
		var paths pathBlocks
		b := <-free
		for k, v := c.First(); k != nil; k, v = c.Next() {
			pass.walk(len(k) + len(v))
			it, err := decodeItemShared(paths.cut(k), v, vs)
			if err != nil {
				batches <- itemBatch{err: err}
				return
			}
			if b = append(b, it); len(b) == readBatch {
				batches <- itemBatch{items: b}
				b = <-free
			}
		}
		batches <- itemBatch{items: b}
	}()
	x := index.New(int(min(u64val(jb.Get(keyCount)), maxItemsHint)))
	var err error
	for b := range batches {
		if b.err != nil {
			err = b.err
			continue
		}
		for _, it := range b.items {
			x.Set(it)
		}
		clear(b.items) // no paths or vectors kept alive by a spare buffer
		select {
		case free <- b.items[:0]:
		default:
		}
	}
	if err != nil {
		return index.Index{}, err
	}
	return x, nil
}

// maxItemsHint bounds the size readItems gives the map ahead from the
// job's stored item count, which a damaged database could make anything.
const maxItemsHint = 1 << 24

// pathBlocks cuts strings from blocks it fills with their bytes, each
// block one allocation shared by the strings cut from it. The blocks
// double from 1 KiB to 64 KiB, so a small index takes little and a large
// one few allocations; a block is never written where a string was cut.
type pathBlocks struct {
	b    strings.Builder
	next int // the size of the next block
}

// cut returns k as a string in the current block, or in a new one when k
// does not fit in what is left of it.
func (p *pathBlocks) cut(k []byte) string {
	if p.b.Cap()-p.b.Len() < len(k) {
		p.next = min(max(2*p.next, 1<<10), 64<<10)
		p.b = strings.Builder{}
		p.b.Grow(max(p.next, len(k)))
	}
	at := p.b.Len()
	p.b.Write(k)
	return p.b.String()[at:]
}

// readBatch is how many items readItems decodes before it hands them on.
const readBatch = 2048

// itemBatch is what readItems's decoder hands on: items, or why it stopped.
type itemBatch struct {
	items []index.Item
	err   error
}

// readGeneration reconstructs generation n of jb: the newest index with
// the change records of every newer generation undone. withChanged reads
// its list of changed paths too (an initial sync's lists every path).
func readGeneration(jb *bolt.Bucket, job string, n uint64, withChanged bool) (*Generation, error) {
	if jb == nil {
		return nil, ErrNotFound
	}
	v := jb.Bucket(bktGens).Get(u64key(n))
	if v == nil {
		return nil, ErrNotFound
	}
	var info GenerationInfo
	var err error
	if withChanged {
		_, info, err = readMeta(jb, job, n, v)
	} else {
		_, info, err = decodeMeta(job, n, v)
	}
	if err != nil {
		return nil, err
	}
	var vs index.Vectors // the items of an index share their vectors
	x, err := readItems(jb, &vs)
	if err != nil {
		return nil, err
	}
	c := jb.Bucket(bktChanges).Cursor()
	for k, _ := c.Last(); k != nil && u64val(k) > n; k, _ = c.Prev() {
		rec := jb.Bucket(bktChanges).Bucket(k)
		if rec == nil {
			return nil, fmt.Errorf("%w: change record %d is not a bucket", ErrCorrupt, u64val(k))
		}
		err := rec.ForEach(func(p, r []byte) error {
			if len(r) == 0 || r[0] > 1 {
				return fmt.Errorf("%w: change record %d: %q", ErrCorrupt, u64val(k), p)
			}
			if r[0] == 0 {
				x.Delete(string(p))
				return nil
			}
			it, err := decodeItemShared(string(p), r[1:], &vs)
			if err != nil {
				return err
			}
			x.Set(it)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return &Generation{Job: job, Number: n, Time: info.Time, Origin: info.Origin, SourceVersion: info.SourceVersion,
		Changed: info.Changed, State: info.State, Reason: info.Reason, Links: info.Links, Index: x}, nil
}

// Generation returns generation n of job with its index. A generation that
// does not exist (or was collected) gives an error wrapping ErrNotFound; a
// damaged one an error wrapping ErrCorrupt.
func (s *Store) Generation(job string, n uint64) (*Generation, error) {
	return s.generation(job, n, true)
}

// GenerationIndex is Generation without the generation's list of changed
// paths (Changed is nil): what a job that let go of its index while idle
// reads back (an initial sync's list names every path, a third of the
// read at 100,000 files).
func (s *Store) GenerationIndex(job string, n uint64) (*Generation, error) {
	return s.generation(job, n, false)
}

// generation is Generation, with the changed list when withChanged.
func (s *Store) generation(job string, n uint64, withChanged bool) (*Generation, error) {
	var g *Generation
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil {
			return err
		}
		g, err = readGeneration(jb, job, n, withChanged)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: job %q generation %d: %w", job, n, err)
	}
	return g, nil
}

// Changes returns what generation n of job changed against its
// predecessor, sorted by path: the old item (from the change record) and
// the new one (from the newest index, or from the record of the next
// generation that changed the path again). The first generation of a job,
// and one whose predecessor was collected, has no change record: the error
// wraps ErrNotFound. The cost is O(changes × kept generations).
func (s *Store) Changes(job string, n uint64) ([]Change, error) {
	var out []Change
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil {
			return err
		}
		if jb == nil || jb.Bucket(bktGens).Get(u64key(n)) == nil {
			return ErrNotFound
		}
		chb := jb.Bucket(bktChanges)
		rec := chb.Bucket(u64key(n))
		if rec == nil {
			return fmt.Errorf("no change record: %w", ErrNotFound)
		}
		var later []*bolt.Bucket
		c := chb.Cursor()
		for k, _ := c.Seek(u64key(n + 1)); k != nil; k, _ = c.Next() {
			later = append(later, chb.Bucket(k))
		}
		items := jb.Bucket(bktItems)
		return rec.ForEach(func(p, r []byte) error {
			ch := Change{Path: string(p)}
			if len(r) == 0 || r[0] > 1 {
				return fmt.Errorf("%w: change record %d: %q", ErrCorrupt, n, p)
			}
			if r[0] == 1 {
				it, err := decodeItem(ch.Path, r[1:])
				if err != nil {
					return err
				}
				ch.Old = &it
			}
			nv := items.Get(p)
			for _, l := range later {
				if lr := l.Get(p); lr != nil {
					nv = nil
					if len(lr) > 0 && lr[0] == 1 {
						nv = lr[1:]
					}
					break
				}
			}
			if nv != nil {
				it, err := decodeItem(ch.Path, nv)
				if err != nil {
					return err
				}
				ch.New = &it
			}
			out = append(out, ch)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: job %q generation %d: changes: %w", job, n, err)
	}
	return out, nil
}

// Generations returns the metadata of every stored generation of job,
// oldest first; none (and no error) for an unknown job. A damaged meta
// record fails the whole call with an error wrapping ErrCorrupt.
func (s *Store) Generations(job string) ([]GenerationInfo, error) {
	var out []GenerationInfo
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		return jb.Bucket(bktGens).ForEach(func(k, v []byte) error {
			_, info, err := readMeta(jb, job, u64val(k), v)
			if err != nil {
				return err
			}
			out = append(out, info)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: job %q: list generations: %w", job, err)
	}
	return out, nil
}

// GenerationInfo returns the metadata of generation n of job, without
// reading its index.
func (s *Store) GenerationInfo(job string, n uint64) (GenerationInfo, error) {
	var info GenerationInfo
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil {
			return err
		}
		if jb == nil {
			return ErrNotFound
		}
		v := jb.Bucket(bktGens).Get(u64key(n))
		if v == nil {
			return ErrNotFound
		}
		_, info, err = readMeta(jb, job, n, v)
		return err
	})
	if err != nil {
		return info, fmt.Errorf("store: job %q generation %d: %w", job, n, err)
	}
	return info, nil
}

// Latest returns the newest generation of job in state st, with its index
// (Latest(job, StateGood) is the last known-good); ok is false when there
// is none.
func (s *Store) Latest(job string, st State) (g *Generation, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		n, err := latestNumber(jb, job, st)
		if err != nil || n == 0 {
			return err
		}
		g, err = readGeneration(jb, job, n, true)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: job %q: latest %s generation: %w", job, st, err)
	}
	return g, g != nil, nil
}

// latestNumber returns the newest generation of jb in state st, 0 if none.
func latestNumber(jb *bolt.Bucket, job string, st State) (uint64, error) {
	c := jb.Bucket(bktGens).Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		_, info, err := decodeMeta(job, u64val(k), v)
		if err != nil {
			return 0, err
		}
		if info.State == st {
			return info.Number, nil
		}
	}
	return 0, nil
}
