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

// BenchmarkSmallCPU is the single-core kernel cost on miniphi-29m's matrix
// shapes (all in cache), for one token and for a decode batch of 8 (one
// q8Tile tile), in the thread's CPU time: "ns/tok-cpu" is what one token's
// row of the multiply costs, the number batched decoding of a small model
// is made of.
func BenchmarkSmallCPU(b *testing.B) {
	for _, c := range []struct {
		rows, cols int
		p          codec.Params
	}{
		{3584, 512, codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 5}},
		{768, 512, codec.Params{Codec: "dense", Bits: 4, GroupSize: 256, Levels: "lloyd", Rotate: 5}},
		{512, 1792, codec.Params{Codec: "dense", Bits: 4, GroupSize: 256, Levels: "lloyd", Rotate: 5}},
	} {
		for _, kc := range benchKernels() {
			for _, n := range []int{1, 8} {
				b.Run(fmt.Sprintf("%s/%dx%d/q%dg%d/n%d", kc.name, c.rows, c.cols, c.p.Bits, c.p.GroupSize, n), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					m, _ := phiMatrix(b, c.rows, c.cols, c.p)
					be := kc.new(1)
					defer be.Close()
					x := randVec(rand.New(rand.NewPCG(2, 3)), n*c.cols, 1)
					dst := make([]float32, n*c.rows)
					be.MatMulF32(dst, x, m, n)
					b.ResetTimer()
					c0 := threadCPU()
					for i := 0; i < b.N; i++ {
						be.MatMulF32(dst, x, m, n)
					}
					b.ReportMetric((threadCPU()-c0)*1e9/float64(b.N*n), "ns/tok-cpu")
				})
			}
		}
	}
}
