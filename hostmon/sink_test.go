package hostmon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

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
	sink := func(r io.Reader) (index.Hash, int64, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return index.Hash{}, 0, err
		}
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
