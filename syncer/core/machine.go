package core

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"

	"pbxsync/internal/index"
)

// DefaultResend is how long a member goes without this node's index
// before a Tick sends it again.
const DefaultResend = int64(10e9)

// Config describes one member's view of a mesh job.
type Config struct {
	Self    string   // this node's ID, the counter a local change bumps
	Members []string // the other members' IDs
	Policy  Policy
	Resend  int64 // nanoseconds; 0 means DefaultResend
}

// Machine is the pure state machine of one mesh job on one member. It is
// not safe for concurrent use: one loop steps it.
type Machine struct {
	cfg   Config
	items map[string]index.Item // the mesh index: live entries and tombstones
	rev   uint64                // bumped at every change of items

	up       map[string]bool
	sentRev  map[string]uint64
	sentAt   map[string]int64
	now      int64
	nextID   uint64
	pending  *pending
	lastFail string
}

// pending is an Apply handed out and not yet reported.
type pending struct {
	id   uint64
	take map[string]take
}

// take is one entry the Apply brings into the index once it succeeded,
// if the index still holds base at that path.
type take struct {
	item    index.Item
	base    index.Vector
	hadBase bool
	tree    bool // the Apply changes the tree for it
}

// New returns a machine over a persisted mesh index (nil: empty). Every
// member starts down; PeerUp makes it reachable.
func New(cfg Config, items []index.Item) *Machine {
	if cfg.Resend <= 0 {
		cfg.Resend = DefaultResend
	}
	m := &Machine{cfg: cfg, items: make(map[string]index.Item, len(items)), up: map[string]bool{},
		sentRev: map[string]uint64{}, sentAt: map[string]int64{}, rev: 1}
	for _, it := range items {
		m.items[it.Path] = it
	}
	return m
}

// Items returns the mesh index sorted by path, tombstones included.
func (m *Machine) Items() []index.Item {
	out := make([]index.Item, 0, len(m.items))
	for _, it := range m.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Item returns the entry of path.
func (m *Machine) Item(path string) (index.Item, bool) {
	it, ok := m.items[path]
	return it, ok
}

// Live returns the live entries: what the tree holds when the machine is
// at rest.
func (m *Machine) Live() index.Index {
	out := index.New(0)
	for _, it := range m.items {
		if !it.Deleted {
			out.Set(it)
		}
	}
	return out
}

// LastFailure is the error of the last Apply that failed, "" after one
// that succeeded.
func (m *Machine) LastFailure() string { return m.lastFail }

// Step takes one event and returns what to do about it.
func (m *Machine) Step(e Event) Ready {
	switch e := e.(type) {
	case LocalScan:
		m.now = max(m.now, e.Time)
		return m.localScan(e)
	case RemoteIndex:
		m.now = max(m.now, e.Time)
		return m.remoteIndex(e)
	case Applied:
		return m.applied(e)
	case Rejected:
		return m.rejected(e)
	case PeerUp:
		return m.peersUp([]string{e.Peer})
	case PeersUp:
		return m.peersUp(e.Peers)
	case PeerDown:
		delete(m.up, e.Peer)
		return Ready{}
	case Tick:
		m.now = max(m.now, e.Time)
		var due []string
		for _, p := range m.cfg.Members {
			if m.up[p] && m.now-m.sentAt[p] >= m.cfg.Resend {
				due = append(due, p)
			}
		}
		return Ready{Send: m.sendTo(due)}
	}
	return Ready{}
}

// sameVersion reports whether the tree's file a is the content entry b
// records: kind, hash, size and mode (a touch is no change).
func sameVersion(a, b index.Item) bool {
	return a.Deleted == b.Deleted && (a.Deleted || a.Kind == b.Kind && a.Hash == b.Hash && a.Size == b.Size && a.Mode == b.Mode)
}

func (m *Machine) set(it index.Item, r *Ready) {
	m.items[it.Path] = it
	m.rev++
	r.Persist = append(r.Persist, it)
}

// localScan turns every difference between the tree and the index into a
// new version authored by this node.
func (m *Machine) localScan(e LocalScan) Ready {
	var r Ready
	paths := make([]string, 0, e.Tree.Len())
	for p := range e.Tree.All() {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		t, _ := e.Tree.Get(p)
		cur, ok := m.items[p]
		if ok && sameVersion(t, cur) {
			continue
		}
		t.Path, t.Deleted = p, false
		t.Version = cur.Version.Bump(m.cfg.Self)
		m.set(t, &r)
		r.Store = append(r.Store, t)
	}
	for _, p := range sortedKeys(m.items) {
		cur := m.items[p]
		if e.Tree.Has(p) || cur.Deleted {
			continue
		}
		m.set(index.Item{Path: p, Kind: cur.Kind, Deleted: true, MTime: e.Time, Version: cur.Version.Bump(m.cfg.Self)}, &r)
	}
	if len(r.Persist) > 0 {
		r.Send = m.sendTo(m.upMembers())
	}
	return r
}

// remoteIndex decides, item by item, what a peer's index means here:
//
//	peer's version vs ours     | what happens
//	---------------------------|-----------------------------------------
//	we have none               | take it (a tombstone: into the index only)
//	dominates ours             | take it (write or remove in the tree)
//	dominated by ours          | ignore it
//	equal, same content        | ignore it (take the later mtime)
//	concurrent, same content   | keep it with both vectors merged, the
//	                           | later mtime
//	concurrent, different      | the policy's winner, vectors merged and
//	(or equal vectors)         | this node's counter bumped; the loser
//	                           | becomes a conflict record
func (m *Machine) remoteIndex(e RemoteIndex) Ready {
	a := &Apply{Peer: e.Peer}
	takes := map[string]take{}
	items := append([]index.Item(nil), e.Items...)
	sort.Slice(items, func(i, j int) bool { return items[i].Path < items[j].Path })
	for _, rv := range items {
		lv, ok := m.items[rv.Path]
		if !ok {
			takes[rv.Path] = take{item: rv}
			if !rv.Deleted {
				a.Items = append(a.Items, rv)
			}
			continue
		}
		ord := index.Compare(rv.Version, lv.Version)
		switch {
		case ord == index.After:
			takes[rv.Path] = take{item: rv, base: lv.Version, hadBase: true}
			if !(rv.Deleted && lv.Deleted) && !sameVersion(rv, lv) {
				a.Items = append(a.Items, rv)
			}
			continue
		case ord == index.Equal && sameVersion(rv, lv):
			if rv.MTime > lv.MTime { // the same version merged elsewhere: the later mtime, on every member
				takes[rv.Path] = take{item: rv, base: lv.Version, hadBase: true}
			}
			continue
		case ord == index.Before:
			continue
		}
		merged := Merge(lv.Version, rv.Version)
		if sameVersion(rv, lv) {
			keep := lv // the same content: both vectors, the later mtime
			if rv.MTime > lv.MTime {
				keep = rv
			}
			keep.Version = merged
			takes[rv.Path] = take{item: keep, base: lv.Version, hadBase: true}
			continue
		}
		// Different content: the resolution is a version of this member's
		// (its counter goes up), so that two members resolving different
		// pairs never give one vector to two different results.
		merged = merged.Bump(m.cfg.Self)
		remoteWins := Wins(m.cfg.Policy, rv, lv)
		winner, loser := lv, rv
		if remoteWins {
			winner, loser = rv, lv
		}
		w := winner
		w.Version = merged
		takes[rv.Path] = take{item: w, base: lv.Version, hadBase: true}
		if remoteWins {
			a.Items = append(a.Items, w)
		} else if !loser.Deleted {
			a.Keep = append(a.Keep, loser)
		}
		a.Records = append(a.Records, conflictOf(rv.Path, m.now, winner, loser))
	}
	if len(takes) == 0 {
		return Ready{}
	}
	for _, it := range a.Items {
		t := takes[it.Path]
		t.tree = true
		takes[it.Path] = t
	}
	m.nextID++
	a.ID = m.nextID
	m.pending = &pending{id: a.ID, take: takes}
	return Ready{Apply: a}
}

// applied takes the entries of a finished Apply into the index, each only
// where the index still holds what the decision was made against (a local
// change in between is decided again at the peer's next index).
func (m *Machine) applied(e Applied) Ready {
	p := m.pending
	if p == nil || p.id != e.ID {
		return Ready{}
	}
	m.pending = nil
	if e.Err != "" {
		m.lastFail = e.Err
		return Ready{}
	}
	m.lastFail = ""
	var r Ready
	for _, path := range sortedKeys(p.take) {
		t := p.take[path]
		cur, ok := m.items[path]
		if ok != t.hadBase || ok && index.Compare(cur.Version, t.base) != index.Equal {
			continue
		}
		m.set(t.item, &r)
	}
	if len(r.Persist) > 0 {
		r.Send = m.sendTo(m.upMembers())
	}
	return r
}

// rejected reverts what a rejected Apply brought into the tree: for each
// such path a new version by this member of what it held before (its
// entry; a deletion where it had none), with a vector that contains the
// rejected one, so that every member that took the rejected version
// takes the revert like any newer version. The rejected version becomes
// a conflict record. What the Apply changed only in the index is dropped
// and decided again at the peer's next index.
func (m *Machine) rejected(e Rejected) Ready {
	p := m.pending
	if p == nil || p.id != e.ID {
		return Ready{}
	}
	m.pending = nil
	m.lastFail = e.Reason
	var r Ready
	for _, path := range sortedKeys(p.take) {
		t := p.take[path]
		if !t.tree {
			continue
		}
		cur, ok := m.items[path]
		if ok != t.hadBase || ok && index.Compare(cur.Version, t.base) != index.Equal {
			continue // changed here since: that version stands
		}
		rev := cur
		if !ok {
			rev = index.Item{Path: path, Kind: t.item.Kind, Deleted: true}
		}
		rev.MTime = max(m.now, t.item.MTime)
		rev.Version = Merge(cur.Version, t.item.Version).Bump(m.cfg.Self)
		m.set(rev, &r)
		c := conflictOf(path, m.now, rev, t.item)
		c.Reason = e.Reason
		c.Winner.Node, c.Loser.Node = m.cfg.Self, Author(t.item.Version, t.base)
		r.Records = append(r.Records, c)
	}
	if len(r.Persist) > 0 {
		r.Send = m.sendTo(m.upMembers())
	}
	return r
}

// peersUp makes peers reachable and sends them the index at once, one
// index for all of them (sendTo).
func (m *Machine) peersUp(peers []string) Ready {
	for _, p := range peers {
		m.up[p] = true
		m.sentAt[p], m.sentRev[p] = 0, 0
	}
	return Ready{Send: m.sendTo(peers)}
}

func (m *Machine) upMembers() []string {
	var out []string
	for _, p := range m.cfg.Members {
		if m.up[p] {
			out = append(out, p)
		}
	}
	return out
}

// sendTo returns the index for each of peers that has not been sent this
// revision of it, or not for Resend: one slice of items that the Messages
// share (the loop sends them as one index).
func (m *Machine) sendTo(peers []string) []Message {
	var out []Message
	var items []index.Item
	for _, p := range peers {
		if m.sentRev[p] == m.rev && m.now-m.sentAt[p] < m.cfg.Resend {
			continue
		}
		if items == nil {
			items = m.Items()
		}
		m.sentRev[p], m.sentAt[p] = m.rev, m.now
		out = append(out, Message{To: p, Items: items})
	}
	return out
}

// conflictOf is the record of winner beating loser at path. Its ID is a
// hash of the path and the loser's version, so every member that sees
// the same conflict gives it the same ID, and seeing it again changes
// nothing.
func conflictOf(path string, now int64, winner, loser index.Item) Conflict {
	h := sha256.New()
	h.Write([]byte(path))
	h.Write([]byte{0})
	for _, c := range loser.Version {
		h.Write([]byte(c.Node))
		h.Write(binary.BigEndian.AppendUint64([]byte{0}, c.Value))
	}
	h.Write(loser.Hash[:])
	if loser.Deleted {
		h.Write([]byte{1})
	}
	side := func(it index.Item, other index.Item) Side {
		s := Side{Node: Author(it.Version, other.Version), Deleted: it.Deleted, MTime: it.MTime, Version: it.Version.Clone()}
		if !it.Deleted {
			s.Hash, s.Size = it.Hash, it.Size
		}
		return s
	}
	return Conflict{ID: hex.EncodeToString(h.Sum(nil)[:8]), Path: path, Time: now, Winner: side(winner, loser), Loser: side(loser, winner)}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
