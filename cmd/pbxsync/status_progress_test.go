package main

import (
	"bytes"
	"strings"
	"testing"

	"pbxsync/syncer"
)

// TestPrintStatusShowsProgress: `pbxsync status` prints a target's own
// progress under the jobs (its fetch of what the source offers before its
// first generation, and its record of a generation, among them), a
// source's scan for a new generation and its record of it, and
// on a source each target's reported progress in its row, in place of the
// reason.
func TestPrintStatusShowsProgress(t *testing.T) {
	st := &syncer.Status{Node: "b", Jobs: []syncer.JobStatus{
		{Name: "sounds", Role: "target", Source: "a", State: "applying",
			Progress: &syncer.Progress{Generation: 3, Phase: "fetching", Files: 12, FilesTotal: 100, Bytes: 3 << 20, BytesTotal: 24 << 20, ETASeconds: 75}},
		{Name: "conf", Role: "source", Generation: 5, Rollout: "0/1 targets have generation 5", Targets: []syncer.TargetStatus{
			{Name: "c", Version: 5, State: "applying", Reason: "stale text", Progress: &syncer.Progress{Generation: 5, Phase: "applying", Files: 7, FilesTotal: 9, Bytes: 700, BytesTotal: 900, ETASeconds: -1}}}},
		{Name: "moh", Role: "source", State: "starting",
			Progress: &syncer.Progress{Phase: syncer.PhaseScanning, Files: 5000, FilesTotal: 5000, Bytes: 3 << 30, BytesTotal: 3 << 30, ETASeconds: -1}},
		{Name: "sip", Role: "source", State: "starting",
			Progress: &syncer.Progress{Phase: "recording", Files: 16384, FilesTotal: 100100, ETASeconds: 2}},
		{Name: "agi", Role: "target", Source: "a", State: "applying",
			Progress: &syncer.Progress{Generation: 2, Phase: "recording", Files: 0, FilesTotal: 100100, ETASeconds: -1}},
		{Name: "voicemail", Role: "target", Source: "a", State: "waiting",
			Progress: &syncer.Progress{Phase: "fetching", Files: 40, FilesTotal: 52, Bytes: 40 << 10, BytesTotal: 52 << 10, ETASeconds: -1, Offered: true}},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	for _, want := range []string{
		"sounds: generation 3 from a: fetching 12/100 files, 3.0 MiB/24.0 MiB, ETA 1m15s",
		"applying  0       applying 7/9 files, 700 B/900 B, ETA unknown",
		"moh: scanning for a new generation: 5000 files read and stored, 3.0 GiB so far",
		"sip: recording the new generation in the store: 16384/100100 changes recorded, ETA 2s",
		"agi: generation 2 from a: recording it in the store: 0/100100 changes recorded, ETA unknown",
		"voicemail: the first generation from a, as it offers it: fetching 40/52 files, 40.0 KiB/52.0 KiB, ETA unknown: the source still scans and offers more",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "stale text") {
		t.Errorf("the reason shows instead of the progress:\n%s", out.String())
	}
}

// TestPrintStatusShowsWriting: `pbxsync status` names the files a job
// waits on because some process has them open for writing.
func TestPrintStatusShowsWriting(t *testing.T) {
	st := &syncer.Status{Node: "a", Jobs: []syncer.JobStatus{
		{Name: "voicemail", Role: "source", Generation: 4, Writing: []string{"default/1234/INBOX/msg0001.wav: open for writing since 2026-12-03T20:10:00Z"}},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	if want := "voicemail: waiting until it is closed: default/1234/INBOX/msg0001.wav: open for writing since 2026-12-03T20:10:00Z"; !strings.Contains(out.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, out.String())
	}
}

// TestPrintStatusShowsVia: a target reached through its site's relay shows
// the relay beside its name.
func TestPrintStatusShowsVia(t *testing.T) {
	st := &syncer.Status{Node: "a", Jobs: []syncer.JobStatus{
		{Name: "conf", Role: "source", Generation: 2, Rollout: "2/2 targets have generation 2", Targets: []syncer.TargetStatus{
			{Name: "b", Version: 2, State: "good"}, {Name: "c", Version: 2, State: "good", Via: "b"}}},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	if !strings.Contains(out.String(), "  c via b  ") || strings.Contains(out.String(), "b via") {
		t.Errorf("status:\n%s", out.String())
	}
}
