package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"pbxsync/delta"
	"pbxsync/internal/astgen"
)

// memResult is what a -memop child reports.
type memResult struct {
	Op         string  `json:"op"`
	WallS      float64 `json:"wall_s"`
	CPUS       float64 `json:"cpu_s"`
	MaxRSSKB   int64   `json:"maxrss_kb"`
	PeakHeapMB float64 `json:"peak_heap_inuse_mb"`
	PeakSysMB  float64 `json:"peak_sys_mb"`
	Bytes      int64   `json:"bytes"`
	Kind       string  `json:"kind,omitempty"`
}

// memory builds a 1 GiB base and a target with 1000 scattered edits on
// disk and runs each operation in a child process.
func (b *bench) memory() error {
	bigSize := int64(1 << 30)
	if b.quick {
		bigSize = 64 << 20
	}
	base, target := filepath.Join(b.dir, "big.base"), filepath.Join(b.dir, "big.target")
	defer os.Remove(base)
	defer os.Remove(target)
	if err := writeBig(base, target, bigSize); err != nil {
		return err
	}
	d1, d2, sig := filepath.Join(b.dir, "big.delta"), filepath.Join(b.dir, "big.delta2"), filepath.Join(b.dir, "big.sig")
	out := filepath.Join(b.dir, "big.out")
	defer os.Remove(d1)
	defer os.Remove(d2)
	defer os.Remove(sig)
	defer os.Remove(out)
	b.printf("\n## Peak memory on a %s file\n\nBase: pseudo-random bytes (the worst case: every block distinct, nothing compresses); target: the base with 1000 scattered edits (overwrite, insert, delete). The last two rows: dict-zstd at its size limit. Each operation runs in its own process; maxrss = VmHWM of /proc/self/status, heap and Sys peaks sampled from runtime.MemStats every 5 ms.\n\n| operation | wall | CPU | maxrss | peak heap in use | Go Sys | output |\n|---|---:|---:|---:|---:|---:|---:|\n", size2(bigSize))
	// dict-zstd at its size limit: an 8 MiB dialplan with one line changed.
	g := astgen.New(5)
	db := g.Dialplan(1)
	for len(db) < delta.DefaultDictMaxSize-(64<<10) {
		db = append(db, g.Dialplan(2000)...)
	}
	db = db[:delta.DefaultDictMaxSize-(64<<10)]
	dbase, dtarget, dd := filepath.Join(b.dir, "dict.base"), filepath.Join(b.dir, "dict.target"), filepath.Join(b.dir, "dict.delta")
	defer os.Remove(dbase)
	defer os.Remove(dtarget)
	defer os.Remove(dd)
	if err := os.WriteFile(dbase, db, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(dtarget, g.ChangeLine(db), 0o644); err != nil {
		return err
	}
	ops := [][]string{
		{"encode", base, target, d1},
		{"signature", base, sig},
		{"diff", sig, target, d2},
		{"patch", base, d1, out},
		{"patch", base, d2, out},
		{"encode-dict", dbase, dtarget, dd},
		{"patch", dbase, dd, out},
	}
	names := []string{"Encode (base-aware, sender)", "WriteSignature (receiver)", "ReadSignature + Diff (sender)", "Patch of the Encode delta", "Patch of the Diff delta",
		fmt.Sprintf("EncodeKind dict-zstd, %s dialplan (the dict limit)", size(len(db))), "Patch of the dict-zstd delta"}
	for i, op := range ops {
		cmd := exec.Command(os.Args[0], append([]string{"-memop", op[0]}, op[1:]...)...)
		cmd.Stderr = os.Stderr
		o, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("memop %s: %w", op[0], err)
		}
		var r memResult
		if err := json.Unmarshal(o, &r); err != nil {
			return fmt.Errorf("memop %s: %w: %s", op[0], err, o)
		}
		kind := ""
		if r.Kind != "" {
			kind = " (" + r.Kind + ")"
		}
		b.printf("| %s | %.1f s | %.1f s | %.1f MB | %.1f MB | %.1f MB | %d B%s |\n", names[i], r.WallS, r.CPUS, float64(r.MaxRSSKB)/1024, r.PeakHeapMB, r.PeakSysMB, r.Bytes, kind)
	}
	return nil
}

func size2(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// writeBig writes size pseudo-random bytes to base and the same with 1000
// scattered edits to target, streaming.
func writeBig(base, target string, size int64) error {
	fb, err := os.Create(base)
	if err != nil {
		return err
	}
	defer fb.Close()
	ft, err := os.Create(target)
	if err != nil {
		return err
	}
	defer ft.Close()
	wb, wt := bufio.NewWriterSize(fb, 1<<20), bufio.NewWriterSize(ft, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	edits := int64(1000)
	every := size / edits
	for off := int64(0); off < size; off += chunk {
		for i := 0; i < chunk; i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
		}
		if _, err := wb.Write(buf); err != nil {
			return err
		}
		// Edits that fall in this chunk.
		t := buf
		for e := (off + every - 1) / every * every; e < off+chunk; e += every {
			at := int(e - off)
			if at+64 > len(t) {
				break
			}
			switch r.IntN(3) {
			case 0:
				for k := range 4 {
					t[at+k] ^= 0x5a
				}
			case 1:
				t = append(t[:at:at], append(make([]byte, 50), t[at:]...)...)
			default:
				t = append(t[:at:at], t[at+50:]...)
			}
		}
		if _, err := wt.Write(t); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return wt.Flush()
}

// vmHWM returns the process's peak resident set in KiB from
// /proc/self/status. (getrusage's ru_maxrss would do, but Linux carries it
// over fork and exec, so a child would report its parent's peak.)
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// runMemOp is the child side: run one operation and print a memResult.
func runMemOp(op string, args []string) error {
	var (
		mu                sync.Mutex
		peakHeap, peakSys uint64
		stop              = make(chan struct{})
		done              = make(chan struct{})
	)
	go func() {
		defer close(done)
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peakHeap, peakSys = max(peakHeap, ms.HeapInuse), max(peakSys, ms.Sys)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	ctx := context.Background()
	res := memResult{Op: op}
	c0, t0 := selfCPU(), time.Now()
	openF := func(p string) (delta.File, *os.File, error) {
		f, err := os.Open(p)
		if err != nil {
			return delta.File{}, nil, err
		}
		df, err := delta.OpenFile(f)
		return df, f, err
	}
	create := func(p string) (*os.File, *bufio.Writer, error) {
		f, err := os.Create(p)
		return f, bufio.NewWriterSize(f, 256<<10), err
	}
	var err error
	switch op {
	case "encode", "encode-dict", "diff":
		if len(args) != 3 {
			return fmt.Errorf("%s: want 3 paths", op)
		}
		tf, tfile, e := openF(args[1])
		if e != nil {
			return e
		}
		defer tfile.Close()
		of, ow, e := create(args[2])
		if e != nil {
			return e
		}
		defer of.Close()
		var r delta.Result
		if op != "diff" {
			bf, bfile, e := openF(args[0])
			if e != nil {
				return e
			}
			defer bfile.Close()
			if op == "encode" {
				r, err = delta.Encode(ctx, ow, &bf, tf, &delta.Options{TempDir: filepath.Dir(args[2])})
			} else {
				r, err = delta.EncodeKind(ctx, ow, delta.KindDictZstd, &bf, tf, nil)
			}
		} else {
			sf, e := os.Open(args[0])
			if e != nil {
				return e
			}
			defer sf.Close()
			s, e := delta.ReadSignature(bufio.NewReaderSize(sf, 256<<10), nil)
			if e != nil {
				return e
			}
			r, err = delta.Diff(ctx, ow, s, tf, &delta.Options{TempDir: filepath.Dir(args[2])})
		}
		if err == nil {
			err = ow.Flush()
		}
		res.Bytes, res.Kind = r.Size, r.Kind.String()
	case "signature":
		if len(args) != 2 {
			return fmt.Errorf("signature: want 2 paths")
		}
		bf, bfile, e := openF(args[0])
		if e != nil {
			return e
		}
		defer bfile.Close()
		of, ow, e := create(args[1])
		if e != nil {
			return e
		}
		defer of.Close()
		res.Bytes, err = delta.WriteSignature(ctx, ow, bf, nil)
		if err == nil {
			err = ow.Flush()
		}
	case "patch":
		if len(args) != 3 {
			return fmt.Errorf("patch: want 3 paths")
		}
		bf, bfile, e := openF(args[0])
		if e != nil {
			return e
		}
		defer bfile.Close()
		df, e := os.Open(args[1])
		if e != nil {
			return e
		}
		defer df.Close()
		of, ow, e := create(args[2])
		if e != nil {
			return e
		}
		defer of.Close()
		var h delta.Header
		h, err = delta.Patch(ctx, ow, &bf, bufio.NewReaderSize(df, 256<<10), nil)
		if err == nil {
			err = ow.Flush()
		}
		res.Bytes, res.Kind = h.ResultSize, h.Kind.String()
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	if err != nil {
		return err
	}
	res.WallS, res.CPUS = time.Since(t0).Seconds(), (selfCPU() - c0).Seconds()
	close(stop)
	<-done
	res.MaxRSSKB = vmHWM()
	res.PeakHeapMB, res.PeakSysMB = float64(peakHeap)/(1<<20), float64(peakSys)/(1<<20)
	return json.NewEncoder(os.Stdout).Encode(res)
}
