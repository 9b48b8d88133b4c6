package core

import "pbxsync/internal/index"

// Push policy, target side: what a files target fetches of a generation
// it takes. Of the files whose content the store lacks (missing), it
// fetches each content once, and none the tree already holds at that
// path (the store takes it from the tree). What it fetches goes in units:
// one stream per file that is large or that needs a stream of its own (a
// signature of the file at its path here goes with it), and batches of
// the other small files on one stream each (Get.More; each may name a
// base for a delta, Get.MoreBase).

// Batching is how small contents are fetched together on one stream.
type Batching struct {
	ItemMax  int64 // a file larger than this is fetched on its own
	Bytes    int64 // a batch holds at most this many bytes …
	MaxItems int   // … and at most this many files
}

// ToFetch splits missing into the items to fetch from the source (need:
// the first of each content) and those whose content the tree holds at
// their path (fromTree; inTree gives the hash of the file there), which
// the store takes from the tree. need is missing filtered in place (it
// shares its array; an initial sync's 100k items are not held twice);
// fromTree is a slice of its own.
func ToFetch(missing []index.Item, inTree func(path string) (index.Hash, bool)) (need, fromTree []index.Item) {
	need = missing[:0]
	seen := map[index.Hash]bool{}
	for _, it := range missing {
		if seen[it.Hash] {
			continue
		}
		if h, ok := inTree(it.Path); ok && h == it.Hash {
			fromTree = append(fromTree, it) // the tree has it
			continue
		}
		seen[it.Hash] = true
		need = append(need, it)
	}
	return need, fromTree
}

// Units splits need into what is fetched together on one stream and what
// on its own; alone says an item needs a stream of its own. The units are parts of need, not
// copies: Units reorders need in place (the batched items first, in their
// order, then the ones fetched alone) and returns slices of it whose
// capacity ends at their length (an initial sync's 100k items were held
// twice while fetched).
func (b Batching) Units(need []index.Item, alone func(index.Item) bool) [][]index.Item {
	k := 0 // need[:k] are the batched items, in order
	for i := range need {
		if need[i].Size <= b.ItemMax && !alone(need[i]) {
			need[k], need[i] = need[i], need[k]
			k++
		}
	}
	var units [][]index.Item
	start := 0
	var batchSize int64
	for i := 0; i < k; i++ {
		if i-start >= b.MaxItems || (i > start && batchSize+need[i].Size > b.Bytes) {
			units = append(units, need[start:i:i])
			start, batchSize = i, 0
		}
		batchSize += need[i].Size
	}
	if k > start {
		units = append(units, need[start:k:k])
	}
	for i := k; i < len(need); i++ {
		units = append(units, need[i:i+1:i+1])
	}
	return units
}
