package syncer

import (
	"context"
	"slices"
	"strings"
	"time"

	"pbxsync/hostmon"
)

// writingMax is how long a job waits for a file open for writing to be
// closed before it syncs the file's content as it is (a file some
// process writes without end); it then waits again from that scan.
const writingMax = 5 * time.Minute

// A file some process has open for writing (a copy, an upload that
// paused for longer than the watcher's debounce, a voicemail being
// recorded) is not synced half-written: the job's scans leave it at its
// last known state (hostmon.WithOpenForWriting; a new file stays absent),
// and the job scans it again every second (retryWriting) until it is
// closed, or has not been written for a minute, or writingMax has passed.
// j.writing holds those files and since when the job has waited on each.

// scanWritingOption returns the scan option that leaves files open for
// writing alone, but those waited on for writingMax.
func (j *job) scanWritingOption(now time.Time) hostmon.ScanOption {
	var anyway map[string]bool
	for p, since := range j.writing {
		if now.Sub(since) >= writingMax {
			if anyway == nil {
				anyway = map[string]bool{}
			}
			anyway[p] = true
			j.log.Warn("a file has been open for writing too long to wait on; syncing its content as it is", "path", p, "waited", writingMax)
		}
	}
	return hostmon.WithOpenForWriting(anyway)
}

// takeWriting brings j.writing up to date with a scan of scope (nil: the
// whole tree) that found the files of busy open for writing.
func (j *job) takeWriting(busy, scope []string, now time.Time) {
	if len(j.writing) == 0 && len(busy) == 0 {
		return
	}
	var in map[string]bool
	if scope != nil {
		in = make(map[string]bool, len(scope))
		for _, p := range scope {
			in[strings.TrimSuffix(p, "/")] = true
		}
	}
	for p := range j.writing {
		if _, still := slices.BinarySearch(busy, p); !still && (scope == nil || underSet(p, in)) {
			delete(j.writing, p)
			j.log.Debug("a file open for writing was closed (or is synced as it is)", "path", p)
		}
	}
	for _, p := range busy {
		if _, known := j.writing[p]; !known {
			if j.writing == nil {
				j.writing = map[string]time.Time{}
			}
			j.writing[p] = now
			j.log.Info("a file is open for writing; syncing it once it is closed", "path", p)
		}
	}
	list := make([]string, 0, len(j.writing))
	for p, since := range j.writing {
		list = append(list, p+": open for writing since "+since.UTC().Format(time.RFC3339))
	}
	slices.Sort(list)
	j.setStatus(func(s *JobStatus) { s.Writing = list })
}

// retryWriting scans the files open for writing again.
func (j *job) retryWriting(ctx context.Context) {
	if len(j.writing) == 0 {
		return
	}
	paths := make([]string, 0, len(j.writing))
	for p := range j.writing {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	j.onLocalChange(ctx, hostmon.Change{Paths: paths})
}
