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

// rollSum returns h over p.
func rollSum(p []byte) uint64 {
	var h uint64
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
