package backup

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scheduled archives are named JOB-YYYYMMDDTHHMMSSZ-gN.tar.zst in their
// directory: the time they were written (UTC) and the generation. The
// names are the schedule's whole state: it survives restarts and an
// admin's deleting or adding files.
const (
	Ext        = ".tar.zst"
	nameLayout = "20060102T150405Z"
)

// Name is the file name of job's scheduled archive of generation gen
// written at t.
func Name(job string, gen uint64, t time.Time) string {
	return fmt.Sprintf("%s-%s-g%d%s", job, t.UTC().Format(nameLayout), gen, Ext)
}

// Scheduled is one scheduled archive found in a directory.
type Scheduled struct {
	Name       string
	Time       time.Time
	Generation uint64
}

// ParseName parses a name Name made for job; ok is false for any other
// file (another job's, a temporary file, an admin's).
func ParseName(job, name string) (s Scheduled, ok bool) {
	rest, found := strings.CutPrefix(name, job+"-")
	if !found {
		return s, false
	}
	if rest, found = strings.CutSuffix(rest, Ext); !found {
		return s, false
	}
	ts, g, found := strings.Cut(rest, "-g")
	if !found {
		return s, false
	}
	t, err := time.Parse(nameLayout, ts)
	if err != nil {
		return s, false
	}
	n, err := strconv.ParseUint(g, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != g {
		return s, false
	}
	return Scheduled{Name: name, Time: t, Generation: n}, true
}

// Plan decides, from the names in a job's backup directory, whether an
// archive is due at now (none yet, or the newest is every old or more, or
// dated in the future: a clock set back) and which archives to delete so
// that keep remain once the due one is written (oldest first).
func Plan(job string, names []string, every time.Duration, keep int, now time.Time) (due bool, remove []string) {
	var have []Scheduled
	for _, n := range names {
		if s, ok := ParseName(job, n); ok {
			have = append(have, s)
		}
	}
	sort.Slice(have, func(i, k int) bool { return have[i].Time.Before(have[k].Time) })
	due = len(have) == 0
	if !due {
		newest := have[len(have)-1].Time
		due = now.Sub(newest) >= every || newest.After(now.Add(time.Minute))
	}
	left := keep
	if due {
		left--
	}
	for i := 0; i < len(have)-max(left, 0); i++ {
		remove = append(remove, have[i].Name)
	}
	return due, remove
}
