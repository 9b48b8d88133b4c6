// Command deltabench measures pbxsync's delta encodings against rsync on
// generated Asterisk data, in one run: bytes moved per edit case, compute
// throughput on a 100 MB file, block-size sweeps, and peak memory on a
// 1 GiB file (each operation in its own process, so that its maxrss is its
// own). It prints Markdown tables.
//
//	go run ./delta/cmd/deltabench            # full run, a few minutes
//	go run ./delta/cmd/deltabench -quick     # small sizes, for a smoke test
//
// It needs rsync on PATH (apt-get install -y rsync). rsync runs between two
// local directories through a fake remote shell, so it uses its delta
// algorithm (local-to-local rsync would copy whole files) and its --stats
// totals count every byte of its protocol.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pbxsync/delta"
	"pbxsync/internal/astgen"
	"pbxsync/internal/index"
)

// overhead is the allowance for what a pbxsync transfer needs besides the
// delta itself, to compare fairly with rsync's --stats totals (which
// include rsync's file list and protocol chatter): the index announcement
// of the item (~100 B: path, hash, size, mode, mtime, version vector), the
// target's request naming the base (~80 B), frame headers (~16 B). TLS,
// QUIC and SSH overheads are counted on neither side.
const overhead = 200

// sigOverhead is the extra allowance of the signature path: one more frame.
const sigOverhead = 16

func main() {
	quick := flag.Bool("quick", false, "small sizes (smoke test of the benchmark)")
	mem := flag.Bool("mem", true, "run the 1 GiB peak-memory measurement")
	sweep := flag.Bool("sweep", true, "run the block-size sweeps")
	tmp := flag.String("tmp", "", "directory for scratch files (default: a new temp dir)")
	md := flag.String("md", "", "also write the tables to this file")
	memop := flag.String("memop", "", "internal: run one operation for the memory measurement")
	flag.Parse()
	if *memop != "" {
		if err := runMemOp(*memop, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "deltabench:", err)
			os.Exit(1)
		}
		return
	}
	dir := *tmp
	if dir == "" {
		d, err := os.MkdirTemp("", "deltabench-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var out bytes.Buffer
	w := io.MultiWriter(os.Stdout, &out)
	b := &bench{dir: dir, quick: *quick, w: w}
	start := time.Now()
	if err := b.run(*mem, *sweep); err != nil {
		fatal(err)
	}
	fmt.Fprintf(w, "\nTotal benchmark time: %.0f s.\n", time.Since(start).Seconds())
	if *md != "" {
		if err := os.MkdirAll(filepath.Dir(*md), 0o755); err != nil {
			fatal(err)
		}
		if err := os.WriteFile(*md, out.Bytes(), 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "deltabench:", err)
	os.Exit(1)
}

type bench struct {
	dir   string
	quick bool
	w     io.Writer
	rsync *rsyncRunner
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(b.w, format, args...) }

func (b *bench) run(mem, sweep bool) error {
	r, err := newRsync(filepath.Join(b.dir, "rsync"))
	if err != nil {
		return err
	}
	b.rsync = r
	b.printf("## Bytes moved per change\n\n%s; pbxsync = encoded delta + %d B allowance per file (index announcement, request, frame headers); sig path = receiver signature + Diff delta + %d B.\n\n", r.version, overhead, overhead+sigOverhead)
	if err := b.cases(); err != nil {
		return err
	}
	if err := b.throughput(); err != nil {
		return err
	}
	if sweep {
		if err := b.sweeps(); err != nil {
			return err
		}
	}
	if mem {
		if err := b.memory(); err != nil {
			return err
		}
	}
	return nil
}

type edit struct {
	name string
	f    func(g *astgen.Gen, b []byte) []byte
}

var textEdits = []edit{
	{"change 1 line", func(g *astgen.Gen, b []byte) []byte { return g.ChangeLine(b) }},
	{"insert 100 lines mid", func(g *astgen.Gen, b []byte) []byte { return g.InsertLines(b, 100) }},
	{"append 40 lines", func(g *astgen.Gen, b []byte) []byte { return g.AppendLines(b, 40) }},
	{"delete 100-line block", func(g *astgen.Gen, b []byte) []byte { return g.DeleteLines(b, 100) }},
	{"reorder 2 contexts", func(g *astgen.Gen, b []byte) []byte { return g.SwapSections(b) }},
}

func (b *bench) cases() error {
	g := astgen.New(42)
	type file struct {
		name  string
		data  []byte
		edits []edit
	}
	scale := 1
	if b.quick {
		scale = 10
	}
	files := []file{
		{"extensions.conf 1k ext", g.Dialplan(1000 / scale), textEdits},
		{"extensions.conf 10k ext", g.Dialplan(10000 / scale), textEdits},
		{"extensions.conf 100k ext", g.Dialplan(100000 / scale), textEdits},
		{"pjsip.conf 10 endpoints", g.PJSIP(10), textEdits},
		{"pjsip.conf 10k endpoints", g.PJSIP(10000 / scale), textEdits},
		{"voicemail.conf 20k boxes", g.Voicemail(20000 / scale), textEdits},
		{"prompt.wav 8 kHz", g.WAV(5 << 20 / scale), []edit{{"change 5×≤4 bytes", func(g *astgen.Gen, b []byte) []byte { return g.PokeBytes(b, 5, 44) }}}},
		{"moh.gsm", g.GSM(5 << 20 / scale), []edit{{"change 5×≤4 bytes", func(g *astgen.Gen, b []byte) []byte { return g.PokeBytes(b, 5, 0) }}}},
	}
	b.printf("| file | size | change | rsync -z | pbxsync (encoding) | ratio | sig path | ratio |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
	var worst, worstSmall float64
	for _, f := range files {
		for _, e := range f.edits {
			target := e.f(g, f.data)
			rs, err := b.rsync.run(f.data, target)
			if err != nil {
				return fmt.Errorf("%s %s: %w", f.name, e.name, err)
			}
			res, n, err := b.encode(f.data, target)
			if err != nil {
				return fmt.Errorf("%s %s: %w", f.name, e.name, err)
			}
			sigN, err := sigPath(f.data, target, 0)
			if err != nil {
				return fmt.Errorf("%s %s: sig path: %w", f.name, e.name, err)
			}
			ours := n + overhead
			sp := sigN + overhead + sigOverhead
			ratio := float64(ours) / float64(rs.total)
			worst = max(worst, ratio)
			if len(f.data) >= 50<<10 && !strings.HasPrefix(f.name, "prompt") && !strings.HasPrefix(f.name, "moh") {
				worstSmall = max(worstSmall, ratio)
			}
			b.printf("| %s | %s | %s | %d | %d (%s) | %.3f | %d | %.2f |\n", f.name, size(len(f.data)), e.name, rs.total, ours, res.Kind, ratio, sp, float64(sp)/float64(rs.total))
		}
	}
	b.printf("\nWorst ratio pbxsync/rsync: %.3f overall, %.3f on configs of 50 KB–20 MB.\n", worst, worstSmall)
	return nil
}

// encode runs the base-aware path (Encode with files on disk) and checks
// the delta by patching; it returns the delta size.
func (b *bench) encode(base, target []byte) (delta.Result, int64, error) {
	bp, tp := filepath.Join(b.dir, "base"), filepath.Join(b.dir, "target")
	if err := os.WriteFile(bp, base, 0o644); err != nil {
		return delta.Result{}, 0, err
	}
	if err := os.WriteFile(tp, target, 0o644); err != nil {
		return delta.Result{}, 0, err
	}
	bf, closeB, err := open(bp)
	if err != nil {
		return delta.Result{}, 0, err
	}
	defer closeB()
	tf, closeT, err := open(tp)
	if err != nil {
		return delta.Result{}, 0, err
	}
	defer closeT()
	bf.Hash = index.Sum(base)
	var d bytes.Buffer
	res, err := delta.Encode(context.Background(), &d, &bf, tf, &delta.Options{TempDir: b.dir})
	if err != nil {
		return res, 0, err
	}
	if err := check(base, target, d.Bytes()); err != nil {
		return res, 0, err
	}
	return res, int64(d.Len()), nil
}

func open(path string) (delta.File, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return delta.File{}, nil, err
	}
	df, err := delta.OpenFile(f)
	if err != nil {
		f.Close()
		return delta.File{}, nil, err
	}
	return df, func() { f.Close() }, nil
}

// check patches base with d and compares with target.
func check(base, target, d []byte) error {
	var out bytes.Buffer
	bf := delta.BytesFile(base)
	bf.Hash = index.Sum(base)
	if _, err := delta.Patch(context.Background(), &out, &bf, bytes.NewReader(d), nil); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		return fmt.Errorf("patch: result differs")
	}
	return nil
}

// sigPath returns signature + Diff bytes with signature block size bs (0:
// default), checking the delta.
func sigPath(base, target []byte, bs int) (int64, error) {
	var sig bytes.Buffer
	ctx := context.Background()
	if _, err := delta.WriteSignature(ctx, &sig, delta.BytesFile(base), &delta.SignatureOptions{BlockSize: bs}); err != nil {
		return 0, err
	}
	n := int64(sig.Len())
	s, err := delta.ReadSignature(&sig, nil)
	if err != nil {
		return 0, err
	}
	var d bytes.Buffer
	if _, err := delta.Diff(ctx, &d, s, delta.BytesFile(target), nil); err != nil {
		return 0, err
	}
	if err := check(base, target, d.Bytes()); err != nil {
		return 0, err
	}
	return n + int64(d.Len()), nil
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
