package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// withRecordChunk records generations of more than n changes in chunks of
// n (see recordChunkChanges).
func withRecordChunk(n int) Option { return func(o *options) { o.recordChunk = n } }

// chunkFiles returns the files of version v of a test tree: n files, of
// which every third changes from one version to the next, every seventh
// exists only in odd versions, and some share content.
func chunkFiles(n, v int) map[string]string {
	files := map[string]string{}
	for i := range n {
		if i%7 == 3 && v%2 == 0 {
			continue
		}
		c := fmt.Sprintf("[f%d]\n", i%(n/2))
		if i%3 == 0 {
			c += fmt.Sprintf("v%d\n", v)
		}
		files[fmt.Sprintf("d%02d/f%04d.conf", i%13, i)] = c
	}
	return files
}

// refState returns the reference counts and the unreferenced blobs of s.
func refState(t testing.TB, s *Store) (refs map[index.Hash]uint64, unref map[index.Hash]bool) {
	t.Helper()
	refs, unref = map[index.Hash]uint64{}, map[index.Hash]bool{}
	err := s.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktRefs).ForEach(func(k, v []byte) error {
			refs[index.Hash(k)] = u64val(v)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bktUnref).ForEach(func(k, _ []byte) error {
			unref[index.Hash(k)] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return refs, unref
}

// checkConsistent fails unless the reference counts of s are what its
// jobs' items, change records and extras hold, no blob is both referenced
// and unreferenced, and no job has a recording mark or a change record
// numbered after its newest generation.
func checkConsistent(t testing.TB, s *Store) {
	t.Helper()
	want := map[index.Hash]uint64{}
	count := func(it *index.Item) {
		if liveFile(it) {
			want[it.Hash]++
		}
	}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktJobs).ForEachBucket(func(job []byte) error {
			jb := tx.Bucket(bktJobs).Bucket(job)
			if jb.Get(keyRecording) != nil {
				return fmt.Errorf("job %s: recording mark left", job)
			}
			newest := newestGen(jb)
			if err := jb.Bucket(bktItems).ForEach(func(k, v []byte) error {
				it, err := decodeItem(string(k), v)
				count(&it)
				return err
			}); err != nil {
				return err
			}
			if err := jb.Bucket(bktChanges).ForEachBucket(func(n []byte) error {
				if u64val(n) > newest {
					return fmt.Errorf("job %s: change record %d after the newest generation %d", job, u64val(n), newest)
				}
				return jb.Bucket(bktChanges).Bucket(n).ForEach(func(k, r []byte) error {
					if r[0] != 1 {
						return nil
					}
					it, err := decodeItem(string(k), r[1:])
					count(&it)
					return err
				})
			}); err != nil {
				return err
			}
			if root := jb.Bucket(bktChanged); root != nil {
				if err := root.ForEachBucket(func(n []byte) error {
					if u64val(n) > newest {
						return fmt.Errorf("job %s: changed list %d after the newest generation %d", job, u64val(n), newest)
					}
					return nil
				}); err != nil {
					return err
				}
			}
			xs, err := readExtras(jb)
			for _, x := range xs {
				want[x.Hash]++
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	refs, unref := refState(t, s)
	if !reflect.DeepEqual(refs, want) {
		t.Fatalf("reference counts: %d hashes, want %d (%v)", len(refs), len(want), diffCounts(refs, want))
	}
	for h := range refs {
		if unref[h] {
			t.Fatalf("blob %s both referenced and unreferenced", h.Short())
		}
	}
	checkGCKnowsEveryBlob(t, s, refs, unref)
}

// checkGCKnowsEveryBlob fails unless every blob s holds (a location in a
// pack, a value of bucket blobs, a file) is referenced, listed in unref or
// listed in a row of bucket fresh: GC would never delete another.
func checkGCKnowsEveryBlob(t testing.TB, s *Store, refs map[index.Hash]uint64, unref map[index.Hash]bool) {
	t.Helper()
	var fresh map[index.Hash]struct{}
	var stored []index.Hash
	if err := s.view(func(tx *bolt.Tx) error {
		fresh = freshHashes(tx)
		add := func(k, _ []byte) error {
			stored = append(stored, index.Hash(k))
			return nil
		}
		if err := openLocations(tx).forEach(nil, add); err != nil {
			return err
		}
		if err := tx.Bucket(bktBlobs).ForEach(add); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(s.blobsDir(), "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		h, err := index.ParseHash(filepath.Base(f))
		if err != nil {
			t.Fatalf("blob file %s: %v", f, err)
		}
		stored = append(stored, h)
	}
	for _, h := range stored {
		if _, ok := fresh[h]; refs[h] == 0 && !unref[h] && !ok {
			t.Fatalf("blob %s is stored, and neither referenced nor a GC candidate", h.Short())
		}
	}
}

func diffCounts(got, want map[index.Hash]uint64) []string {
	var out []string
	for h, n := range want {
		if got[h] != n {
			out = append(out, fmt.Sprintf("%s: %d, want %d", h.Short(), got[h], n))
		}
	}
	for h, n := range got {
		if _, ok := want[h]; !ok {
			out = append(out, fmt.Sprintf("%s: %d, want none", h.Short(), n))
		}
	}
	slices.Sort(out)
	return out[:min(len(out), 5)]
}

// TestChunkedRecordMatchesOne records the same generations in chunks and
// in one transaction each: the generations, their changes and the
// reference counts must be the same.
func TestChunkedRecordMatchesOne(t *testing.T) {
	ctx := context.Background()
	one, chunked := newTestStore(t), newTestStore(t, withRecordChunk(7))
	var xs []index.Index
	for v := range 4 {
		var x index.Index
		for _, s := range []*Store{one, chunked} {
			x = makeIndex(t, s, chunkFiles(300, v))
			addGen(t, s, "j", x, StateGood)
		}
		xs = append(xs, x)
	}
	// one by its changes, against the newest
	first, _ := xs[3].Get("d00/f0000.conf")
	set := []index.Item{first}
	set[0].Size++
	var del []string
	for p := range xs[3].Paths() {
		if p != "conf" && p != set[0].Path {
			del = append(del, p)
		}
	}
	for _, s := range []*Store{one, chunked} {
		if _, err := s.AddGenerationChanges(ctx, &Generation{Job: "j", State: StateGood}, 4, set, del); err != nil {
			t.Fatal(err)
		}
	}
	for n := uint64(1); n <= 5; n++ {
		a, err := one.Generation("j", n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := chunked.Generation("j", n)
		if err != nil {
			t.Fatal(err)
		}
		if !index.SameItems(a.Index, b.Index) || (n <= 4 && !index.SameItems(b.Index, xs[n-1])) {
			t.Fatalf("generation %d: %d and %d items", n, a.Index.Len(), b.Index.Len())
		}
		ca, erra := one.Changes("j", n)
		cb, errb := chunked.Changes("j", n)
		if !reflect.DeepEqual(ca, cb) || (erra == nil) != (errb == nil) {
			t.Fatalf("changes of generation %d: %d (%v) and %d (%v)", n, len(ca), erra, len(cb), errb)
		}
		if n > 1 && len(cb) == 0 {
			t.Fatalf("generation %d changed nothing", n)
		}
	}
	if _, err := chunked.Changes("j", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a first generation recorded in chunks keeps a change record: %v", err)
	}
	ra, _ := refState(t, one)
	rb, _ := refState(t, chunked)
	if !reflect.DeepEqual(ra, rb) {
		t.Fatalf("reference counts differ: %v", diffCounts(rb, ra))
	}
	checkConsistent(t, chunked)
}

// failAfter is a context whose Err fails from its nth call on: a record
// that checks it stops there, as if interrupted.
type failAfter struct {
	context.Context
	left atomic.Int64
}

var errStopped = errors.New("stopped by the test")

func (c *failAfter) Err() error {
	if c.left.Add(-1) < 0 {
		return errStopped
	}
	return nil
}

// TestChunkedRecordUndone stops a record in chunks at every point it
// checks its context (in each chunk of items, before each chunk of
// reference counts, before the last commit): nothing is recorded, the
// store is as before, and the same generation records afterwards.
func TestChunkedRecordUndone(t *testing.T) {
	for _, first := range []bool{true, false} {
		t.Run(fmt.Sprintf("first=%v", first), func(t *testing.T) {
			s := newTestStore(t, withRecordChunk(16))
			var prev *Generation
			if !first {
				n := addGen(t, s, "j", makeIndex(t, s, chunkFiles(100, 0)), StateGood)
				var err error
				if prev, err = s.Generation("j", n); err != nil {
					t.Fatal(err)
				}
			}
			// a changed list long enough to go out of line, in chunks
			x := makeIndex(t, s, chunkFiles(200, 1))
			changed := slices.Sorted(x.Paths())
			refs0, _ := refState(t, s)
			stops := 0
			for k := int64(0); ; k++ {
				ctx := &failAfter{Context: context.Background()}
				ctx.left.Store(k)
				n, err := s.AddGeneration(ctx, &Generation{Job: "j", State: StateGood, Index: x, Changed: changed})
				if err == nil {
					g, err := s.Generation("j", n)
					if err != nil || !index.SameItems(g.Index, x) || !slices.Equal(g.Changed, changed) {
						t.Fatalf("recorded after %d stops: %v", stops, err)
					}
					break
				}
				if !errors.Is(err, errStopped) {
					t.Fatal(err)
				}
				stops++
				gs, err := s.Generations("j")
				if err != nil {
					t.Fatal(err)
				}
				if first && len(gs) != 0 || !first && (len(gs) != 1 || gs[0].Number != prev.Number) {
					t.Fatalf("stop %d: generations %v", k, gs)
				}
				if prev != nil {
					g, err := s.Generation("j", prev.Number)
					if err != nil || !index.SameItems(g.Index, prev.Index) {
						t.Fatalf("stop %d: the previous generation changed: %v", k, err)
					}
				}
				if refs, _ := refState(t, s); !reflect.DeepEqual(refs, refs0) {
					t.Fatalf("stop %d: reference counts changed: %v", k, diffCounts(refs, refs0))
				}
				checkConsistent(t, s)
			}
			// more stops than changes: every chunk of items was cut, and
			// those of the counts and the last commit too
			if stops <= x.Len() {
				t.Fatalf("only %d stops for %d changes", stops, x.Len())
			}
			checkConsistent(t, s)
		})
	}
}

// onErr is a context that calls f each time Err is called: where a
// record checks its context, between its transactions among others.
type onErr struct {
	context.Context
	f func()
}

func (c onErr) Err() error { c.f(); return nil }

// TestReadersSeeNoPartialRecord reads the newest generation at every
// point where a record in chunks checks its context, with the chunks
// before committed: the reader sees the previous generation, complete,
// until the record is done.
func TestReadersSeeNoPartialRecord(t *testing.T) {
	s := newTestStore(t, withRecordChunk(5))
	x1, x2 := makeIndex(t, s, chunkFiles(200, 0)), makeIndex(t, s, chunkFiles(200, 1))
	n1 := addGen(t, s, "j", x1, StateGood)
	reads, partial := 0, 0
	ctx := onErr{Context: context.Background(), f: func() {
		g, ok, err := s.Latest("j", StateGood)
		if err != nil || !ok || g.Number != n1 || !index.SameItems(g.Index, x1) {
			t.Fatalf("read %d: %v %v: not generation %d as recorded", reads, ok, err, n1)
		}
		reads++
		if err := s.view(func(tx *bolt.Tx) error {
			jb, err := jobBucket(tx, "j", false)
			if jb.Get(keyRecording) != nil {
				partial++
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}}
	n2, err := s.AddGeneration(ctx, &Generation{Job: "j", State: StateGood, Index: x2})
	if err != nil {
		t.Fatal(err)
	}
	g, ok, err := s.Latest("j", StateGood)
	if err != nil || !ok || g.Number != n2 || !index.SameItems(g.Index, x2) {
		t.Fatalf("after the record: %v %v", ok, err)
	}
	checkConsistent(t, s)
	// the record was in chunks: readers saw it in part (and ignored it)
	if partial < 200/5 {
		t.Fatalf("%d of %d reads saw a record in progress", partial, reads)
	}
}

// TestChangedListWrittenInChunks: a chunked record writes a long changed
// list a chunk per transaction, before its last commit (which held ~21 MiB
// of nodes and sealed values for a first generation of 100,000 paths):
// between its transactions, parts of the list are seen, growing.
func TestChangedListWrittenInChunks(t *testing.T) {
	s := newTestStore(t, withRecordChunk(16))
	x := makeIndex(t, s, chunkFiles(200, 0))
	changed := slices.Sorted(x.Paths())
	var parts []int // the sizes of the partial lists seen
	ctx := onErr{Context: context.Background(), f: func() {
		if err := s.view(func(tx *bolt.Tx) error {
			jb, err := jobBucket(tx, "j", false)
			if err != nil || jb == nil {
				return err
			}
			if root := jb.Bucket(bktChanged); root != nil {
				if b := root.Bucket(u64key(1)); b != nil && jb.Get(keyRecording) != nil {
					parts = append(parts, b.Stats().KeyN)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}}
	n, err := s.AddGeneration(ctx, &Generation{Job: "j", State: StateGood, Index: x, Changed: changed})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := s.Generations("j")
	if err != nil || len(infos) != 1 || infos[0].Number != n || !slices.Equal(infos[0].Changed, changed) {
		t.Fatalf("generations %v, %v", infos, err)
	}
	checkConsistent(t, s)
	grew := 0
	for i := 1; i < len(parts); i++ {
		if parts[i] > parts[i-1] {
			grew++
		}
	}
	if len(parts) == 0 || parts[0] >= len(changed) || grew < len(changed)/16-2 {
		t.Fatalf("the list of %d paths was seen in parts %v; want it written 16 paths a transaction", len(changed), parts)
	}
}

// recordKillEnv names the store directory of a child of
// TestChunkedRecordKill.
const recordKillEnv = "PBXSYNC_TEST_RECORD_KILL"

// recordKill* shape TestChunkedRecordKill: a second generation of
// recordKillFiles files, recorded in chunks of recordKillChunk.
const (
	recordKillFiles = 800
	recordKillChunk = 10
)

// TestChunkedRecordKill SIGKILLs a child process while it records a
// generation in chunks (at random instants of the record, and as its
// recording mark appears in the database file), then opens the store:
// the generation is recorded completely or not at all, the one before is
// intact, and the reference counts are exact.
func TestChunkedRecordKill(t *testing.T) {
	t.Parallel()
	const rounds = 10
	var full time.Duration
	outcomes := map[string]int{}
	for i := range rounds {
		dir := t.TempDir()
		s, err := Open(dir, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		x1 := makeIndex(t, s, chunkFiles(recordKillFiles, 0))
		addGen(t, s, "j", x1, StateGood)
		x2 := makeIndex(t, s, chunkFiles(recordKillFiles, 1))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecordKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), recordKillEnv+"="+dir, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		// the child writes a byte to this pipe (its fd 3) as its record
		// starts: its start-up is not timed
		recording, signal, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{signal}
		var mark *fsnotify.Watcher
		if i%2 == 0 && i > 0 {
			if mark, err = fsnotify.NewWatcher(); err != nil {
				t.Fatal(err)
			}
			if err := mark.Add(filepath.Join(dir, dbName)); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		signal.Close()
		recording.Read(make([]byte, 1)) // or EOF: the child ended first
		start := time.Now()
		mode := "complete"
		switch {
		case i == 0: // to the end, to learn how long a record takes
			recording.Read(make([]byte, 1)) // its second byte: recorded
			full = time.Since(start)
		case mark != nil:
			mode = "on-mark"
			waitForBytes(t, mark, filepath.Join(dir, dbName), keyRecording)
		default:
			mode = "random"
			time.Sleep(time.Duration(rand.Int64N(int64(full))))
		}
		if mode != "complete" {
			cmd.Process.Kill() // SIGKILL
		}
		err = cmd.Wait()
		recording.Close()
		if mode == "complete" && err != nil {
			t.Fatalf("child: %v\n%s", err, out.String())
		}

		ro, err := OpenReadOnly(dir, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		var m *recordingMark
		if err := ro.view(func(tx *bolt.Tx) error {
			jb, err := jobBucket(tx, "j", false)
			if err == nil {
				m, err = readMark(jb)
			}
			return err
		}); err != nil {
			t.Fatalf("round %d (%s): recording mark: %v", i, mode, err)
		}
		ro.Close()
		s, err = Open(dir, testLogger(t))
		if err != nil {
			t.Fatalf("round %d (%s): open after the kill: %v", i, mode, err)
		}
		gs, err := s.Generations("j")
		if err != nil {
			t.Fatal(err)
		}
		outcome := fmt.Sprintf("mark %v (refs %v) -> ", m != nil, m != nil && m.refs)
		switch len(gs) {
		case 1:
			outcome += "old"
		case 2:
			outcome += "new"
			if g, err := s.Generation("j", gs[1].Number); err != nil || !index.SameItems(g.Index, x2) {
				t.Fatalf("round %d (%s): the new generation: %v", i, mode, err)
			}
		default:
			t.Fatalf("round %d (%s): %d generations", i, mode, len(gs))
		}
		if g, err := s.Generation("j", gs[0].Number); err != nil || !index.SameItems(g.Index, x1) {
			t.Fatalf("round %d (%s): the old generation: %v", i, mode, err)
		}
		checkConsistent(t, s)
		if mode == "complete" && len(gs) != 2 {
			t.Fatalf("round 0: the record did not complete")
		}
		if m != nil && len(gs) != 1 {
			t.Fatalf("round %d (%s): a record in part became a generation", i, mode)
		}
		// the store records the generation once more after the undo
		if _, err := s.AddGeneration(context.Background(), &Generation{Job: "j", State: StateGood, Index: x2}); err != nil {
			t.Fatalf("round %d (%s): record again: %v", i, mode, err)
		}
		checkConsistent(t, s)
		s.Close()
		outcomes[mode+": "+outcome]++
	}
	t.Logf("full record in the child: %s; outcomes: %v", full, outcomes)
	mid := 0
	for o, n := range outcomes {
		if strings.Contains(o, "mark true") {
			mid += n
		}
	}
	if mid == 0 {
		t.Fatalf("no kill interrupted a record in chunks: %v", outcomes)
	}
}

// waitForBytes returns when the file holds b (or after a minute: the
// child failed first), reading it each time it is written.
func waitForBytes(t *testing.T, w *fsnotify.Watcher, file string, b []byte) {
	defer w.Close()
	limit := time.After(time.Minute)
	for {
		if data, err := os.ReadFile(file); err == nil && bytes.Contains(data, b) {
			return
		}
		select {
		case <-w.Events:
		case <-w.Errors:
		case <-limit:
			t.Logf("%s never held %q", file, b)
			return
		}
	}
}

// TestRecordKillChild is the child of TestChunkedRecordKill: it records
// the second generation and exits. It does nothing in a normal test run.
func TestRecordKillChild(t *testing.T) {
	dir := os.Getenv(recordKillEnv)
	if dir == "" {
		return // not a child of TestChunkedRecordKill
	}
	s, err := Open(dir, testLogger(t), withRecordChunk(recordKillChunk))
	if err != nil {
		t.Fatal(err)
	}
	x2 := makeIndex(t, s, chunkFiles(recordKillFiles, 1))
	f := os.NewFile(3, "recording")
	f.Write([]byte{1}) // TestChunkedRecordKill times its kills from here
	if _, err := s.AddGeneration(context.Background(), &Generation{Job: "j", State: StateGood, Index: x2}); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{2}) // to here
	f.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}

// TestRecordReportsProgress: a record in chunks tells
// Generation.OnProgress how far it got, in changes: none once it checked
// them all, then after each chunk (its changes, its changed list, its
// reference counts, in proportion: the last chunk of changes is not the
// end), all of them at the end, never going back; a record in one
// transaction reports its end only, as does a small record by its
// changes; the hook is not kept.
func TestRecordReportsProgress(t *testing.T) {
	ctx := context.Background()
	for _, chunk := range []int{0, 7, 64} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			var opts []Option
			if chunk > 0 {
				opts = append(opts, withRecordChunk(chunk))
			}
			s := newTestStore(t, opts...)
			x := makeIndex(t, s, chunkFiles(300, 0))
			type report struct{ written, total int }
			var got []report
			// a first generation lists every path as changed: out of
			// line, a pass of its own
			g := &Generation{Job: "j", State: StateGood, Index: x, Changed: slices.Collect(x.Paths()), OnProgress: func(written, total int) {
				got = append(got, report{written, total})
			}}
			if _, err := s.AddGeneration(ctx, g); err != nil {
				t.Fatal(err)
			}
			total := x.Len()
			if len(got) == 0 || got[len(got)-1] != (report{total, total}) || (chunk > 0 && got[0] != (report{0, total})) {
				t.Fatalf("reports %v: want %d of %d last (and 0 first, in chunks)", got, total, total)
			}
			for i := 1; i < len(got); i++ {
				if got[i].total != total || got[i].written < got[i-1].written {
					t.Fatalf("reports %v: report %d goes back or changes the total", got, i)
				}
			}
			switch chunks := (total + chunk - 1) / max(chunk, 1); {
			case chunk == 0 && len(got) != 1:
				t.Fatalf("a record in one transaction: reports %v, want its end only", got)
			case chunk > 0 && len(got) < chunks+2:
				// the changes a chunk each, then the reference counts
				t.Fatalf("a record in %d chunks of changes: %d reports %v", chunks, len(got), got)
			case chunk > 0 && got[chunks].written >= total:
				t.Fatalf("reports %v: all written after the changes, before the changed list and reference counts", got)
			}

			// by its changes: one path changed
			it, _ := x.Get("d00/f0000.conf")
			it.Size++
			got = nil
			g2 := &Generation{Job: "j", State: StateGood, OnProgress: func(written, total int) {
				got = append(got, report{written, total})
			}}
			if _, err := s.AddGenerationChanges(ctx, g2, g.Number, []index.Item{it}, nil); err != nil {
				t.Fatal(err)
			}
			if want := []report{{1, 1}}; !reflect.DeepEqual(got, want) {
				t.Fatalf("record by its changes: reports %v, want %v", got, want)
			}
			back, err := s.Generation("j", g2.Number)
			if err != nil {
				t.Fatal(err)
			}
			if back.OnProgress != nil {
				t.Fatal("a generation read back has a progress hook")
			}
		})
	}
}
