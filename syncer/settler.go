package syncer

import (
	"os"
	"sync"

	"pbxsync/internal/index"
)

// settler reads back the files an apply's execute step renamed (see
// Applier.settle) on a goroutine of its own, beside the renames: at 100k
// files the read-backs were a fifth of the step. It takes them in the
// order they were renamed, each through its parent directory's
// descriptor, which execute hands over to it (release) instead of closing
// it. Applier.Settled is called from the settler's goroutine while the
// job's goroutine is inside execute, which returns only after wait: the
// job's view of the tree has one writer at a time.
type settler struct {
	a    *Applier
	work chan settleWork
	done sync.WaitGroup
}

// settleWork is a file to read back, or (base empty) a directory to
// close once the files queued before it are read back.
type settleWork struct {
	it   index.Item
	dir  *os.File
	base string
}

// settleQueue is how many read-backs may wait for the settler.
const settleQueue = 1024

// startSettler starts the settler of an execute step; nil when a does not
// take settled states (Applier.Settled).
func (a *Applier) startSettler() *settler {
	if a.Settled == nil {
		return nil
	}
	s := &settler{a: a, work: make(chan settleWork, settleQueue)}
	s.done.Add(1)
	go s.run()
	return s
}

func (s *settler) run() {
	defer s.done.Done()
	for w := range s.work {
		if w.base == "" {
			w.dir.Close()
			continue
		}
		s.a.settle(w.it, w.dir, w.base)
	}
}

// settle queues the read-back of it, just renamed into dir/base.
func (s *settler) settle(it index.Item, dir *os.File, base string) {
	s.work <- settleWork{it: it, dir: dir, base: base}
}

// release closes dir after the read-backs queued before it; without a
// settler at once.
func (s *settler) release(dir *os.File) {
	if s == nil {
		dir.Close()
		return
	}
	s.work <- settleWork{dir: dir}
}

// wait returns once every queued read-back is done and every released
// directory closed; the settler takes no more.
func (s *settler) wait() {
	if s == nil {
		return
	}
	close(s.work)
	s.done.Wait()
}
