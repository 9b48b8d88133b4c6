package core

// Push policy, target side: what a push target does with an announcement
// of its source. Admit is a pure function of what the target knows of the
// announcement so far (Offer); a verdict either answers it or asks the loop
// for the next fact (Read, then Check), which the loop adds to the Offer
// before it asks again. Files and postgres jobs read and check
// differently; the decision is the same for both kinds. The role check
// (FromSource) comes first, before the loop decodes anything more of the
// announcement (the parts of a large one).
//
//	what the target knows                            | verdict
//	-------------------------------------------------|-------------------------
//	an operator holds it (Held)                      | AnswerHeld
//	it is at the announced version (AtVersion)       | AnswerHolds ("good")
//	the announcement is not read yet                 | Read
//	its content failed here before (IsBad)           | AnswerBad (that reason)
//	incremental on a base it does not hold           | AskResync
//	the local state is not checked yet               | Check
//	the local state cannot take it (Refusal)         | AnswerBad (the refusal)
//	the local state already holds it (Holds)         | AnswerHolds ("good")
//	otherwise                                        | Take
//
// Read: a files job rebuilds the announced index (from its base, or the
// complete one) and admits it through its filters; a postgres job looks
// up the changeset's hash. Check: a files job rescans where the tree may
// differ from the announced index; a postgres job compares the tables'
// schema. Take: fetch what it lacks, apply, run the checks, answer with
// the outcome.

// Verdict is what a push target does (next) with an announcement.
type Verdict int

// The verdicts of Admit.
const (
	// AnswerHeld: an operator holds this target (rollback --hold); it
	// answers "held" and takes nothing until resumed.
	AnswerHeld Verdict = iota + 1
	// AnswerHolds: it holds what is announced; it answers "good".
	AnswerHolds
	// Read: read the announcement into Offer.Read.
	Read
	// AnswerBad: the announced content failed here before (or cannot
	// be taken here); it answers "bad" with the reason.
	AnswerBad
	// AskResync: the announcement is incremental on a base this node
	// does not hold; it asks for a complete one (files: Result
	// "resync"; postgres: RowsHave with the version it holds).
	AskResync
	// Check: look at the local state into Offer.Checked.
	Check
	// Take: fetch what it lacks, apply it, run the checks and answer
	// with the outcome.
	Take
)

var verdictNames = map[Verdict]string{AnswerHeld: "held", AnswerHolds: "good", Read: "read", AnswerBad: "bad",
	AskResync: "resync", Check: "check", Take: "take"}

func (v Verdict) String() string {
	if s, ok := verdictNames[v]; ok {
		return s
	}
	return "verdict?"
}

// Offer is what a push target knows of an announcement so far.
type Offer struct {
	// Held is the generation an operator holds this target at, 0 when
	// not held.
	Held uint64
	// AtVersion: this node is known to be at exactly the announced
	// source version (a postgres database records the version it
	// applied).
	AtVersion bool
	Read      *ReadFacts // nil until read
	Checked   *Checked   // nil until checked
}

// ReadFacts is what reading an announcement tells.
type ReadFacts struct {
	// IsBad: the announced content failed here before, Bad says why.
	// A files job knows it only when it has the announced index
	// (BaseKnown).
	IsBad bool
	Bad   string
	// BaseKnown: the announcement is complete, or incremental on a
	// base this node holds.
	BaseKnown bool
}

// Checked is what looking at the local state tells.
type Checked struct {
	// Refusal, when set, is why the local state cannot take the
	// announcement (a postgres table's schema differs).
	Refusal string
	// Holds: the local state already is what is announced.
	Holds bool
}

// FromSource is the role check of a push announcement: only the job's
// source may push to it, and a source takes no announcement.
func FromSource(self, source, peer string) bool {
	return self != source && peer == source
}

// Admit decides what a push target does next with an announcement (the
// table above).
func Admit(o Offer) Verdict {
	switch {
	case o.Held != 0:
		return AnswerHeld
	case o.AtVersion:
		return AnswerHolds
	case o.Read == nil:
		return Read
	case o.Read.IsBad:
		return AnswerBad
	case !o.Read.BaseKnown:
		return AskResync
	case o.Checked == nil:
		return Check
	case o.Checked.Refusal != "":
		return AnswerBad
	case o.Checked.Holds:
		return AnswerHolds
	}
	return Take
}
