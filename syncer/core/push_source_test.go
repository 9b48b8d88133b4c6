package core

import (
	"fmt"
	"strings"
	"testing"
)

// The tables below are the push source's protocol: a round over the
// targets in the job's order, written as describeRound prints it:
//
//	send X: kind     announce the newest generation to X (same, inc, full; +delta)
//	wait X           X's Asterisk is down: the generation waits

func kindString(k Kind) string {
	s := "full"
	switch {
	case k.Same:
		s = "same"
	case k.Incremental:
		s = "inc"
	}
	if k.Delta {
		s += "+delta"
	}
	return s
}

func describeRound(r SourceReady) string {
	var out []string
	for _, a := range r.Send {
		out = append(out, "send "+a.To+": "+kindString(a.Kind))
	}
	for _, w := range r.Waiting {
		out = append(out, "wait "+w)
	}
	return strings.Join(out, "; ")
}

const sec = int64(1e9)

func answered(v uint64, state string) *Answer { return &Answer{Version: v, State: state} }

// TestRound covers every row of Source.Round's table, for both orders.
func TestRound(t *testing.T) {
	now := 100 * sec
	sentNow := func(name string, v uint64) Target {
		return Target{Name: name, Sent: v, SentAt: now - sec, AskedSame: 1}
	}
	good := func(name string, v uint64) Target {
		return Target{Name: name, Sent: v, SentAt: now - 50*sec, Answer: answered(v, StateGood)}
	}
	for _, c := range []struct {
		name    string
		order   string
		force   bool
		targets []Target
		down    []string
		want    string
	}{
		{"parallel: all new targets are asked whether they hold it", OrderParallel, false,
			[]Target{{Name: "b"}, {Name: "c"}}, nil, "send b: same; send c: same"},
		{"rolling: only the first unfinished target", OrderRolling, false,
			[]Target{{Name: "b"}, {Name: "c"}}, nil, "send b: same"},
		{"rolling goes on past a target that holds the newest", OrderRolling, false,
			[]Target{good("b", 5), {Name: "c"}}, nil, "send c: same"},
		{"rolling goes on past a held target", OrderRolling, false,
			[]Target{{Name: "b", Sent: 5, SentAt: now - 50*sec, Answer: answered(5, StateHeld)}, {Name: "c"}}, nil, "send c: same"},
		{"rolling stops at a target that refused the newest", OrderRolling, false,
			[]Target{{Name: "b", Sent: 5, Answer: answered(5, StateBad)}, {Name: "c"}}, nil, ""},
		{"rolling stops at a rolled-back answer too", OrderRolling, false,
			[]Target{{Name: "b", Sent: 5, Answer: answered(5, "rolled-back")}, {Name: "c"}}, nil, ""},
		{"parallel goes on past a refusal", OrderParallel, false,
			[]Target{{Name: "b", Sent: 5, Answer: answered(5, StateBad)}, {Name: "c"}}, nil, "send c: same"},
		{"parallel: a target whose Asterisk is down waits, the others go", OrderParallel, false,
			[]Target{{Name: "b"}, {Name: "c"}}, []string{"b"}, "send c: same; wait b"},
		{"rolling: a target whose Asterisk is down stops the rollout", OrderRolling, false,
			[]Target{{Name: "b"}, {Name: "c"}}, []string{"b"}, "wait b"},
		{"a target down that holds the newest is not waited for", OrderRolling, false,
			[]Target{good("b", 5), {Name: "c"}}, []string{"b"}, "send c: same"},
		{"sent recently, unanswered: nothing", OrderParallel, false,
			[]Target{sentNow("b", 5)}, nil, ""},
		{"rolling: sent recently, unanswered: nothing, and the next waits", OrderRolling, false,
			[]Target{sentNow("b", 5), {Name: "c"}}, nil, ""},
		{"force repeats an unanswered one", OrderParallel, true,
			[]Target{sentNow("b", 5)}, nil, "send b: full+delta"},
		{"unanswered past Repeat: repeated", OrderParallel, false,
			[]Target{{Name: "b", Sent: 5, SentAt: now - 4*sec, AskedSame: 1}}, nil, "send b: full+delta"},
		{"an older version sent: the newest goes at once", OrderParallel, false,
			[]Target{{Name: "b", Sent: 4, SentAt: now - sec, Answer: answered(4, StateGood)}}, nil, "send b: inc+delta"},
		{"progress on the newest: not repeated, even forced", OrderParallel, true,
			[]Target{{Name: "b", Sent: 5, SentAt: now - 60*sec, Answer: &Answer{Version: 5, State: StateApplying, Progress: true}, ProgressAt: now - sec, AskedSame: 1}}, nil, ""},
		{"stale progress: repeated", OrderParallel, false,
			[]Target{{Name: "b", Sent: 5, SentAt: now - 60*sec, Answer: &Answer{Version: 5, State: StateApplying, Progress: true}, ProgressAt: now - 30*sec, AskedSame: 1}}, nil, "send b: full+delta"},
		{"applying without progress (interrupted) is asked again", OrderParallel, false,
			[]Target{{Name: "b", Sent: 5, SentAt: now - 60*sec, Answer: answered(5, StateApplying), AskedSame: 1}}, nil, "send b: full+delta"},
		{"rolling: a busy target holds the rollout", OrderRolling, false,
			[]Target{{Name: "b", Sent: 5, SentAt: now - 60*sec, Answer: &Answer{Version: 5, State: StateApplying, Progress: true}, ProgressAt: now - sec}, {Name: "c"}}, nil, ""},
	} {
		s := Source{Order: c.order, Repeat: 3 * sec, Fresh: 10 * sec}
		var health func(string) (bool, string)
		if c.down != nil {
			health = func(name string) (bool, string) {
				for _, d := range c.down {
					if d == name {
						return true, "no AMI"
					}
				}
				return false, ""
			}
		}
		got := describeRound(s.Round(Round{Time: now, Latest: 5, Prev: 4, Force: c.force, Targets: c.targets, Health: health}))
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	if got := (Source{}).Round(Round{Targets: []Target{{Name: "b"}}}); len(got.Send) != 0 {
		t.Errorf("no generation yet: %v", got)
	}
}

// TestKind covers every row of Source.Kind's table.
func TestKind(t *testing.T) {
	for _, c := range []struct {
		name    string
		t       Target
		prev    uint64
		noDelta bool
		want    string
	}{
		{"nothing known: the question", Target{}, 4, false, "same"},
		{"asked about the newest, unanswered: asked again", Target{AskedSame: 5}, 4, false, "same"},
		{"asked about an older one, unanswered: complete", Target{AskedSame: 3}, 4, false, "full+delta"},
		{"it holds prev: incremental", Target{Answer: answered(4, StateGood)}, 4, false, "inc+delta"},
		{"it holds prev, no deltas", Target{Answer: answered(4, StateGood)}, 4, true, "inc"},
		{"it holds an older one: complete", Target{Answer: answered(3, StateGood)}, 4, false, "full+delta"},
		{"it refused prev: complete", Target{Answer: answered(4, StateBad)}, 4, false, "full+delta"},
		{"it asked for a resync: complete, never the question", Target{NeedFull: true}, 4, false, "full+delta"},
		{"it asked for a resync though it held prev", Target{NeedFull: true, Answer: answered(4, StateGood)}, 4, false, "full+delta"},
		{"no generation before: complete, no delta", Target{Answer: answered(4, StateGood)}, 0, false, "full"},
	} {
		got := kindString(Source{NoDelta: c.noDelta}.Kind(c.t, 5, c.prev))
		if got != c.want {
			t.Errorf("%s: Kind = %s, want %s", c.name, got, c.want)
		}
	}
}

// TestTargetStep covers every row of Target.Step's table.
func TestTargetStep(t *testing.T) {
	str := func(t Target, o Outcome) string {
		a := "-"
		if t.Answer != nil {
			a = fmt.Sprintf("%s@%d", t.Answer.State, t.Answer.Version)
			if t.Answer.Progress {
				a += "+progress"
			}
		}
		return fmt.Sprintf("sent=%d at=%d answer=%s full=%v progressAt=%d asked=%d | rejected=%v record=%v again=%v",
			t.Sent, t.SentAt, a, t.NeedFull, t.ProgressAt, t.AskedSame, o.Rejected, o.Record, o.Again)
	}
	busy := Target{Name: "b", Sent: 5, SentAt: 7, Answer: &Answer{Version: 5, State: StateApplying, Progress: true}, ProgressAt: 8, NeedFull: true, AskedSame: 5}
	for _, c := range []struct {
		name string
		t    Target
		e    TargetEvent
		want string
	}{
		{"sent a complete one", Target{}, Sent{Version: 5, Time: 9},
			"sent=5 at=9 answer=- full=false progressAt=0 asked=0 | rejected=false record=false again=false"},
		{"sent the question", Target{}, Sent{Version: 5, Same: true, Time: 9},
			"sent=5 at=9 answer=- full=false progressAt=0 asked=5 | rejected=false record=false again=false"},
		{"resync: a complete one at once", Target{Sent: 5, SentAt: 7, Answer: answered(4, StateGood)}, Answered{Answer: Answer{Version: 5, State: StateResync}, Latest: 5, Time: 9},
			"sent=5 at=0 answer=- full=true progressAt=0 asked=0 | rejected=false record=false again=true"},
		{"good for the newest clears a resync", busy, Answered{Answer: Answer{Version: 5, State: StateGood}, Latest: 5, Time: 9},
			"sent=5 at=7 answer=good@5 full=false progressAt=0 asked=5 | rejected=false record=true again=true"},
		{"good for an older one keeps the resync", busy, Answered{Answer: Answer{Version: 4, State: StateGood}, Latest: 5, Time: 9},
			"sent=5 at=7 answer=good@4 full=true progressAt=0 asked=5 | rejected=false record=true again=true"},
		{"bad: rejected", Target{Sent: 5}, Answered{Answer: Answer{Version: 5, State: StateBad}, Latest: 5, Time: 9},
			"sent=5 at=0 answer=bad@5 full=false progressAt=0 asked=0 | rejected=true record=true again=true"},
		{"progress: busy from now", Target{Sent: 5}, Answered{Answer: Answer{Version: 5, State: StateApplying, Progress: true}, Latest: 5, Time: 9},
			"sent=5 at=0 answer=applying@5+progress full=false progressAt=9 asked=0 | rejected=false record=true again=true"},
		{"applying without progress ends being busy", busy, Answered{Answer: Answer{Version: 5, State: StateApplying}, Latest: 5, Time: 9},
			"sent=5 at=7 answer=applying@5 full=true progressAt=0 asked=5 | rejected=false record=true again=true"},
		{"held", Target{Sent: 5}, Answered{Answer: Answer{Version: 5, State: StateHeld}, Latest: 5, Time: 9},
			"sent=5 at=0 answer=held@5 full=false progressAt=0 asked=0 | rejected=false record=true again=true"},
		{"returned: forget what it answered, announce at once", busy, Returned{},
			"sent=5 at=0 answer=- full=true progressAt=8 asked=0 | rejected=false record=false again=true"},
		{"returned before the last announcement went out: it has that one", busy, Returned{Time: 7},
			"sent=5 at=7 answer=applying@5+progress full=true progressAt=8 asked=5 | rejected=false record=false again=false"},
		{"returned after it", busy, Returned{Time: 8},
			"sent=5 at=0 answer=- full=true progressAt=8 asked=0 | rejected=false record=false again=true"},
	} {
		n, o := c.t.Step(c.e)
		if got := str(n, o); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// TestAllHoldAndHolding: the complete announcement goes once every target
// holds the newest; the windows count from what each holds.
func TestAllHoldAndHolding(t *testing.T) {
	ts := []Target{{Answer: answered(5, StateGood)}, {Answer: answered(4, StateGood)}, {Answer: answered(5, StateBad)}, {}}
	if AllHold(ts, 5) || AllHold(ts[:2], 5) || !AllHold(ts[:1], 5) || !AllHold(nil, 5) {
		t.Error("AllHold")
	}
	if got := fmt.Sprint(Holding(ts)); got != "[5 4]" {
		t.Errorf("Holding = %s", got)
	}
}

// TestRollbackTo: the newest good generation before the newest, never a
// bad or rolled-back one, never the newest itself or a later one.
func TestRollbackTo(t *testing.T) {
	gens := []Gen{{1, true}, {2, false}, {3, true}, {4, false}, {5, true}, {6, true}}
	for _, c := range []struct {
		latest uint64
		want   uint64
		ok     bool
	}{
		{6, 5, true},
		{5, 3, true},
		{4, 3, true},
		{3, 1, true},
		{1, 0, false},
	} {
		if got, ok := RollbackTo(gens, c.latest); got != c.want || ok != c.ok {
			t.Errorf("RollbackTo(latest %d) = %d, %v; want %d, %v", c.latest, got, ok, c.want, c.ok)
		}
	}
	if _, ok := RollbackTo(nil, 3); ok {
		t.Error("no generations: a target")
	}
}
