package core

import "testing"

// TestJudge covers every row of push_failure.go's table.
func TestJudge(t *testing.T) {
	for _, c := range []struct {
		f    Failure
		want Judgement
	}{
		{ApplyFailed, Judgement{}},
		{RenderFailed, Judgement{Blacklist: true, Answer: StateBad}},
		{ChecksFailed, Judgement{Blacklist: true, Answer: StateBad}},
		{ChecksFailHere, Judgement{Answer: StateBad}},
		{AsteriskUnavailable, Judgement{Answer: StateApplying}},
		{RowsRefused, Judgement{Blacklist: true, Answer: StateBad}},
	} {
		if got := Judge(c.f); got != c.want {
			t.Errorf("Judge(%d) = %+v, want %+v", c.f, got, c.want)
		}
	}
}
