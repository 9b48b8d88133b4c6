package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 325749: "325,749", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestP50(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{{nil, 0}, {ms(5), 5 * time.Millisecond}, {ms(300, 10, 20), 20 * time.Millisecond}, {ms(4, 1, 3, 2), 3 * time.Millisecond}} {
		if got := p50(c.in); got != c.want {
			t.Errorf("p50(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRsyncStatsParse(t *testing.T) {
	out := "Number of files: 1 (reg: 1)\nTotal bytes sent: 9,106\nTotal bytes received: 1,234\n"
	var sent, recv string
	for _, m := range rsyncStat.FindAllStringSubmatch(out, -1) {
		if m[1] == "sent" {
			sent = m[2]
		} else {
			recv = m[2]
		}
	}
	if sent != "9,106" || recv != "1,234" {
		t.Fatalf("parsed sent %q received %q", sent, recv)
	}
}

func TestReportPrintsRatiosAndGoals(t *testing.T) {
	r := &report{started: time.Now(), opts: options{dirs: 100, edits: 3, idle: time.Second},
		scale: &initialSync{files: 100000, rsync: 10 * time.Second, rsyncFlush: 5 * time.Second, pbxsync: 300 * time.Second, disk: 400 << 20, srcStore: 600 << 20, tgtStore: 600 << 20,
			srcPeak: 80_635_494, tgtPeak: 70 << 20},
		editBig: []time.Duration{400 * time.Millisecond, 5 * time.Second, 5 * time.Second}, editSmall: []time.Duration{50 * time.Millisecond},
		editIdle: []time.Duration{900 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond},
		wire:     []wireEdit{{sizeMB: 5, name: "one line changed (first edit after the initial sync)", pbxsync: 325749, rsync: 18830}},
		mixed: &initialSync{files: 20, rsync: 600 * time.Millisecond, rsyncAfter: 1400 * time.Millisecond, pbxsync: 4 * time.Second, quicFloor: 1300 * time.Millisecond, quicFloorApart: 2100 * time.Millisecond,
			srcCPU: 2 * time.Second, tgtCPU: 3 * time.Second, rsyncCPU: 1250 * time.Millisecond}}
	var b bytes.Buffer
	r.print(&b)
	for _, want := range []string{"| 30.00× | ≤ 1.5× |", "| 20.00× | — |", "| 100.00× | ≤ 1.5× |", "1.50×, 1.50× | ≤ 1.2×", "325,749", "17.30× | ≤ 0.1×",
		"| the first of those edits, after the agents were idle 1s | 400 ms | the 10-file job's p50: 50 ms | 8.00× |",
		"(3 edits) | 300 ms (all: 900, 100, 300 ms) | the 10-file job's p50: 50 ms | 6.00× |",
		"| 4.00× | ≤ 1.0× |", "| source 2.00 s + target 3.00 s = 5.00 s | rsync client and daemon (run before): 1.25 s | 4.00× | — |", "both ends in one process, from memory to nothing, fastest of 3 | 1.30 s | `rsync -a` as above: 1.00 s | 1.30× | — |",
		"(the least a sync between two agents over this QUIC stack takes here) | 2.10 s | `rsync -a` as above: 1.00 s | 2.10× | — |",
		// 76.9 MiB is over 80 MB; the mixed tree's agents (no peaks set) are under
		"| source 76.9 MiB, target 70.0 MiB | rsync client 0.0 KiB, daemon 0.0 KiB | larger: 80.6 MB, OVER the goal | ≤ 80 MB per agent |",
		"| source 0.0 KiB, target 0.0 KiB | rsync client 0.0 KiB, daemon 0.0 KiB | larger: 0.0 MB, under the goal | ≤ 80 MB per agent |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
