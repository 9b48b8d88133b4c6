package wire

import (
	"math"
	"reflect"
	"testing"
)

// TestResultProgress: an applying Result carries its progress across;
// progress on another state, an unknown phase, more done than in all and
// a non-finite ETA are refused.
func TestResultProgress(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ok := range []*Result{
		{Job: "conf", Version: 4, State: "applying", Reason: "fetching 1/2 files",
			Progress: &Progress{Phase: PhaseFetching, Files: 1, FilesTotal: 2, Bytes: 10, BytesTotal: 20, ETA: 1.5}},
		// a record: changes written of all, no bytes
		{Job: "conf", Version: 4, State: "applying",
			Progress: &Progress{Phase: PhaseRecording, Files: 40000, FilesTotal: 100100, ETA: 1.2}},
		// a wait for room: free of needed, and the time to the next try
		{Job: "conf", Version: 4, State: "applying", Reason: "waiting for room on the file system",
			Progress: &Progress{Phase: PhaseWaiting, Files: 10, FilesTotal: 10, Bytes: 5, BytesTotal: 20, ETA: 299}},
	} {
		b, err := c.Encode(ok)
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, ok) {
			t.Fatalf("decoded %+v, want %+v", m, ok)
		}
	}
	for name, p := range map[string]Result{
		"progress on a good result": {Job: "conf", State: "good", Progress: &Progress{Phase: PhaseApplying}},
		"unknown phase":             {Job: "conf", State: "applying", Progress: &Progress{Phase: "dreaming"}},
		"more files than in all":    {Job: "conf", State: "applying", Progress: &Progress{Phase: PhaseApplying, Files: 3, FilesTotal: 2}},
		"more bytes than in all":    {Job: "conf", State: "applying", Progress: &Progress{Phase: PhaseApplying, Bytes: 3, BytesTotal: 2}},
		"eta below -1":              {Job: "conf", State: "applying", Progress: &Progress{Phase: PhaseApplying, ETA: -2}},
		"eta infinite":              {Job: "conf", State: "applying", Progress: &Progress{Phase: PhaseApplying, ETA: math.Inf(1)}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
