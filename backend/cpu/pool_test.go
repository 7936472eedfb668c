package cpu

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestParallelForCoversOnce runs many short jobs of random sizes and
// alignments and checks that every index is handed to exactly one worker,
// in chunks that start on the alignment, and that worker ids are in range.
func TestParallelForCoversOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		b := New(threads)
		rng := rand.New(rand.NewPCG(1, uint64(threads)))
		for job := 0; job < 3000; job++ {
			n, align := 1+rng.IntN(300), 1+rng.IntN(20)
			hits := make([]atomic.Int32, n)
			var bad atomic.Int32
			b.ParallelFor(n, align, func(w, lo, hi int) {
				if w < 0 || w >= threads || lo%align != 0 || lo >= hi || hi > n {
					bad.Add(1)
					return
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			if bad.Load() != 0 {
				t.Fatalf("threads %d, n %d, align %d: bad worker id or chunk", threads, n, align)
			}
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("threads %d, n %d, align %d: index %d run %d times", threads, n, align, i, h)
				}
			}
		}
		b.Close()
		b.Close() // idempotent
	}
}

func TestPhysicalCores(t *testing.T) {
	n := PhysicalCores()
	if n < 1 || n > runtime.NumCPU() {
		t.Fatalf("PhysicalCores() = %d, want 1..%d", n, runtime.NumCPU())
	}
	if b := New(0); b.Threads() != n {
		t.Errorf("New(0) has %d threads, want %d", b.Threads(), n)
	} else {
		b.Close()
	}
}
