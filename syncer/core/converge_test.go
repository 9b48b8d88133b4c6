package core

import (
	"fmt"
	"math/rand"
	"testing"

	"pbxsync/internal/index"
)

// sim is a mesh of machines with trees, a lossy reordering network and
// partitions, driven by a seeded random source: the machines' Readys are
// carried out the way the agent's loop does, without any I/O.
type sim struct {
	t       *testing.T
	rng     *rand.Rand
	names   []string
	m       map[string]*Machine
	tree    map[string]index.Index
	queue   []simMsg
	cut     map[[2]string]bool
	clock   int64
	writes  []simWrite
	records map[string][]Conflict
}

type simMsg struct {
	from, to string
	items    []index.Item
}

// simWrite is one local change: the version it made and what the member
// held there before (base, with its content).
type simWrite struct {
	node    string
	path    string
	item    index.Item
	base    index.Item
	hadBase bool
}

func newSim(t *testing.T, seed int64, p Policy) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewSource(seed)), names: []string{"a", "b", "c"}, m: map[string]*Machine{},
		tree: map[string]index.Index{}, cut: map[[2]string]bool{}, records: map[string][]Conflict{}}
	for _, n := range s.names {
		var others []string
		for _, o := range s.names {
			if o != n {
				others = append(others, o)
			}
		}
		s.m[n] = New(Config{Self: n, Members: others, Policy: p, Resend: 50}, nil)
		s.tree[n] = index.New(0)
	}
	for _, n := range s.names {
		for _, o := range s.names {
			if o != n {
				s.carry(n, s.m[n].Step(PeerUp{Peer: o}))
			}
		}
	}
	return s
}

func (s *sim) linked(a, b string) bool { return !s.cut[[2]string{a, b}] && !s.cut[[2]string{b, a}] }

// carry does what r asks of member n, as the agent's loop would.
func (s *sim) carry(n string, r Ready) {
	s.records[n] = append(s.records[n], r.Records...)
	if a := r.Apply; a != nil {
		ok := s.linked(n, a.Peer)
		if ok && len(a.Items) > 0 && s.rng.Intn(20) == 0 { // this member's checks refuse it
			s.records[n] = append(s.records[n], a.Records...)
			s.carry(n, s.m[n].Step(Rejected{ID: a.ID, Reason: "check failed"}))
			goto send
		}
		for _, it := range a.Items {
			if !ok {
				break
			}
			if it.Deleted {
				s.tree[n].Delete(it.Path)
			} else {
				it.Version = nil
				s.tree[n].Set(it)
			}
		}
		err := ""
		if !ok {
			err = "peer unreachable"
		} else {
			s.records[n] = append(s.records[n], a.Records...)
		}
		s.carry(n, s.m[n].Step(Applied{ID: a.ID, Err: err}))
	}
send:
	for _, msg := range r.Send {
		if s.linked(n, msg.To) {
			s.queue = append(s.queue, simMsg{from: n, to: msg.To, items: msg.Items})
		}
	}
}

func (s *sim) edit(n string) {
	s.clock++
	path := fmt.Sprintf("f%d", s.rng.Intn(4))
	before, had := s.m[n].Item(path)
	if live := s.tree[n].Has(path); live && s.rng.Intn(4) == 0 {
		s.tree[n].Delete(path)
	} else {
		c := fmt.Sprintf("%s@%d", n, s.clock)
		s.tree[n].Set(index.Item{Path: path, Kind: index.KindFile, Size: int64(len(c)), Mode: 0o644, MTime: s.clock / 3, Hash: index.Sum([]byte(c))})
	}
	r := s.m[n].Step(LocalScan{Time: s.clock / 3, Tree: s.tree[n].Clone()})
	for _, it := range r.Persist {
		if it.Path == path {
			s.writes = append(s.writes, simWrite{node: n, path: path, item: it, base: before, hadBase: had})
		}
	}
	s.carry(n, r)
}

func (s *sim) deliver() {
	if len(s.queue) == 0 {
		return
	}
	i := s.rng.Intn(len(s.queue))
	msg := s.queue[i]
	s.queue = append(s.queue[:i], s.queue[i+1:]...)
	if !s.linked(msg.from, msg.to) || s.rng.Intn(20) == 0 { // cut links and a few lost messages
		return
	}
	s.clock++
	s.carry(msg.to, s.m[msg.to].Step(RemoteIndex{Time: s.clock / 3, Peer: msg.from, Items: msg.items}))
}

func (s *sim) setCut(a, b string, cut bool) {
	if s.linked(a, b) == !cut {
		return
	}
	if cut {
		s.cut[[2]string{a, b}] = true
		s.carry(a, s.m[a].Step(PeerDown{Peer: b}))
		s.carry(b, s.m[b].Step(PeerDown{Peer: a}))
		return
	}
	delete(s.cut, [2]string{a, b})
	delete(s.cut, [2]string{b, a})
	s.carry(a, s.m[a].Step(PeerUp{Peer: b}))
	s.carry(b, s.m[b].Step(PeerUp{Peer: a}))
}

func (s *sim) tick() {
	s.clock++
	for _, n := range s.names {
		s.carry(n, s.m[n].Step(Tick{Time: s.clock}))
	}
}

// settle heals every link and runs until no message is left and a round of
// ticks sends nothing new.
func (s *sim) settle() {
	for _, a := range s.names {
		for _, b := range s.names {
			if a < b {
				s.setCut(a, b, false)
			}
		}
	}
	for round := 0; round < 100; round++ {
		for len(s.queue) > 0 {
			i := 0
			msg := s.queue[i]
			s.queue = s.queue[1:]
			s.clock++
			s.carry(msg.to, s.m[msg.to].Step(RemoteIndex{Time: s.clock / 3, Peer: msg.from, Items: msg.items}))
		}
		s.clock += 100
		s.tick()
	}
}

// check: every member holds the same index and its tree is that index's
// live part; every write is live, a loser in a record, or was replaced by
// a later local write on a member that held it.
func (s *sim) check(seed int64) {
	ref := s.m["a"].Items()
	for _, n := range s.names {
		got := s.m[n].Items()
		if fmt.Sprint(got) != fmt.Sprint(ref) {
			s.t.Fatalf("seed %d: member %s's index differs from a's:\n%v\n%v", seed, n, got, ref)
		}
		live := s.m[n].Live()
		if live.Len() != s.tree[n].Len() {
			s.t.Fatalf("seed %d: member %s: tree has %d files, index %d live", seed, n, s.tree[n].Len(), live.Len())
		}
		for p, it := range live.All() {
			if tr, ok := s.tree[n].Get(p); !ok || tr.Hash != it.Hash {
				s.t.Fatalf("seed %d: member %s: tree differs from its index at %s", seed, n, p)
			}
		}
	}
	final := map[string]index.Item{}
	for _, it := range ref {
		final[it.Path] = it
	}
	for _, w := range s.writes {
		if f := final[w.path]; f.Deleted == w.item.Deleted && f.Hash == w.item.Hash {
			continue
		}
		if s.recorded(w) || s.overwritten(w) {
			continue
		}
		s.t.Fatalf("seed %d: the write of %s by %s (%s, deleted %v) is neither live nor a conflict record nor knowingly replaced", seed, w.path, w.node, vecString(w.item.Version), w.item.Deleted)
	}
}

func (s *sim) recorded(w simWrite) bool {
	for _, rs := range s.records {
		for _, c := range rs {
			if c.Path == w.path && c.Loser.Deleted == w.item.Deleted && c.Loser.Hash == w.item.Hash && !w.item.Deleted ||
				c.Path == w.path && c.Loser.Deleted && w.item.Deleted && index.Compare(c.Loser.Version, w.item.Version) != index.Before {
				return true
			}
		}
	}
	return false
}

// overwritten: a later local write whose member held w's content (a
// version containing w's) when it wrote.
func (s *sim) overwritten(w simWrite) bool {
	for _, o := range s.writes {
		if o.path == w.path && o.hadBase && o.base.Deleted == w.item.Deleted && (w.item.Deleted || o.base.Hash == w.item.Hash) &&
			index.Compare(o.base.Version, w.item.Version) != index.Before && index.Compare(o.base.Version, w.item.Version) != index.Concurrent {
			return true
		}
	}
	return false
}

// TestMeshConvergesUnderPartitions runs many seeded random histories:
// edits and deletes on every member, lost and reordered messages,
// partitions that come and go; after healing, every member holds the same
// index and tree and no write is lost. A failure names its seed.
func TestMeshConvergesUnderPartitions(t *testing.T) {
	for _, p := range []Policy{{Kind: Newest}, {Kind: Prefer, Node: "b"}} {
		for seed := int64(1); seed <= 150; seed++ {
			s := newSim(t, seed, p)
			for step := 0; step < 200; step++ {
				switch k := s.rng.Intn(10); {
				case k < 3:
					s.edit(s.names[s.rng.Intn(3)])
				case k < 8:
					s.deliver()
				case k == 8:
					a, b := s.names[s.rng.Intn(3)], s.names[s.rng.Intn(3)]
					if a != b {
						s.setCut(a, b, s.linked(a, b))
					}
				default:
					s.tick()
				}
			}
			s.settle()
			s.check(seed)
		}
	}
}
