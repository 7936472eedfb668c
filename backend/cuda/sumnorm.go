//go:build linux && (amd64 || arm64)

package cuda

import (
	"os"
	"unsafe"
)

// A split-K sum left for the next op. A projection whose output is added to
// the residual (o, down) runs at 2-256 tokens as split-K parts that
// upg_splitk_sum adds into y and the residual x; the op after it is, in a
// decoder layer, the next RMSNorm of x fused with the rotation for its
// matrix (upg_rms_rotq). Both are short kernels whose boundary costs more
// than their work (NOTES.md run 110: 2.3 µs for the sum, ~5.5 for the norm
// at batch 32). So the projection leaves its sum pending in the scratch
// (Scratch.unsummed), and upg_splitk_rms_rotq does both in one launch, its
// blocks a token's cluster; any other op first launches the pending sum as
// before (Backend.run, flushSum).

// SumNormEnv set to 0 keeps the split-K sum and the RMSNorm's rotation as
// two launches (comparisons).
const SumNormEnv = "UPG_CUDA_SUM_NORM"

var sumNormOn = os.Getenv(SumNormEnv) != "0"

// maxCluster is the largest portable thread-block cluster.
const maxCluster = 8

// splitSum is a pending upg_splitk_sum: S parts of n rows of R floats at
// part, summed into y and added to res.
type splitSum struct {
	part, y, res DevPtr
	S, n, R      int
}

// clusterProbe sets d.clusters: the device launches clusters (sm_90,
// cuLaunchKernelEx) and the code loaded for it has the cluster kernels
// (upg_cluster_probe; a module without the probe, e.g. an older fatbin
// named by UPG_CUDA_FATBIN, has not). Owner thread.
func (d *Device) clusterProbe() error {
	d.clusters = false
	if d.Major < 9 || sym.cuLaunchKernelEx == 0 {
		return nil
	}
	if _, err := d.function("upg_cluster_probe"); err != nil {
		return nil
	}
	p, err := d.alloc(4, "cluster probe")
	if err != nil {
		return err
	}
	defer d.free(p)
	var v int32 = -1
	if err := d.launchK("upg_cluster_probe", [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, Ptr(p)); err != nil {
		return err
	}
	if err := d.dtoh(unsafe.Pointer(&v), p, 4); err != nil {
		return err
	}
	d.clusters = v == 1
	return nil
}

// withCluster runs launch with the launches it makes grouped in clusters
// of shape c (owner thread).
func (d *Device) withCluster(c [3]uint32, launch func() error) error {
	d.cluster = c
	defer func() { d.cluster = [3]uint32{} }()
	return launch()
}

// sumNorms reports whether upg_splitk_rms_rotq can take sum and the
// RMSNorm of its residual (rows x of g.C) for g: the cluster kernels are
// loaded, the sum's residual is x with g's row width, and g's segments fit
// one cluster in the kernel's layout (a float4 per thread and segment).
func (d *Device) sumNorms(g *DenseGPU, sum *splitSum, x DevPtr, n int) bool {
	p := g.plan
	return sumNormOn && d.clusters && sum.res == x && sum.n == n && sum.R == g.C && g.C%4 == 0 &&
		p.seg%4 == 0 && p.seg <= 4*rotqThreads && p.segments() <= maxCluster
}

// flushSum launches the scratch's pending split-K sum, if any (owner
// thread).
func (d *Device) flushSum(s *Scratch) error {
	p := s.unsummed
	if p == nil {
		return nil
	}
	s.unsummed = nil
	return d.launchK("upg_splitk_sum", [3]uint32{uint32((p.n*p.R + 255) / 256), 1, 1}, b256, 0,
		Ptr(p.part), I32(p.S), Ptr(p.y), Ptr(p.res), I32(p.n*p.R))
}

// splitRmsRotq is flushSum followed by rmsRotq(g, h, x, w, eps, n, s) in one
// launch (sumNorms must hold).
func (d *Device) splitRmsRotq(g *DenseGPU, sum *splitSum, h, x, w DevPtr, eps float32, n int, s *Scratch) error {
	p := g.plan
	segs := uint32(p.segments())
	return d.withCluster([3]uint32{segs, 1, 1}, func() error {
		return d.launchK("upg_splitk_rms_rotq", [3]uint32{segs, uint32(n), 1}, [3]uint32{rotqThreads, 1, 1}, uint32(8*p.seg),
			append([]Arg{Ptr(sum.part), I32(sum.S), I32(n * g.C), Ptr(sum.y), Ptr(x), Ptr(w), F32(eps), Ptr(h)}, g.rotqTail(s)...)...)
	})
}
