package core

// Push policy of a postgres source: a target's database holds one source
// version; the source sends it the chain of changesets that follows on
// from that version, one at a time, or a snapshot when the chain is gone.
// The loop keeps one RowsTarget per target, Steps what happens to it and,
// for each target it can reach, asks Next which generation to send.

// RowsGen is one generation of a postgres source: a changeset on Base,
// or a snapshot of every row.
type RowsGen struct {
	Number, Base uint64
	Snapshot     bool
}

// RowsTarget is what a postgres source knows of one target's database.
type RowsTarget struct {
	Have   uint64 // the source version its database holds
	Known  bool   // Have came from the target
	Sent   uint64 // the version last announced to it
	SentAt int64  // when; 0: never (or to be repeated at once)
	Answer *Answer
	// Pending: it said it cannot follow on from what it was sent; when
	// no chain leads from Have to the newest, it gets a new snapshot.
	Pending  bool
	Rejected map[uint64]bool // generations it refused
}

// Has: the target says its database holds Version (RowsHave), the
// answer to an announcement it cannot follow on from.
type Has struct{ Version uint64 }

func (Has) isTargetEvent() {}

// Step returns t after e, and what e means for the job:
//
//	event              | target state                       | outcome
//	-------------------|------------------------------------|--------------------------
//	Sent v             | Sent=v, SentAt=now                 | -
//	Has v              | Have=v, Known, Pending, no answer, | Again (forced)
//	                   | repeat at once                     |
//	Answered good v    | Answer, Have=v, Known              | Record, Again
//	Answered bad v     | Answer, v rejected                 | Rejected, Record, Again
//	Answered other     | Answer                             | Record, Again
//	Returned           | repeat at once                     | Again
//	Returned before    | unchanged                          | -
//	the last Sent      |                                    |
func (t RowsTarget) Step(e TargetEvent) (RowsTarget, Outcome) {
	switch e := e.(type) {
	case Sent:
		t.Sent, t.SentAt = e.Version, e.Time
		return t, Outcome{}
	case Has:
		t.Have, t.Known, t.Pending, t.Answer, t.SentAt = e.Version, true, true, nil, 0
		return t, Outcome{Again: true, Force: true}
	case Answered:
		a := e.Answer
		t.Answer = &a
		switch a.State {
		case StateGood:
			t.Have, t.Known = a.Version, true
		case StateBad:
			rejected := make(map[uint64]bool, len(t.Rejected)+1)
			for v := range t.Rejected {
				rejected[v] = true
			}
			rejected[a.Version] = true
			t.Rejected = rejected
		}
		return t, Outcome{Rejected: a.State == StateBad, Record: true, Again: true}
	case Returned:
		if e.stale(t.SentAt) {
			return t, Outcome{}
		}
		t.SentAt = 0
		return t, Outcome{Again: true}
	}
	return t, Outcome{}
}

// RowsNext is which generation a postgres target is sent next.
type RowsNext struct {
	Gen uint64 // 0: none now
	// Snapshot: take a new snapshot and send it (no chain leads from
	// what the target holds to the newest generation).
	Snapshot bool
}

// Next picks the generation to send to t, whose newest is latest, gens
// the generations recorded and stored (the content of each in the
// store, as stored says):
//
//	what the source knows of t                          | next
//	----------------------------------------------------|------------------------
//	answered good or bad for the newest                 | none (wait for a change)
//	not what its database holds                         | the newest (it answers
//	                                                    | RowsHave if it cannot
//	                                                    | use it)
//	it holds the newest                                 | none
//	a stored generation follows on from what it holds,  | the oldest such one
//	not rejected by it                                  |
//	the newest is a snapshot after what it holds        | the newest
//	it has not said it cannot follow on                 | the newest
//	otherwise                                           | a new snapshot (and it
//	                                                    | is no longer Pending)
func (t RowsTarget) Next(latest RowsGen, gens []RowsGen, stored func(gen uint64) bool) (RowsTarget, RowsNext) {
	l := latest
	if l.Number == 0 {
		return t, RowsNext{}
	}
	if a := t.Answer; a != nil && a.Version == l.Number && (a.State == StateGood || a.State == StateBad) {
		return t, RowsNext{} // done, or it refused this one: wait for the next change
	}
	if !t.Known {
		return t, RowsNext{Gen: l.Number}
	}
	if t.Have == l.Number {
		return t, RowsNext{}
	}
	var next uint64
	for _, g := range gens {
		if g.Base == t.Have && g.Number > t.Have && !t.Rejected[g.Number] && (next == 0 || g.Number < next) && stored(g.Number) {
			next = g.Number
		}
	}
	if next != 0 {
		return t, RowsNext{Gen: next}
	}
	if l.Snapshot && l.Number > t.Have {
		return t, RowsNext{Gen: l.Number}
	}
	if !t.Pending {
		return t, RowsNext{Gen: l.Number}
	}
	t.Pending = false
	return t, RowsNext{Snapshot: true}
}

// RowsRecord is one generation a postgres target recorded.
type RowsRecord struct {
	Number        uint64
	State         string // StateGood, StateBad, StateApplying, …
	SourceVersion uint64 // the source's generation it applies
}

// RowsStart is what a postgres target does at start, from its recorded
// generations and the source version its database holds (have).
type RowsStart struct {
	// Holding is its generation that holds have (0: none known).
	Holding uint64
	// Abandon are generations left "applying" by a restart before their
	// transaction committed: nothing of them was applied, they are bad.
	Abandon []uint64
	// Finish is a generation whose transaction committed before a
	// restart and whose checks have not run (0: none); Prev is the
	// source version before it, what a failed check reverts to.
	Finish, Prev uint64
}

// StartRows decides, newest first: the newest good generation ends the
// search (it holds have when its source version is have); a generation
// left "applying" was committed when the database holds its version —
// its checks run now — else nothing of it was applied.
func StartRows(recs []RowsRecord, have uint64) RowsStart {
	var out RowsStart
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.State == StateGood {
			if r.SourceVersion == have {
				out.Holding = r.Number
			}
			break
		}
		if r.State != StateApplying {
			continue
		}
		if r.SourceVersion != have {
			out.Abandon = append(out.Abandon, r.Number)
			continue
		}
		out.Finish = r.Number
		for k := i - 1; k >= 0; k-- {
			if recs[k].State == StateGood {
				out.Prev = recs[k].SourceVersion
				break
			}
		}
		break
	}
	return out
}
