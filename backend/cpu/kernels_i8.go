package cpu

// The integer kernels for machines without AVX-512 VNNI (kindDenseI8): the
// same int8 activations as the AVX-512 path, multiplied with code bytes
// ≤ i8MaxLevel (q8LevelsI8) so that AVX2's VPMADDUBSW pair sums of two
// chunks add in int16 without overflow and ARM's SDOT (signed × signed)
// sees them as non-negative. Each architecture's
// kernels unpack a chunk of codes in their own order (i8Tables.perm); the
// activations are stored in that order. kernels_i8_amd64.go (AVX2) and
// kernels_i8_arm64.go (NEON) hold the kernels and their tables.

// q8LevelsI8 are the level bytes of the integer kernels: ≤ i8MaxLevel, the
// bound of the architecture's kernels without AVX-VNNI (64 on amd64, so that
// two VPMADDUBSW pair sums add in int16 without overflow; 127 on arm64, so
// that SDOT reads them as non-negative); with AVX-VNNI (vnni), whose
// VPDPBUSD sums unsigned × signed byte products straight into int32, ≤ 255
// like the AVX-512 path.
func q8LevelsI8(L []float32, k int, vnni bool) q8Levels {
	if vnni {
		return newQ8LevelsMax(L, k, 255)
	}
	return newQ8LevelsMax(L, k, i8MaxLevel)
}

// permuteChunks reorders q (whole chunks of len(perm) columns) into a
// kernel's slot order: q'[nc + s] = q[nc + perm[s]].
func permuteChunks(q []int8, perm []uint8) {
	var tmp [64]int8
	n := len(perm)
	for c := 0; c+n <= len(q); c += n {
		copy(tmp[:n], q[c:c+n])
		d := q[c : c+n : c+n]
		for s, p := range perm {
			d[s] = tmp[p]
		}
	}
}

// i8Lut builds the 32-byte VPSHUFB table of level bytes (16 entries,
// replicated over both lanes and over the bits above the code).
func i8Lut(q *q8Levels, k int) (t [32]byte) {
	for i := range t {
		c := uint8(i & 15 & (1<<k - 1))
		t[i] = byte(q.u(c))
	}
	return t
}
