package hostmon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// TestScanSinkTakesEachReadOnce: with WithSink every file the scan reads
// goes through the sink exactly once, whole, and the scan records the hash
// the sink returned; a rescan that trusts a file's stat does not read it;
// a sink's own failure fails the scan instead of marking the file
// unreadable.
func TestScanSinkTakesEachReadOnce(t *testing.T) {
	root := t.TempDir()
	want := map[string]string{}
	for i := range 12 {
		rel := fmt.Sprintf("d%d/f%02d.conf", i%3, i)
		content := strings.Repeat(fmt.Sprintf("line %d\n", i), 1+i*4000) // up to ~350 KB: several reads
		writeFile(t, root, rel, content, 0o644)
		want[rel] = content
	}
	waitUntrusted()
	got := map[string]int{}
	var mu sync.Mutex // files are read in parallel
	sink := func(r io.Reader) (index.Hash, int64, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return index.Hash{}, 0, err
		}
		mu.Lock()
		defer mu.Unlock()
		for rel, c := range want {
			if c == string(b) {
				got[rel]++
			}
		}
		return index.Sum(b), int64(len(b)), nil
	}
	ctx := context.Background()
	d, err := ScanTreeDelta(ctx, root, nil, []string{""}, nil, nil, WithSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	for rel, c := range want {
		if got[rel] != 1 {
			t.Fatalf("%s went through the sink %d times whole; want once", rel, got[rel])
		}
		if st := d.States[rel]; st.Hash != index.Sum([]byte(c)) || st.Size != int64(len(c)) {
			t.Fatalf("%s recorded as %s/%d", rel, st.Hash.Short(), st.Size)
		}
	}

	// a rescan over the same tree trusts every stat: nothing is read
	clear(got)
	if _, err := ScanTreeDelta(ctx, root, nil, []string{""}, d.States, nil, WithSink(sink)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a rescan of an unchanged tree read %v", got)
	}

	// the sink fails (a full store): the scan fails and names the file
	broken := errors.New("no space left on device")
	_, err = ScanTreeDelta(ctx, root, nil, []string{"d1/f04.conf"}, nil, nil, WithSink(func(r io.Reader) (index.Hash, int64, error) {
		io.Copy(io.Discard, r)
		return index.Hash{}, 0, broken
	}))
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "d1/f04.conf") {
		t.Fatalf("scan with a failing sink: %v; want the sink's error naming the file", err)
	}
}

// TestScanReadsFilesInParallel: the files of a directory are read (and
// handed to the sink: a source's store) more than one at a time, so a
// scan of many new files is not one file's read and compression after
// another. The first read waits for a second one to start; the 60 s only
// bound a hang.
func TestScanReadsFilesInParallel(t *testing.T) {
	root := t.TempDir()
	for i := range 8 {
		writeFile(t, root, fmt.Sprintf("d/f%d.conf", i), fmt.Sprintf("file %d\n", i), 0o644)
	}
	var mu sync.Mutex
	active, most, calls := 0, 0, 0
	second := make(chan struct{})
	sink := func(r io.Reader) (index.Hash, int64, error) {
		mu.Lock()
		active++
		calls++
		first := calls == 1
		if active == 2 && most < 2 {
			close(second)
		}
		most = max(most, active)
		mu.Unlock()
		if first {
			select {
			case <-second:
			case <-time.After(60 * time.Second):
			}
		}
		b, err := io.ReadAll(r)
		mu.Lock()
		active--
		mu.Unlock()
		return index.Sum(b), int64(len(b)), err
	}
	d, err := ScanTreeDelta(context.Background(), root, nil, []string{""}, nil, nil, WithSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.States) != 9 {
		t.Fatalf("%d states, want 9", len(d.States))
	}
	if most < 2 {
		t.Fatal("one file read at a time; want more than one")
	}
}
