package syncer

import "pbxsync/internal/index"

// servedRefs counts the files of a source's newest generation per content,
// beside its served set (job.serving, every content it serves), without a
// count per content: a content served counts one file unless it is listed
// in dup (two files or more) or in notCur (no file of the newest
// generation: only the one before has it). Most content belongs to one
// file, so both stay small; a map of a count per content took 7 MiB at
// 100,000 files.
type servedRefs struct {
	dup    map[index.Hash]int      // content of two files or more: how many
	notCur map[index.Hash]struct{} // served content no file of the newest generation has
}

func newServedRefs() *servedRefs {
	return &servedRefs{dup: map[index.Hash]int{}, notCur: map[index.Hash]struct{}{}}
}

// count returns how many files of the newest generation have content h,
// which serving is the served set of.
func (r *servedRefs) count(serving map[index.Hash]int64, h index.Hash) int {
	if _, ok := serving[h]; !ok {
		return 0
	}
	if _, ok := r.notCur[h]; ok {
		return 0
	}
	if n, ok := r.dup[h]; ok {
		return n
	}
	return 1
}

// add counts one more file of content h and size n, and serves h.
func (r *servedRefs) add(serving map[index.Hash]int64, h index.Hash, n int64) {
	c := r.count(serving, h)
	serving[h] = n
	delete(r.notCur, h)
	if c >= 1 {
		r.dup[h] = c + 1
	}
}

// remove counts one file of content h less; content no file has any more
// stays served (as content of the generation before) until it is dropped.
func (r *servedRefs) remove(serving map[index.Hash]int64, h index.Hash) {
	c := r.count(serving, h)
	if c == 0 {
		return
	}
	switch c--; {
	case c >= 2:
		r.dup[h] = c
	case c == 1:
		delete(r.dup, h)
	default:
		r.notCur[h] = struct{}{}
	}
}

// drop stops serving h, content of no file of the newest generation.
func (r *servedRefs) drop(serving map[index.Hash]int64, h index.Hash) {
	delete(serving, h)
	delete(r.notCur, h)
}
