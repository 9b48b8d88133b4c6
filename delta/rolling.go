package delta

// The weak checksum is a polynomial rolling hash (Rabin–Karp) over a window
// of blockSize bytes, computed modulo 2^64:
//
//	h(b[0..n)) = Σ b[i]·M^(n-1-i)
//
// Sliding the window one byte to the right is
//
//	h' = (h − out·M^(n-1))·M + in
//
// The weak checksum of a block is the top 32 bits of h, which depend on
// every byte of the window (the low bits of a product mod 2^64 do not). It
// mixes far better than rsync's Adler-style sum on text, where that sum's
// two 16-bit halves cluster, so a 32-bit weak sum gives few false
// candidates.

// rollMul is the odd multiplier M (the 64-bit golden ratio).
const rollMul = 0x9E3779B97F4A7C15

// Powers of rollMul mod 2^64 for rollSum's eight-byte steps (checked by
// TestRollPowers).
const (
	m2 = 0xDF442D22CE4859B9
	m3 = 0x604A5CE3ADDEF82D
	m4 = 0xD94363FC538227B1
	m5 = 0x2E2B795F2D10FD85
	m6 = 0x4BE7956E30A337E9
	m7 = 0x5ECB31E4CCD2721D
	m8 = 0x06D4B2611BEB6861
)

// rollSum returns h over p. Eight bytes at a time, the chain of dependent
// multiplies is one per eight bytes instead of one per byte.
func rollSum(p []byte) uint64 {
	var h uint64
	for ; len(p) >= 8; p = p[8:] {
		h = h*m8 + uint64(p[0])*m7 + uint64(p[1])*m6 + uint64(p[2])*m5 + uint64(p[3])*m4 +
			uint64(p[4])*m3 + uint64(p[5])*m2 + uint64(p[6])*rollMul + uint64(p[7])
	}
	for _, b := range p {
		h = h*rollMul + uint64(b)
	}
	return h
}

// rollPow returns M^(n-1), the weight of the byte leaving a window of n.
func rollPow(n int) uint64 {
	p := uint64(1)
	for i := 1; i < n; i++ {
		p *= rollMul
	}
	return p
}

// rollOut slides the window: removes out (weighted by pow = rollPow(n)) and
// appends in.
func rollOut(h, pow uint64, out, in byte) uint64 {
	return (h-uint64(out)*pow)*rollMul + uint64(in)
}

// weakOf returns the 32-bit weak checksum carried in signatures.
func weakOf(h uint64) uint32 { return uint32(h >> 32) }
