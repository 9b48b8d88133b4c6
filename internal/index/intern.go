package index

import "encoding/binary"

// maxInterned bounds the distinct vectors one Vectors holds; past it the
// table starts over (the vectors handed out stay valid, later equal ones
// are simply not shared with them).
const maxInterned = 4096

// Vectors hands out one shared copy of each distinct version vector put
// through it, so that the items of a decoded index share their vectors
// instead of each holding its own slice and node strings (about 90 bytes
// per item at 100,000 files, where the items of a push job hold a handful
// of distinct vectors). Sharing is safe because a Vector is never changed
// in place: every method returns a new one. The zero value is ready; a
// Vectors is not safe for concurrent use.
type Vectors struct {
	m   map[string]Vector
	buf []byte
}

// Intern returns the vector equal to v that was interned first, or v
// itself, interned now. A nil or empty v is returned as it is.
func (vs *Vectors) Intern(v Vector) Vector {
	if len(v) == 0 {
		return v
	}
	vs.buf = binary.AppendUvarint(vs.buf[:0], uint64(len(v)))
	for _, c := range v {
		vs.buf = binary.AppendUvarint(vs.buf, uint64(len(c.Node)))
		vs.buf = append(vs.buf, c.Node...)
		vs.buf = binary.AppendUvarint(vs.buf, c.Value)
	}
	if s, ok := vs.Get(vs.buf); ok {
		return s
	}
	return vs.Put(vs.buf, v)
}

// Get returns the vector interned under key, its encoding (uvarint
// count, then per counter uvarint length, node, uvarint value: the bytes
// a store record holds it as), so that a decoder that finds it skips
// decoding and allocating the vector. A nil vs holds nothing.
func (vs *Vectors) Get(key []byte) (Vector, bool) {
	if vs == nil {
		return nil, false
	}
	v, ok := vs.m[string(key)]
	return v, ok
}

// Put interns v under key, its encoding (see Get), and returns it. The
// caller keeps key; v must not be changed afterwards. A nil vs returns v.
func (vs *Vectors) Put(key []byte, v Vector) Vector {
	if vs == nil {
		return v
	}
	if vs.m == nil || len(vs.m) >= maxInterned {
		vs.m = make(map[string]Vector)
	}
	vs.m[string(key)] = v
	return v
}
