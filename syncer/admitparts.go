package syncer

import (
	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// partAdmission admits a complete announcement sent in parts as the parts
// arrive (it is the wire.PartSink of the job's Assembler): each part's
// items go into the announced index and are admitted at once, so a target
// never holds the decoded whole announcement, nor (when admission takes
// every item as it is, the usual case) a second index beside the
// announced one. Parts come in path order, parents before children, the
// order admit decides in; an item out of that order makes the admission
// wait for the whole (admit at the end), so the result is admit's in any
// case. Nothing is applied before the announcement completes: a part
// missing or refused (Drop) loses only this record.
//
// A job with templates admits a rendering by whether the announced index
// holds its template, which may come in a later part: such a job's
// announcements are assembled whole (Begin refuses them).
type partAdmission struct {
	j *job
	// version is the source version being admitted; complete is set
	// when its last part was taken (see onAnnounce).
	version  uint64
	complete bool
	f        *hostmon.Filter
	suid     bool // preserve_suid when it began
	// announced is every item taken; ad what admission made of them:
	// ad.want is announced itself while identity holds (every item taken
	// as it is).
	announced index.Index
	ad        admission
	identity  bool
	last      string // the path taken last
	unsorted  bool   // an item came out of path order: admit at the end
}

// Begin implements wire.PartSink: a complete announcement of a job
// without templates is admitted part by part.
func (p *partAdmission) Begin(first *wire.Announce) bool {
	p.Drop()
	if first.Base != 0 || !p.j.templates.Empty() {
		return false
	}
	p.version = first.Version
	p.f, p.suid = p.j.admitFilter(index.Index{}), p.j.cfg.PreserveSUID
	// not sized by a guess of the whole: an index grows a chunk at a time
	p.announced = index.New(0)
	p.ad = admission{want: p.announced}
	p.identity = true
	return true
}

// Take implements wire.PartSink: the items of the next part, admitted.
func (p *partAdmission) Take(items []wire.Item) {
	for _, w := range items {
		it := wire.ToItem(w)
		if p.unsorted || (p.announced.Len() > 0 && w.Path <= p.last) {
			p.unsorted = true
			p.announced.Set(it)
			continue
		}
		p.last = w.Path
		if p.identity {
			if admitsAsIs(w.Path, it, p.f, p.suid) {
				p.announced.Set(it)
				continue
			}
			// the first item admission changes: want is an index of its
			// own from here on
			p.ad.want = p.announced.Clone()
			p.identity = false
		}
		p.announced.Set(it)
		p.ad.take(w.Path, it, p.f, p.suid)
	}
}

// Drop implements wire.PartSink, and lets go of a result not used.
func (p *partAdmission) Drop() {
	*p = partAdmission{j: p.j}
}

// settle lets go of the admission of a complete announcement that was
// not used (one being assembled is kept).
func (p *partAdmission) settle() {
	if p.complete {
		p.Drop()
	}
}

// result returns the announced index of the complete announcement of
// version and its admission, and lets go of them; ok is false when that
// announcement was not admitted part by part.
func (p *partAdmission) result(version uint64) (announced index.Index, ad admission, ok bool) {
	if !p.complete || p.version != version || p.announced.IsNil() {
		return index.Index{}, admission{}, false
	}
	announced, ad = p.announced, p.ad
	f := p.j.admitFilter(announced)
	if p.unsorted || f != p.f || p.suid != p.j.cfg.PreserveSUID {
		ad = admit(announced, f, p.j.cfg.PreserveSUID)
	}
	p.Drop()
	return announced, ad, true
}
