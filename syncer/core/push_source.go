package core

// Push policy, source side: what a push source knows of each of its
// targets (Target), what each of their answers does to that (Target.Step),
// and which target is sent which announcement when (Source.Round). The
// loop keeps one Target per target, Steps what happens to it, and carries
// out a Round's Ready: it builds the announcements, sends them, and
// Steps a Sent for each that went out. Times are Unix nanoseconds carried
// in the events: nothing here reads a clock.

// Answer states a push target reports (wire.Result.State).
const (
	StateGood     = "good"
	StateBad      = "bad"
	StateApplying = "applying"
	StateResync   = "resync"
	StateHeld     = "held"
)

// Orders of a push job's targets ([[job]] order).
const (
	OrderParallel = "parallel"
	OrderRolling  = "rolling"
)

// Answer is a target's answer to an announcement, as the policy reads it.
type Answer struct {
	Version  uint64 // the source version it answers about
	State    string
	Progress bool // it carries progress: the target is working on Version
}

// Target is what a push source knows of one target.
type Target struct {
	Name   string
	Sent   uint64 // the version last announced to it
	SentAt int64  // when; 0: never (or to be repeated at once)
	Answer *Answer
	// NeedFull: it asked for a complete announcement (it lacks the base
	// of an incremental one).
	NeedFull bool
	// ProgressAt is when it last reported progress on the version it was
	// sent: it is working on it, and is not sent it again meanwhile.
	ProgressAt int64
	// AskedSame is the generation it was last asked whether it holds (an
	// announcement against that generation itself) since the source
	// started or it came up, 0 when not asked. While it has not answered,
	// a repeat asks again (a target starting over a large tree answers
	// late); a newer generation goes to it complete.
	AskedSame uint64
}

// TargetEvent is what happens to one target of a push source.
type TargetEvent interface{ isTargetEvent() }

// Sent: an announcement of Version went out to the target at Time; Same
// says it asked whether the target holds Version (Kind.Same).
type Sent struct {
	Version uint64
	Same    bool
	Time    int64
}

// Answered: the target answered; Latest is the source's newest version.
type Answered struct {
	Answer Answer
	Latest uint64
	Time   int64
}

// Returned: the target is reachable again since Time (Unix ns; 0:
// unknown); it may have lost its state while away. An announcement sent
// at or after Time went to it as it is now: the event then changes
// nothing (the loop may take it late, after a long scan that sent the
// first generation: a repeat of a 100,000-file announcement for nothing).
type Returned struct{ Time int64 }

// stale reports whether an announcement went out at sentAt since the
// target returned.
func (e Returned) stale(sentAt int64) bool { return e.Time != 0 && sentAt >= e.Time }

func (Sent) isTargetEvent()     {}
func (Answered) isTargetEvent() {}
func (Returned) isTargetEvent() {}

// Outcome is what an event of one target means for the whole job.
type Outcome struct {
	// Rejected: it refused Answer.Version (its actions or checks failed
	// there and it rolled back); when that is the newest version, the
	// source marks it bad.
	Rejected bool
	// Record: keep the answer as the target's state (status).
	Record bool
	// Again: run a Round now; Force: repeat unanswered announcements in
	// it too.
	Again, Force bool
}

// Step returns t after e, and what e means for the job:
//
//	event                         | target state                  | outcome
//	------------------------------|-------------------------------|-----------------
//	Sent v                        | Sent=v, SentAt=now,           | -
//	                              | AskedSame=v when a question   |
//	Answered resync               | no answer, NeedFull,          | Again
//	                              | repeat at once                |
//	Answered good for the newest  | Answer, NeedFull cleared      | Record, Again
//	Answered bad                  | Answer                        | Rejected, Record, Again
//	Answered other (applying,     | Answer, ProgressAt=now when   | Record, Again
//	held, good for an older one)  | it carries progress           |
//	Returned                      | no answer, repeat at once,    | Again
//	                              | not asked                     |
//	Returned before the last Sent | unchanged                     | -
func (t Target) Step(e TargetEvent) (Target, Outcome) {
	switch e := e.(type) {
	case Sent:
		t.Sent, t.SentAt = e.Version, e.Time
		if e.Same {
			t.AskedSame = e.Version
		}
		return t, Outcome{}
	case Answered:
		a := e.Answer
		if a.State == StateResync {
			// it does not hold the base of an incremental announcement
			t.Answer, t.NeedFull, t.SentAt = nil, true, 0
			return t, Outcome{Again: true}
		}
		t.Answer = &a
		t.ProgressAt = 0
		if a.Progress {
			t.ProgressAt = e.Time
		}
		if a.State == StateGood && a.Version == e.Latest {
			t.NeedFull = false
		}
		return t, Outcome{Rejected: a.State == StateBad, Record: true, Again: true}
	case Returned:
		if e.stale(t.SentAt) {
			return t, Outcome{}
		}
		t.SentAt, t.Answer, t.AskedSame = 0, nil, 0
		return t, Outcome{Again: true}
	}
	return t, Outcome{}
}

// Holds reports whether the target answered good for version v.
func (t Target) Holds(v uint64) bool {
	return t.Answer != nil && t.Answer.State == StateGood && t.Answer.Version == v
}

// Busy reports whether the target reported progress on version v within
// fresh of now: the source does not repeat v's announcement to it
// meanwhile.
func (t Target) Busy(v uint64, now, fresh int64) bool {
	return t.Answer != nil && t.Answer.Version == v && t.Answer.Progress && now-t.ProgressAt < fresh
}

// Due reports whether an announcement of version v goes to a target that
// was last sent sent at sentAt: a new version at once, the same one again
// after repeat (or at once when forced).
func Due(sent uint64, sentAt int64, v uint64, now, repeat int64, force bool) bool {
	return sent != v || force || sentAt == 0 || now-sentAt > repeat
}

// Kind is the variant of the announcement of the newest generation that a
// target is sent.
type Kind struct {
	// Delta: content inline as deltas against the generation before.
	Delta bool
	// Incremental: only the changes against the generation before.
	Incremental bool
	// Same: against the newest generation itself, no items, no content:
	// "do you hold it?", for a target whose state the source does not
	// know (after either side restarted); one that does not answers
	// resync and gets the complete announcement.
	Same bool
}

// Source is the push policy of a source job.
type Source struct {
	Order  string // OrderParallel or OrderRolling
	Repeat int64  // an unanswered announcement is repeated after this long
	Fresh  int64  // a progress report counts this long (see Busy)
	// NoDelta: the job never sends deltas (delta = "never").
	NoDelta bool
}

// Round is one pass of the source over its targets.
type Round struct {
	Time   int64
	Latest uint64 // the newest generation
	// Prev is the generation before it, when the source holds it as a
	// base (incremental announcements and deltas); 0 when not.
	Prev    uint64
	Force   bool     // repeat unanswered announcements now
	Targets []Target // in the job's order
	// Health reports whether a target's Asterisk is down (from what the
	// loop knows of its peers; asked only of a target the Round would
	// send to): a generation waits until it is up. nil: all up.
	Health func(target string) (down bool, why string)
}

// Announce is one announcement to send.
type Announce struct {
	To   string
	Kind Kind
}

// SourceReady is what a Round asks of the loop.
type SourceReady struct {
	Send    []Announce // build and send these, Step a Sent for each that went out
	Waiting []string   // targets whose Asterisk is down: the generation waits
}

// Round decides which targets are sent the newest generation now:
//
//	target                                   | parallel      | rolling
//	-----------------------------------------|---------------|---------------------
//	answered good or held for the newest     | skip          | skip (go on past it)
//	refused the newest (bad, rolled back)    | skip          | stop here
//	its Asterisk is down                     | waits         | waits, stop here
//	reports progress on the newest (Busy)    | nothing       | nothing, stop here
//	not sent it, or unanswered past Repeat,  | send          | send, stop here
//	or Force (see Due)                       |               |
//	sent it recently                         | nothing       | nothing, stop here
//
// An answer "applying" without progress (an interrupted apply) is no
// answer: the newest is sent again.
func (s Source) Round(r Round) SourceReady {
	var out SourceReady
	if r.Latest == 0 {
		return out
	}
	v := r.Latest
	rolling := s.Order == OrderRolling
	for _, t := range r.Targets {
		if a := t.Answer; a != nil && a.Version == v && a.State != StateApplying {
			if a.State == StateGood || a.State == StateHeld {
				continue // a held target asks again on resume; a rollout goes on past it
			}
			if rolling {
				return out // the rollout stops at a target that refused it
			}
			continue
		}
		if r.Health != nil {
			if down, _ := r.Health(t.Name); down {
				out.Waiting = append(out.Waiting, t.Name)
				if rolling {
					return out
				}
				continue
			}
		}
		// a target that reports progress on v is not sent it again: a
		// repeat would only queue behind its work (and cost a complete
		// index each time)
		if !t.Busy(v, r.Time, s.Fresh) && Due(t.Sent, t.SentAt, v, r.Time, s.Repeat, r.Force) {
			out.Send = append(out.Send, Announce{To: t.Name, Kind: s.Kind(t, v, r.Prev)})
		}
		if rolling {
			return out // one target at a time
		}
	}
	return out
}

// Kind chooses the announcement of generation latest for t:
//
//	what the source knows of t                     | announcement
//	-----------------------------------------------|------------------------------
//	nothing since either side started, and not     | Same: "do you hold latest?"
//	asked, or asked about latest itself            |
//	it holds prev (answered good), no resync asked | Incremental on prev (+Delta)
//	otherwise                                      | complete (+Delta when prev)
//
// Delta is set whenever the source holds prev and the job allows deltas
// (each file's own size decides whether it gets one).
func (s Source) Kind(t Target, latest, prev uint64) Kind {
	k := Kind{Delta: !s.NoDelta && prev != 0}
	k.Incremental = prev != 0 && !t.NeedFull && t.Holds(prev)
	if !t.NeedFull && t.Answer == nil && (t.AskedSame == 0 || t.AskedSame == latest) {
		k = Kind{Same: true}
	}
	return k
}

// AllHold reports whether every target answered good for version v.
func AllHold(targets []Target, v uint64) bool {
	for _, t := range targets {
		if !t.Holds(v) {
			return false
		}
	}
	return true
}

// Holding lists the versions the targets answered good for, as far as
// known (the sync windows count pending generations from them).
func Holding(targets []Target) []uint64 {
	var out []uint64
	for _, t := range targets {
		if t.Answer != nil && t.Answer.State == StateGood {
			out = append(out, t.Answer.Version)
		}
	}
	return out
}

// Gen is one recorded generation as a rollback sees it.
type Gen struct {
	Number uint64
	Good   bool
}

// RollbackTo chooses the generation an operator's rollback without --to
// goes to: the newest good one before latest (gens oldest first). ok is
// false when there is none.
func RollbackTo(gens []Gen, latest uint64) (to uint64, ok bool) {
	for i := len(gens) - 1; i >= 0; i-- {
		if gens[i].Number < latest && gens[i].Good {
			return gens[i].Number, true
		}
	}
	return 0, false
}
