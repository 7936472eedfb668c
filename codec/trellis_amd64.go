package codec

import "golang.org/x/sys/cpu"

//go:noescape
func trellisStepAVX512(k int, cost, next, m, mt *float32, bp, idx *uint8, d *float32)

func trellisStepAsm(k int, cost, next, m, mt []float32, bp, idx []uint8, d *[TrellisCodebookSize]float32) {
	u := 1 << (TrellisStateBits - k)
	_, _, _, _, _, _ = cost[trellisStates-1], next[trellisStates-1], m[u-1], mt[u-1], bp[u-1], idx[trellisStates-1]
	trellisStepAVX512(k, &cost[0], &next[0], &m[0], &mt[0], &bp[0], &idx[0], &d[0])
}

func init() {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW {
		trellisStep = trellisStepAsm
	}
}
