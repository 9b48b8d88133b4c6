package delta

import (
	"bytes"
	"context"
	"testing"

	"pbxsync/delta/internal/astgen"
)

func TestSmoke(t *testing.T) {
	g := astgen.New(1)
	for _, n := range []int{1000, 10000} {
		base := g.Dialplan(n)
		for name, nw := range map[string][]byte{"line": g.ChangeLine(base), "ins": g.InsertLines(base, 100), "swap": g.SwapSections(base), "same": base, "empty": nil} {
			for _, k := range []Kind{0, KindRaw, KindZstd, KindDictZstd, KindBlocks, KindBlocksZstd} {
				var buf bytes.Buffer
				bf := BytesFile(base)
				var res Result
				var err error
				if k == 0 {
					res, err = Encode(context.Background(), &buf, &bf, BytesFile(nw), nil)
				} else {
					res, err = EncodeKind(context.Background(), &buf, k, &bf, BytesFile(nw), nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if _, err := Patch(context.Background(), &out, &bf, bytes.NewReader(buf.Bytes()), nil); err != nil {
					t.Fatalf("%d %s %v: %v", n, name, k, err)
				}
				if !bytes.Equal(out.Bytes(), nw) {
					t.Fatalf("%d %s %v: mismatch", n, name, k)
				}
				t.Logf("%d %-5s %-12v -> %v size %d tried %v", len(base), name, k, res.Kind, res.Size, res.Tried)
			}
		}
	}
}
