//go:build linux

package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"

	"github.com/upg-ai/upg/codec"
)

// threadCPU is the calling thread's CPU time in seconds (RUSAGE_THREAD).
func threadCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru) // RUSAGE_THREAD
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkDenseCPU is the single-core kernel throughput on Phi-4's 5120-
// and 17920-column shapes (3-bit lloyd, group 128, no rotation) for one
// token (decode) and 64 (prefill tiles), measured in the thread's CPU time
// rather than wall time, so that other processes on a shared machine slow
// it less: "GB/s-cpu" = weight bytes × tokens / CPU seconds of the one
// worker (the calling goroutine, locked to its thread).
func BenchmarkDenseCPU(b *testing.B) {
	for _, sh := range [][2]int{{5120, 5120}, {5120, 17920}} {
		p := codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd"}
		for _, kc := range benchKernels() {
			for _, n := range []int{1, 64} {
				b.Run(fmt.Sprintf("%s/%dx%d/n%d", kc.name, sh[0], sh[1], n), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					m, sz := phiMatrix(b, sh[0], sh[1], p)
					be := kc.new(1)
					defer be.Close()
					x := randVec(rand.New(rand.NewPCG(2, 3)), n*sh[1], 1)
					dst := make([]float32, n*sh[0])
					be.MatMulF32(dst, x, m, n)
					b.SetBytes(sz * int64(n))
					b.ResetTimer()
					c0 := threadCPU()
					for i := 0; i < b.N; i++ {
						be.MatMulF32(dst, x, m, n)
					}
					b.ReportMetric(float64(sz)*float64(n)*float64(b.N)/(threadCPU()-c0)/1e9, "GB/s-cpu")
				})
			}
		}
	}
}
