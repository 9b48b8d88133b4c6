package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestSourceScanStoresWhatItReads: a source's scan stores the content it
// hashes in the same read, so storing the tree afterwards finds nothing
// to read again (it read every new file twice: the scan's hash, then the
// store). A target's scan stores nothing: its tree's content comes from
// the source.
func TestSourceScanStoresWhatItReads(t *testing.T) {
	t.Parallel()
	for _, source := range []bool{true, false} {
		t.Run(fmt.Sprintf("source=%v", source), func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "tree")
			for i := range 40 {
				p := filepath.Join(root, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%02d.conf", i))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(fmt.Sprintf("[endpoint-%d]\ntype=endpoint\n", i)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st, err := store.Open(filepath.Join(dir, "store"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			j := &job{a: &Agent{store: st}, cfg: config.Job{Name: "j", Path: root}, isSource: source, log: slog.New(slog.DiscardHandler)}
			ctx := context.Background()
			if err := j.scanAll(ctx); err != nil {
				t.Fatal(err)
			}
			var files []index.Item
			for _, s := range j.states.All() {
				if s.Kind == index.KindFile {
					files = append(files, s.Item)
				}
			}
			if len(files) != 40 {
				t.Fatalf("scanned %d files, want 40", len(files))
			}
			missing := j.missingBlobs(files)
			if source && len(missing) != 0 {
				t.Fatalf("after a source's scan the store lacks %d of 40 files' content (first %s): they would be read a second time", len(missing), missing[0].Path)
			}
			if !source && len(missing) != 40 {
				t.Fatalf("a target's scan stored %d files' content; want none", 40-len(missing))
			}
			if !source {
				return
			}
			// an edit: the rescan stores the new content, and what the store
			// holds for it is what the scan hashed
			edited := filepath.Join(root, "d1", "f05.conf")
			if err := os.WriteFile(edited, []byte("edited, and longer than before\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := j.scanPaths(ctx, []string{"d1/f05.conf"}); err != nil {
				t.Fatal(err)
			}
			edit, _ := j.states.Get("d1/f05.conf")
			it := edit.Item
			if it.Hash != index.Sum([]byte("edited, and longer than before\n")) {
				t.Fatalf("rescan hashed %s", it.Hash.Short())
			}
			var got []byte
			rc, err := st.Open(ctx, it.Hash)
			if err != nil {
				t.Fatalf("the edited content is not in the store after the rescan: %v", err)
			}
			defer rc.Close()
			buf := make([]byte, 100)
			n, _ := rc.Read(buf)
			got = buf[:n]
			if string(got) != "edited, and longer than before\n" {
				t.Fatalf("store holds %q", got)
			}
		})
	}
}
