package syncer

import (
	"pbxsync/internal/index"
)

// digestCache keeps the SetDigest of the few indexes a job works with (its
// newest generation, the index a source announced, the one it is about to
// apply), so that checking an announcement costs one item hash per changed
// item instead of a pass over the index. An index is known by identity
// (the same index): an index changed in place must be put again. It holds
// three, the least recently used goes: it keeps no index alive for long
// that the job has let go of.
type digestCache struct {
	x    [3]index.Index
	d    [3]index.SetDigest
	used [3]uint64
	tick uint64
}

// of returns the digest of x, from the cache or computed (and cached).
func (c *digestCache) of(x index.Index) index.SetDigest {
	for i := range c.x {
		if c.x[i].Same(x) {
			c.tick++
			c.used[i] = c.tick
			return c.d[i]
		}
	}
	d := index.DigestOf(x)
	c.put(x, d)
	return d
}

// put records that d is the digest of x.
func (c *digestCache) put(x index.Index, d index.SetDigest) {
	c.tick++
	lru := 0
	for i := range c.x {
		if c.x[i].Same(x) {
			c.d[i], c.used[i] = d, c.tick
			return
		}
		if c.used[i] < c.used[lru] {
			lru = i
		}
	}
	c.x[lru], c.d[lru], c.used[lru] = x, d, c.tick
}

// derive records the digest of to, which equals from but at paths.
func (c *digestCache) derive(from, to index.Index, paths []string) index.SetDigest {
	d := c.of(from)
	for _, p := range paths {
		old, had := from.Get(p)
		it, has := to.Get(p)
		d.Replace(old, had, it, has)
	}
	c.put(to, d)
	return d
}

// retain forgets the digests of every index but keep's: the cache is the
// last reference to an index the job has let go of (a repeated complete
// announcement's admitted index, 20-40 MB at 100k files), which stayed
// alive as long as no other index pushed it out, all the idle time after
// an initial sync.
func (c *digestCache) retain(keep ...index.Index) {
	for i := range c.x {
		if c.x[i].IsNil() {
			continue
		}
		kept := false
		for _, k := range keep {
			if c.x[i].Same(k) {
				kept = true
				break
			}
		}
		if !kept {
			c.x[i], c.d[i], c.used[i] = index.Index{}, index.SetDigest{}, 0
		}
	}
}
