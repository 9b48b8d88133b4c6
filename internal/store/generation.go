package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	maxMetaFile  = 64 << 20
	maxIndexFile = 1 << 30
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

// diskMeta is the body of gen/<n>.meta.
type diskMeta struct {
	Job           string    `json:"job"`
	Generation    uint64    `json:"generation"`
	Time          time.Time `json:"time"`
	Origin        string    `json:"origin"`
	SourceVersion uint64    `json:"source_version"`
	Changed       []string  `json:"changed"`
	State         State     `json:"state"`
	Reason        string    `json:"reason"`
	Links         []Link    `json:"links,omitempty"`
	IndexSum      string    `json:"index_sum"`   // BLAKE3 of the body of gen/<n>.index
	IndexItems    int       `json:"index_items"` // for humans
}

// diskIndex is the body of gen/<n>.index.
type diskIndex struct {
	Job        string     `json:"job"`
	Generation uint64     `json:"generation"`
	Items      []diskItem `json:"items"` // sorted by path
}

type diskItem struct {
	Path    string        `json:"path"`
	Kind    string        `json:"kind"` // "file" | "dir"
	Size    int64         `json:"size,omitempty"`
	Mode    uint32        `json:"mode"`
	MTime   int64         `json:"mtime"`
	Hash    string        `json:"hash,omitempty"` // hex; absent for the zero hash
	Deleted bool          `json:"deleted,omitempty"`
	Version []diskCounter `json:"version,omitempty"`
}

type diskCounter struct {
	Node  string `json:"node"`
	Value uint64 `json:"value"`
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

func encodeMeta(g *GenerationInfo, indexSum index.Hash, items int) ([]byte, error) {
	if err := validateInfo(g.Job, g); err != nil {
		return nil, err
	}
	ch := g.Changed
	if ch == nil {
		ch = []string{}
	}
	body, err := json.MarshalIndent(diskMeta{
		Job: g.Job, Generation: g.Number, Time: g.Time, Origin: g.Origin, SourceVersion: g.SourceVersion,
		Changed: ch, State: g.State, Reason: g.Reason, Links: g.Links, IndexSum: indexSum.String(), IndexItems: items,
	}, "", " ")
	if err != nil {
		return nil, err
	}
	return encodeEnvelope("meta", append(body, '\n')), nil
}

// decodeMeta parses and validates a gen/<n>.meta file of job. Every error
// wraps ErrCorrupt.
func decodeMeta(job string, n uint64, b []byte) (*metaRecord, error) {
	body, err := decodeEnvelope("meta", b)
	if err != nil {
		return nil, err
	}
	var m diskMeta
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	g := &GenerationInfo{Job: m.Job, Number: m.Generation, Time: m.Time, Origin: m.Origin,
		SourceVersion: m.SourceVersion, Changed: m.Changed, State: m.State, Reason: m.Reason, Links: m.Links}
	if g.Changed == nil {
		g.Changed = []string{}
	}
	if err := validateInfo(job, g); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if n != 0 && g.Number != n {
		return nil, fmt.Errorf("%w: file of generation %d holds generation %d", ErrCorrupt, n, g.Number)
	}
	sum, err := index.ParseHash(m.IndexSum)
	if err != nil {
		return nil, fmt.Errorf("%w: index_sum: %v", ErrCorrupt, err)
	}
	return &metaRecord{info: *g, indexSum: sum, items: m.IndexItems}, nil
}

// metaRecord is a decoded meta file.
type metaRecord struct {
	info     GenerationInfo
	indexSum index.Hash
	items    int
}

// validateItem checks one item of an index, on write and on read.
func validateItem(it *index.Item) error {
	if err := index.ValidatePath(it.Path); err != nil {
		return err
	}
	switch it.Kind {
	case index.KindFile:
		if it.Size < 0 {
			return fmt.Errorf("item %q: negative size", it.Path)
		}
	case index.KindDir:
	default:
		return fmt.Errorf("item %q: unknown kind %d", it.Path, it.Kind)
	}
	if it.Mode&^index.ModeBits != 0 {
		return fmt.Errorf("item %q: mode %v has more than permission, setuid, setgid and sticky bits", it.Path, it.Mode)
	}
	for _, c := range it.Version {
		if c.Node == "" || len(c.Node) > maxOriginLen || !utf8.ValidString(c.Node) {
			return fmt.Errorf("item %q: bad node in version vector", it.Path)
		}
	}
	return nil
}

// encodeIndex returns the gen/<n>.index file and the checksum of its body.
func encodeIndex(job string, n uint64, x index.Index) ([]byte, index.Hash, error) {
	items := make([]diskItem, 0, len(x))
	for _, it := range x.Sorted() {
		if err := validateItem(&it); err != nil {
			return nil, index.Hash{}, err
		}
		d := diskItem{Path: it.Path, Kind: it.Kind.String(), Size: it.Size, Mode: index.UnixMode(it.Mode), MTime: it.MTime, Deleted: it.Deleted}
		if !it.Hash.IsZero() {
			d.Hash = it.Hash.String()
		}
		for _, c := range it.Version {
			d.Version = append(d.Version, diskCounter(c))
		}
		items = append(items, d)
	}
	// A key that differs from its item's path would make two entries with
	// one path on disk.
	for k, it := range x {
		if k != it.Path {
			return nil, index.Hash{}, fmt.Errorf("index key %q holds item %q", k, it.Path)
		}
	}
	body, err := json.Marshal(diskIndex{Job: job, Generation: n, Items: items})
	if err != nil {
		return nil, index.Hash{}, err
	}
	body = append(body, '\n')
	return encodeEnvelope("index", body), index.Sum(body), nil
}

// decodeIndex parses and validates a gen/<n>.index file of job. When want
// is not zero the body must hash to it (the meta file's index_sum). Every
// error wraps ErrCorrupt.
func decodeIndex(job string, n uint64, want index.Hash, b []byte) (index.Index, error) {
	body, err := decodeEnvelope("index", b)
	if err != nil {
		return nil, err
	}
	if !want.IsZero() && index.Sum(body) != want {
		return nil, fmt.Errorf("%w: index does not match its meta file (index_sum)", ErrCorrupt)
	}
	var d diskIndex
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if d.Job != job || (n != 0 && d.Generation != n) {
		return nil, fmt.Errorf("%w: index belongs to job %q generation %d", ErrCorrupt, d.Job, d.Generation)
	}
	x := make(index.Index, len(d.Items))
	for _, di := range d.Items {
		it := index.Item{Path: di.Path, Size: di.Size, Mode: index.FileMode(di.Mode), MTime: di.MTime, Deleted: di.Deleted}
		switch di.Kind {
		case "file":
			it.Kind = index.KindFile
		case "dir":
			it.Kind = index.KindDir
		default:
			return nil, fmt.Errorf("%w: item %q: unknown kind %q", ErrCorrupt, di.Path, di.Kind)
		}
		if di.Hash != "" {
			if it.Hash, err = index.ParseHash(di.Hash); err != nil {
				return nil, fmt.Errorf("%w: item %q: %v", ErrCorrupt, di.Path, err)
			}
		}
		for _, c := range di.Version {
			it.Version = append(it.Version, index.Counter(c))
		}
		if err := validateItem(&it); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if _, dup := x[it.Path]; dup {
			return nil, fmt.Errorf("%w: item %q twice", ErrCorrupt, it.Path)
		}
		x[it.Path] = it
	}
	return x, nil
}

func genName(n uint64, ext string) string { return fmt.Sprintf("%020d.%s", n, ext) }

// parseGenName returns the number of a gen/ file name with extension ext.
func parseGenName(name, ext string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, "."+ext)
	if !ok || len(num) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

func (s *Store) genDir(job string) (string, error) {
	d, err := s.jobDir(job)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "gen"), nil
}

// genNumbers lists the generation numbers of job (those with a meta file),
// ascending.
func (s *Store) genNumbers(job string) ([]uint64, error) {
	dir, err := s.genDir(job)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		if n, ok := parseGenName(e.Name(), "meta"); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// readMeta reads the metadata of generation n of job.
func (s *Store) readMeta(job string, n uint64) (*metaRecord, error) {
	dir, err := s.genDir(job)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, genName(n, "meta"))
	b, err := readFileMax(path, maxMetaFile)
	if err != nil {
		return nil, err
	}
	m, err := decodeMeta(job, n, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// readGeneration reads generation n of job with its index.
func (s *Store) readGeneration(job string, n uint64) (*Generation, error) {
	m, err := s.readMeta(job, n)
	if err != nil {
		return nil, fmt.Errorf("store: job %q generation %d: %w", job, n, err)
	}
	info := &m.info
	dir, _ := s.genDir(job)
	path := filepath.Join(dir, genName(n, "index"))
	b, err := readFileMax(path, maxIndexFile)
	if err != nil {
		return nil, fmt.Errorf("store: job %q generation %d: index: %w", job, n, err)
	}
	x, err := decodeIndex(job, n, m.indexSum, b)
	if err != nil {
		return nil, fmt.Errorf("store: job %q generation %d: %s: %w", job, n, path, err)
	}
	return &Generation{Job: job, Number: n, Time: info.Time, Origin: info.Origin, SourceVersion: info.SourceVersion,
		Changed: info.Changed, State: info.State, Reason: info.Reason, Links: info.Links, Index: x}, nil
}

// nextFile holds the next generation number of a job, so numbers are never
// reused even when GC deleted the newest generations' predecessors.
type diskNext struct {
	Next uint64 `json:"next"`
}

// nextNumber returns the number the next generation of job gets: the
// larger of the next file and the newest existing generation + 1.
func (s *Store) nextNumber(job string) (uint64, error) {
	nums, err := s.genNumbers(job)
	if err != nil {
		return 0, err
	}
	next := uint64(1)
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	dir, err := s.jobDir(job)
	if err != nil {
		return 0, err
	}
	b, err := readFileMax(filepath.Join(dir, "next"), 4096)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return 0, err
	default:
		body, err := decodeEnvelope("next", b)
		var d diskNext
		if err == nil {
			err = json.Unmarshal(body, &d)
		}
		if err != nil {
			// Numbers stay unique: existing generations still bound it.
			s.log.Warn("ignoring damaged generation counter", "job", job, "err", err)
		} else if d.Next > next {
			next = d.Next
		}
	}
	return next, nil
}

// NextGeneration returns the number AddGeneration would give the next
// generation of job now. It reserves nothing: it is a hint for display.
func (s *Store) NextGeneration(job string) (uint64, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, err := s.nextNumber(job)
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
// g.Index must have its blob in the store: otherwise nothing is recorded
// and the error lists the missing blobs. Paths in g.Index and g.Changed are
// validated with index.ValidatePath.
//
// Blobs must stay in the store between Put and AddGeneration: Pin them, or
// record the generation within the GC grace period.
func (s *Store) AddGeneration(ctx context.Context, g *Generation) (uint64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	job := g.Job
	fail := func(err error) (uint64, error) {
		return 0, fmt.Errorf("store: job %q: add generation: %w", job, err)
	}
	jdir, err := s.jobDir(job)
	if err != nil {
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

	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for _, it := range g.Index.Sorted() {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if it.Kind == index.KindFile && !it.Deleted && !s.Has(it.Hash) {
			missing = append(missing, fmt.Sprintf("%s (blob %s)", it.Path, it.Hash))
		}
	}
	if total := len(missing); total > 0 {
		more := ""
		if total > 10 {
			more = fmt.Sprintf(" and %d more", total-10)
			missing = missing[:10]
		}
		return fail(fmt.Errorf("%w: %d blobs missing from the store: %s%s", ErrNotFound, total, strings.Join(missing, ", "), more))
	}
	n, err := s.nextNumber(job)
	if err != nil {
		return fail(err)
	}
	info.Number = n
	idx, sum, err := encodeIndex(job, n, g.Index)
	if err != nil {
		return fail(err)
	}
	meta, err := encodeMeta(&info, sum, len(g.Index))
	if err != nil {
		return fail(err)
	}
	gdir := filepath.Join(jdir, "gen")
	if err := mkdirAllSync(gdir); err != nil {
		return fail(err)
	}
	next, _ := json.Marshal(diskNext{Next: n + 1})
	// Order: counter, index, meta. The meta file is what makes the
	// generation exist; a crash before it leaves at most a skipped number
	// and an orphan index that GC removes.
	if err := writeFileSync(filepath.Join(jdir, "next"), encodeEnvelope("next", next), s.tmpDir(), false); err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(gdir, genName(n, "index")), idx, s.tmpDir(), false); err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(gdir, genName(n, "meta")), meta, s.tmpDir(), false); err != nil {
		return fail(err)
	}
	g.Number, g.Time, g.State, g.Reason = n, info.Time, info.State, info.Reason
	s.log.Info("generation recorded", "job", job, "generation", n, "state", string(info.State), "items", len(g.Index), "changed", len(info.Changed))
	return n, nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.readMeta(job, n)
	if err != nil {
		return fail(err)
	}
	info := &m.info
	info.State, info.Reason = st, truncateReason(reason)
	dir, _ := s.genDir(job)
	meta, err := encodeMeta(info, m.indexSum, m.items)
	if err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(dir, genName(n, "meta")), meta, s.tmpDir(), false); err != nil {
		return fail(err)
	}
	s.log.Info("generation state", "job", job, "generation", n, "state", string(st), "reason", info.Reason)
	return nil
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
	fail := func(err error) error {
		return fmt.Errorf("store: job %q generation %d: record replaced links: %w", job, n, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.readMeta(job, n)
	if err != nil {
		return fail(err)
	}
	info := &m.info
	for _, l := range links {
		if !slices.ContainsFunc(info.Links, func(x Link) bool { return x.Path == l.Path }) {
			info.Links = append(info.Links, l)
		}
	}
	dir, _ := s.genDir(job)
	meta, err := encodeMeta(info, m.indexSum, m.items)
	if err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(dir, genName(n, "meta")), meta, s.tmpDir(), false); err != nil {
		return fail(err)
	}
	return nil
}

// Generation returns generation n of job with its index. A generation that
// does not exist (or was collected) gives an error wrapping ErrNotFound; a
// damaged one an error wrapping ErrCorrupt.
func (s *Store) Generation(job string, n uint64) (*Generation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if _, err := jobDirName(job); err != nil {
		return nil, fmt.Errorf("store: job %q: %w", job, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.readGeneration(job, n)
}

// Info returns the metadata of generation n of job without reading its
// index; errors as Generation.
func (s *Store) Info(job string, n uint64) (GenerationInfo, error) {
	if err := s.usable(); err != nil {
		return GenerationInfo{}, err
	}
	if _, err := jobDirName(job); err != nil {
		return GenerationInfo{}, fmt.Errorf("store: job %q: %w", job, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, err := s.readMeta(job, n)
	if err != nil {
		return GenerationInfo{}, fmt.Errorf("store: job %q generation %d: %w", job, n, err)
	}
	return m.info, nil
}

// Generations returns the metadata of every stored generation of job,
// oldest first; none (and no error) for an unknown job. A damaged meta
// file fails the whole call with an error wrapping ErrCorrupt that names
// the file.
func (s *Store) Generations(job string) ([]GenerationInfo, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	nums, err := s.genNumbers(job)
	if err != nil {
		return nil, fmt.Errorf("store: job %q: list generations: %w", job, err)
	}
	out := make([]GenerationInfo, 0, len(nums))
	for _, n := range nums {
		m, err := s.readMeta(job, n)
		if errors.Is(err, ErrNotFound) {
			continue // collected by another process since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("store: job %q generation %d: %w", job, n, err)
		}
		out = append(out, m.info)
	}
	return out, nil
}

// Latest returns the newest generation of job in state st, with its index
// (Latest(job, StateGood) is the last known-good); ok is false when there
// is none.
func (s *Store) Latest(job string, st State) (g *Generation, ok bool, err error) {
	if err := s.usable(); err != nil {
		return nil, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok, err := s.latestNumber(job, st)
	if err != nil || !ok {
		return nil, false, err
	}
	g, err = s.readGeneration(job, n)
	if err != nil {
		return nil, false, err
	}
	return g, true, nil
}

func (s *Store) latestNumber(job string, st State) (uint64, bool, error) {
	nums, err := s.genNumbers(job)
	if err != nil {
		return 0, false, fmt.Errorf("store: job %q: list generations: %w", job, err)
	}
	for i := len(nums) - 1; i >= 0; i-- {
		m, err := s.readMeta(job, nums[i])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("store: job %q generation %d: %w", job, nums[i], err)
		}
		if m.info.State == st {
			return nums[i], true, nil
		}
	}
	return 0, false, nil
}
