//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"runtime"
	"sync"

	"github.com/upg-ai/upg/codec"
)

// The sparse codec on the GPU (kernels/sparse.cu). A sparse matrix is a
// DenseGPU whose spMask holds each row's kept set as a bitmap of spMW
// 32-bit words (the N:M ranks and unstructured lists turned into one; an
// unstructured bitmap is its own bytes), codes the file's code rows (spCW
// words each), scales the file's R×G fp16 and levels the 2^k code values.
// spMW is 0 for every other encoding.

// sparseFusable reports whether the sparse kernels handle m, and why not:
// the kernels divide a column by the group size with a multiply-high,
// exact while C·gs < 2^32.
func sparseFusable(m *codec.SparseMatrix) (bool, string) {
	if m.GroupSize < 2 || int64(m.C)*int64(m.GroupSize) >= 1<<32 {
		return false, "sparse group size outside the kernels' range"
	}
	if m.CodeRowBytes%4 != 0 {
		return false, "sparse code rows not whole 32-bit words"
	}
	return true, ""
}

// sparseMaskWords is the bitmap's words per row.
func sparseMaskWords(C int) int { return (C + 31) / 32 }

// groupMagic is ceil(2^32 / gs): for c·gs < 2^32, (c·magic) >> 32 = c / gs
// (kernels/sparse.cu, sparse_group).
func groupMagic(gs int) uint32 { return uint32((1<<32 + uint64(gs) - 1) / uint64(gs)) }

// sparseMask builds the kept-set bitmap of every row, R × spMW words,
// little-endian (rows split over the CPUs: a 14B model has ~10^9 entries).
func sparseMask(m *codec.SparseMatrix) []byte {
	mw := sparseMaskWords(m.C)
	out := make([]byte, 4*m.R*mw)
	workers := max(1, min(runtime.GOMAXPROCS(0), m.R/64))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(r0, r1 int) {
			defer wg.Done()
			cols := make([]int32, m.K)
			words := make([]uint32, mw)
			for r := r0; r < r1; r++ {
				clear(words)
				m.KeptCols(r, cols)
				for _, c := range cols {
					if int(c) < m.C { // N:M pads are not columns
						words[c>>5] |= 1 << (c & 31)
					}
				}
				for i, v := range words {
					binary.LittleEndian.PutUint32(out[4*(r*mw+i):], v)
				}
			}
		}(m.R*w/workers, m.R*(w+1)/workers)
	}
	wg.Wait()
	return out
}

// sparseBytes is the device memory of an uploaded sparse matrix.
func sparseBytes(m *codec.SparseMatrix) int64 {
	R := int64(m.R)
	return R*int64(4*sparseMaskWords(m.C)) + R*int64(m.CodeRowBytes) + 2*R*int64(m.Groups) + int64(4<<m.Bits)
}

func (d *Device) uploadSparse(m *codec.SparseMatrix) (*DenseGPU, error) {
	g := &DenseGPU{R: m.R, C: m.C, K: m.Bits, G: m.Groups, GS: m.GroupSize,
		spMW: sparseMaskWords(m.C), spCW: m.CodeRowBytes / 4}
	var err error
	up := d.uploader(g, &err)
	g.spMask = up("weights", sparseMask(m))
	g.codes = up("weights", m.Codes[:m.R*m.CodeRowBytes])
	g.scales = up("scales", m.Scales[:2*m.R*m.Groups])
	g.levels = up("levels", f32Bytes(m.Levels))
	if err != nil {
		g.Free(d)
		return nil, err
	}
	return g, nil
}

// sparseArgs is the kernels' SPARSE_ARGS.
func (g *DenseGPU) sparseArgs() []Arg {
	gword := 0 // groups of whole mask words: one scale per word
	if g.GS%32 == 0 {
		gword = 1
	}
	return []Arg{Ptr(g.spMask), I32(g.spMW), Ptr(g.codes), I32(g.spCW), Ptr(g.scales), I32(g.G),
		U32(groupMagic(g.GS)), I32(gword), Ptr(g.levels), I32(g.K)}
}

// sparseMatMul enqueues y = W·x for n tokens of a sparse matrix (float
// activations x, ldx floats apart), up to 8 tokens a launch: blocks of
// 1,024 threads, one warp per row.
func (d *Device) sparseMatMul(g *DenseGPU, y, x DevPtr, ldx, n int) error {
	for t0 := 0; t0 < n; t0 += 8 {
		nt := min(8, n-t0)
		name := "upg_gemv_sparse_t8"
		if nt == 1 {
			name = "upg_gemv_sparse_t1"
		}
		args := append(g.sparseArgs(), Ptr(x+DevPtr(4*t0*ldx)), I32(ldx), Ptr(y+DevPtr(4*t0*g.R)), I32(g.R), I32(g.C), I32(nt))
		if err := d.launchK(name, [3]uint32{uint32((g.R + 31) / 32), 1, 1}, [3]uint32{1024, 1, 1}, 0, args...); err != nil {
			return err
		}
	}
	return nil
}

// embedSparse writes rows tokens[0..n) of a sparse matrix into dst.
func (d *Device) embedSparse(g *DenseGPU, tokens, dst DevPtr, n int) error {
	return d.launchK("upg_embed_sparse", [3]uint32{uint32(n), 1, 1}, [3]uint32{32, 1, 1}, 0,
		append(g.sparseArgs(), Ptr(tokens), Ptr(dst), I32(g.C))...)
}
