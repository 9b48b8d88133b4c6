package core

// Mesh policy when a member's checks fail on the content they had before
// a version too: the fault is the member's own (its check, its Asterisk),
// not the version's. The version is not taken and not rejected (no
// revert, no conflict record, no version of the member's own); the member
// runs its checks again on its content, first after ChecksRetryFirst,
// then twice as long each time up to ChecksRetryMax, and takes the
// waiting versions once they pass.

// ChecksRetryFirst is the first wait, in nanoseconds, of a member whose
// checks fail on the content before too.
const ChecksRetryFirst = int64(5e9)

// ChecksRetryMax is the longest wait between two runs of such a
// member's checks.
const ChecksRetryMax = int64(300e9)

// ChecksRetryAfter returns how long a member whose checks failed tries
// times in a row waits before it runs them again: first·2^(tries-1), at
// most ChecksRetryMax (and at least first). first ≤ 0 means
// ChecksRetryFirst.
func ChecksRetryAfter(first int64, tries int) int64 {
	if first <= 0 {
		first = ChecksRetryFirst
	}
	d := first
	for i := 1; i < tries && d < ChecksRetryMax; i++ {
		d *= 2
	}
	return max(first, min(d, ChecksRetryMax))
}
