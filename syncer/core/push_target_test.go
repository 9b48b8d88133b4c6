package core

import "testing"

// TestAdmit is the push target's table: every row of push_target.go's
// table, and the order in which its facts count.
func TestAdmit(t *testing.T) {
	read := func(r ReadFacts) *ReadFacts { return &r }
	checked := func(c Checked) *Checked { return &c }
	for _, c := range []struct {
		name string
		o    Offer
		want Verdict
	}{
		{"nothing known: read it", Offer{}, Read},
		{"held by the operator", Offer{Held: 4}, AnswerHeld},
		{"held wins over everything after it", Offer{Held: 4, AtVersion: true, Read: read(ReadFacts{IsBad: true})}, AnswerHeld},
		{"at the announced version", Offer{AtVersion: true}, AnswerHolds},
		{"at the version although its content was bad (revert failed)", Offer{AtVersion: true, Read: read(ReadFacts{IsBad: true})}, AnswerHolds},
		{"known bad", Offer{Read: read(ReadFacts{IsBad: true, Bad: "check failed", BaseKnown: true})}, AnswerBad},
		{"known bad by hash, base unknown (postgres)", Offer{Read: read(ReadFacts{IsBad: true, Bad: "x"})}, AnswerBad},
		{"incremental on a base it lacks", Offer{Read: read(ReadFacts{})}, AskResync},
		{"base known: check the local state", Offer{Read: read(ReadFacts{BaseKnown: true})}, Check},
		{"the check refuses it (schema)", Offer{Read: read(ReadFacts{BaseKnown: true}), Checked: checked(Checked{Refusal: "schema"})}, AnswerBad},
		{"a refusal wins over holding", Offer{Read: read(ReadFacts{BaseKnown: true}), Checked: checked(Checked{Refusal: "schema", Holds: true})}, AnswerBad},
		{"the tree holds it", Offer{Read: read(ReadFacts{BaseKnown: true}), Checked: checked(Checked{Holds: true})}, AnswerHolds},
		{"take it", Offer{Read: read(ReadFacts{BaseKnown: true}), Checked: checked(Checked{})}, Take},
	} {
		if got := Admit(c.o); got != c.want {
			t.Errorf("%s: Admit = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestFromSource: only the job's source pushes, and a source takes no
// announcement, not even one naming itself.
func TestFromSource(t *testing.T) {
	for _, c := range []struct {
		self, source, peer string
		want               bool
	}{
		{"b", "a", "a", true},
		{"b", "a", "c", false},
		{"a", "a", "a", false},
		{"a", "a", "b", false},
	} {
		if got := FromSource(c.self, c.source, c.peer); got != c.want {
			t.Errorf("FromSource(%q, %q, %q) = %v, want %v", c.self, c.source, c.peer, got, c.want)
		}
	}
}
