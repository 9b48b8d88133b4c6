package core

// Push policy, target side: what a failed generation means. A target
// that cannot take a generation rolls back to what it held (the tree
// byte-exact from the store, the rows by a compensating transaction);
// whether it tries the same content again depends on why it failed:
//
//	failure              | known-bad (blacklist) | answer       | a retry
//	---------------------|-----------------------|--------------|-------------------
//	ApplyFailed          | no                    | none now     | reuses its record
//	RenderFailed         | yes                   | bad          | -
//	ChecksFailed         | yes                   | bad          | -
//	ChecksFailHere       | no                    | bad          | at sync --now or a reload
//	AsteriskUnavailable  | no                    | applying     | reuses its record
//	RowsRefused          | yes                   | bad          | -
//
// ChecksFailHere is a ChecksFailed whose checks failed on the content put
// back too: the fault is the target's (its check, its Asterisk), not the
// content's. Remembering that content as bad would keep it out for good,
// also once the admin fixed the check; the target takes it when the source
// announces it again (`pbxsync sync --now` on the target, its config
// reloaded, a reconnect).
//
// A known-bad content is answered "bad" at once when announced again
// (Admit); the source stops a rolling rollout there. "applying" tells the
// source the generation is not done yet: it offers it again.

// Failure is why a push target could not take a generation.
type Failure int

// The failures of a generation on a push target.
const (
	// ApplyFailed: writing the tree failed (disk full, a file in use);
	// it says nothing about the content.
	ApplyFailed Failure = iota + 1
	// RenderFailed: the generation's templates do not render here.
	RenderFailed
	// ChecksFailed: its actions or checks failed.
	ChecksFailed
	// ChecksFailHere: its actions or checks failed, and failed on the
	// content put back too: the fault is this node's, not the content's.
	ChecksFailHere
	// AsteriskUnavailable: Asterisk could not be reached to run its
	// actions or checks; it says nothing about the content.
	AsteriskUnavailable
	// RowsRefused: the database refused its rows (a constraint); the
	// transaction changed nothing.
	RowsRefused
)

// Judgement is what a push target does about a failed generation.
type Judgement struct {
	// Blacklist: its content is known-bad here (the job's bad list).
	// Otherwise a retry of the same content reuses its record, so
	// retries never push good generations out of keep.
	Blacklist bool
	// Answer is the state the source is told: StateBad, StateApplying,
	// or "" for no answer now (the source repeats its announcement).
	Answer string
}

// Judge gives the judgement of a failure (the table above).
func Judge(f Failure) Judgement {
	switch f {
	case RenderFailed, ChecksFailed, RowsRefused:
		return Judgement{Blacklist: true, Answer: StateBad}
	case ChecksFailHere:
		return Judgement{Answer: StateBad}
	case AsteriskUnavailable:
		return Judgement{Answer: StateApplying}
	}
	return Judgement{}
}
