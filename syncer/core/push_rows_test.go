package core

import (
	"fmt"
	"testing"
)

// TestRowsNext covers every row of RowsTarget.Next's table: generations
// 1 (snapshot), 2 on 1, 3 on 2, 4 on 3 (content of 3 not stored), 5 on 4.
func TestRowsNext(t *testing.T) {
	gens := []RowsGen{{Number: 1, Snapshot: true}, {Number: 2, Base: 1}, {Number: 3, Base: 2}, {Number: 4, Base: 3}, {Number: 5, Base: 4}}
	stored := func(n uint64) bool { return n != 3 }
	latest := gens[4]
	for _, c := range []struct {
		name        string
		t           RowsTarget
		latest      RowsGen
		want        RowsNext
		wantPending bool
	}{
		{"no generation yet", RowsTarget{}, RowsGen{}, RowsNext{}, false},
		{"answered good for the newest", RowsTarget{Known: true, Have: 2, Answer: answered(5, StateGood)}, latest, RowsNext{}, false},
		{"refused the newest: wait for a change", RowsTarget{Known: true, Have: 2, Answer: answered(5, StateBad)}, latest, RowsNext{}, false},
		{"not known: the newest", RowsTarget{}, latest, RowsNext{Gen: 5}, false},
		{"not known, applying an older one: the newest", RowsTarget{Answer: answered(4, StateApplying)}, latest, RowsNext{Gen: 5}, false},
		{"holds the newest", RowsTarget{Known: true, Have: 5}, latest, RowsNext{}, false},
		{"the chain from what it holds", RowsTarget{Known: true, Have: 1}, latest, RowsNext{Gen: 2}, false},
		{"a rejected link is not sent again", RowsTarget{Known: true, Have: 1, Rejected: map[uint64]bool{2: true}, Pending: true}, latest, RowsNext{Snapshot: true}, false},
		{"a link whose content is gone breaks the chain: the newest", RowsTarget{Known: true, Have: 2}, latest, RowsNext{Gen: 5}, false},
		{"the newest is a snapshot after what it holds", RowsTarget{Known: true, Have: 2, Pending: true}, RowsGen{Number: 6, Snapshot: true}, RowsNext{Gen: 6}, true},
		{"a new snapshot when it cannot follow on", RowsTarget{Known: true, Have: 2, Pending: true}, latest, RowsNext{Snapshot: true}, false},
	} {
		n, got := c.t.Next(c.latest, gens, stored)
		if got != c.want || n.Pending != c.wantPending {
			t.Errorf("%s: Next = %+v (pending %v), want %+v (pending %v)", c.name, got, n.Pending, c.want, c.wantPending)
		}
	}
}

// TestRowsTargetStep covers every row of RowsTarget.Step's table.
func TestRowsTargetStep(t *testing.T) {
	str := func(t RowsTarget, o Outcome) string {
		a := "-"
		if t.Answer != nil {
			a = fmt.Sprintf("%s@%d", t.Answer.State, t.Answer.Version)
		}
		return fmt.Sprintf("have=%d known=%v sent=%d at=%d answer=%s pending=%v rejected=%v | rejected=%v record=%v again=%v force=%v",
			t.Have, t.Known, t.Sent, t.SentAt, a, t.Pending, t.Rejected, o.Rejected, o.Record, o.Again, o.Force)
	}
	base := RowsTarget{Have: 2, Known: true, Sent: 4, SentAt: 7, Answer: answered(3, StateGood), Rejected: map[uint64]bool{1: true}}
	for _, c := range []struct {
		name string
		e    TargetEvent
		want string
	}{
		{"sent", Sent{Version: 5, Time: 9},
			"have=2 known=true sent=5 at=9 answer=good@3 pending=false rejected=map[1:true] | rejected=false record=false again=false force=false"},
		{"has: it cannot follow on", Has{Version: 3},
			"have=3 known=true sent=4 at=0 answer=- pending=true rejected=map[1:true] | rejected=false record=false again=true force=true"},
		{"good", Answered{Answer: Answer{Version: 4, State: StateGood}},
			"have=4 known=true sent=4 at=7 answer=good@4 pending=false rejected=map[1:true] | rejected=false record=true again=true force=false"},
		{"bad", Answered{Answer: Answer{Version: 4, State: StateBad}},
			"have=2 known=true sent=4 at=7 answer=bad@4 pending=false rejected=map[1:true 4:true] | rejected=true record=true again=true force=false"},
		{"applying", Answered{Answer: Answer{Version: 4, State: StateApplying}},
			"have=2 known=true sent=4 at=7 answer=applying@4 pending=false rejected=map[1:true] | rejected=false record=true again=true force=false"},
		{"returned", Returned{},
			"have=2 known=true sent=4 at=0 answer=good@3 pending=false rejected=map[1:true] | rejected=false record=false again=true force=false"},
		{"returned before the last announcement went out", Returned{Time: 7},
			"have=2 known=true sent=4 at=7 answer=good@3 pending=false rejected=map[1:true] | rejected=false record=false again=false force=false"},
		{"returned after it", Returned{Time: 8},
			"have=2 known=true sent=4 at=0 answer=good@3 pending=false rejected=map[1:true] | rejected=false record=false again=true force=false"},
	} {
		n, o := base.Step(c.e)
		if got := str(n, o); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if len(base.Rejected) != 1 {
		t.Error("Step changed the rejected set of the state it was given")
	}
}

// TestStartRows: what a postgres target finds at start, newest first.
func TestStartRows(t *testing.T) {
	g := func(n uint64, state string, v uint64) RowsRecord {
		return RowsRecord{Number: n, State: state, SourceVersion: v}
	}
	for _, c := range []struct {
		name string
		recs []RowsRecord
		have uint64
		want string
	}{
		{"nothing recorded", nil, 0, "{0 [] 0 0}"},
		{"the newest good holds what the database holds", []RowsRecord{g(1, StateGood, 3), g(2, StateGood, 5)}, 5, "{2 [] 0 0}"},
		{"the newest good is not what the database holds", []RowsRecord{g(1, StateGood, 3), g(2, StateGood, 5)}, 4, "{0 [] 0 0}"},
		{"bad ones above the newest good are passed over", []RowsRecord{g(1, StateGood, 3), g(2, StateBad, 5)}, 3, "{1 [] 0 0}"},
		{"committed before a restart: its checks run, revert to the good one before",
			[]RowsRecord{g(1, StateGood, 3), g(2, StateBad, 4), g(3, StateApplying, 5)}, 5, "{0 [] 3 3}"},
		{"not committed: abandoned, the search goes on",
			[]RowsRecord{g(1, StateGood, 3), g(2, StateApplying, 5), g(3, StateApplying, 6)}, 3, "{1 [3 2] 0 0}"},
		{"an abandoned one above a committed one",
			[]RowsRecord{g(1, StateGood, 3), g(2, StateApplying, 5), g(3, StateApplying, 6)}, 5, "{0 [3] 2 3}"},
		{"committed with no good one before", []RowsRecord{g(1, StateApplying, 1)}, 1, "{0 [] 1 0}"},
	} {
		if got := fmt.Sprint(StartRows(c.recs, c.have)); got != c.want {
			t.Errorf("%s: StartRows = %s, want %s", c.name, got, c.want)
		}
	}
}
