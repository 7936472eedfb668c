package cpu

import (
	"math/rand/v2"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
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

// TestPoolNarrowsAndProbes drives the adaptation with synthetic windows:
// stalls above 1/stallFraction of a window narrow the pool by one worker,
// jobs then use only the workers still active, and once the probe delay
// has passed the pool tries its full width again.
func TestPoolNarrowsAndProbes(t *testing.T) {
	b := New(4)
	defer b.Close()
	p := &b.pool
	// window ends a window of 2·adaptPeriod whose stalls took half of it, or none.
	window := func(stalled bool) {
		p.windowStart = time.Now().Add(-2 * adaptPeriod)
		p.jobs, p.stallTime = adaptWindow-1, 0
		stall := time.Duration(0)
		if stalled {
			stall = adaptPeriod
		}
		p.adapt(stall)
	}
	window(false)
	if p.active != 4 {
		t.Fatalf("a quiet window narrowed the pool to %d", p.active)
	}
	window(true)
	if p.active != 3 {
		t.Fatalf("after a stalled window: %d workers, want 3", p.active)
	}
	var seen [4]atomic.Int32
	b.ParallelFor(1000, 1, func(w, lo, hi int) { seen[w].Add(1) })
	if seen[3].Load() != 0 || seen[0].Load() == 0 {
		t.Errorf("narrowed pool: chunks per worker %v, want none for worker 3", &seen)
	}
	window(true)
	window(true)
	window(true)
	if p.active != 1 {
		t.Fatalf("after four stalled windows: %d workers, want 1", p.active)
	}
	window(false)
	if p.active != 1 {
		t.Fatalf("probed before the backoff passed: %d workers", p.active)
	}
	if p.backoff <= minBackoff {
		t.Errorf("backoff %v did not grow", p.backoff)
	}
	p.probeAt = time.Now().Add(-time.Millisecond)
	window(false)
	if p.active != 4 {
		t.Fatalf("probe: %d workers, want 4", p.active)
	}
	window(false)
	if p.active != 4 || p.backoff != minBackoff {
		t.Errorf("a quiet full-width window: %d workers, backoff %v; want 4, %v", p.active, p.backoff, minBackoff)
	}
	// A long stall decides at once, without waiting for a whole window.
	p.windowStart, p.jobs, p.stallTime = time.Now().Add(-time.Millisecond), 0, 0
	p.adapt(3 * time.Millisecond)
	if p.active != 3 {
		t.Errorf("a 3 ms stall 1 ms into a window: %d workers, want 3", p.active)
	}
}

// BenchmarkPoolUnderContention measures jobs/s of a full-width pool with
// one competing busy process against a one-thread pool's (a speed, so a
// benchmark: no timing thresholds in tests). The old pool reached 3-55% of
// one thread's rate; docs/benchmarks.md has the numbers.
func BenchmarkPoolUnderContention(b *testing.B) {
	cores := PhysicalCores()
	if testing.Short() || cores < 2 || runtime.GOOS != "linux" {
		b.Skip("needs Linux, 2+ cores and not -short")
	}
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		b.Skipf("cannot start a busy process: %v", err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	full, one := New(cores), New(1)
	defer full.Close()
	defer one.Close()
	var sink atomic.Uint64
	job := func(w, lo, hi int) {
		x := uint64(lo)
		for i := lo * 30; i < hi*30; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink.Add(x)
	}
	rate := func(be *Backend) float64 {
		start := time.Now()
		n := 0
		for time.Since(start) < 150*time.Millisecond {
			be.ParallelFor(64*cores, 1, job)
			n++
		}
		return float64(n) / time.Since(start).Seconds()
	}
	var bestFull, bestOne float64
	for r := 0; r < 3*b.N; r++ {
		bestFull = max(bestFull, rate(full))
		bestOne = max(bestOne, rate(one))
	}
	b.ReportMetric(bestFull, "jobs/s-full")
	b.ReportMetric(bestOne, "jobs/s-one-thread")
	b.ReportMetric(100*bestFull/bestOne, "%-of-one-thread")
}

// TestPoolSlowWorkerTail: a worker that is slow right after leaving a job
// (here it sleeps there every few jobs) must not wake the caller of the next
// job, which would return while that worker still runs the job, reading the
// fields the caller then overwrites for the one after (the race detector
// found this in the serve tests). Run under -race (scripts/test.sh); without
// it, the chunk checks below catch the cases that mix two jobs' fields.
func TestPoolSlowWorkerTail(t *testing.T) {
	var calls atomic.Int64
	workerTail = func() {
		if calls.Add(1)%3 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	defer func() { workerTail = nil }()
	b := New(2)
	defer b.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	for job := 0; job < 4000; job++ {
		n, align := 64+rng.IntN(2000), 1+rng.IntN(8)
		var done, bad atomic.Int64
		b.ParallelFor(n, align, func(w, lo, hi int) {
			if lo%align != 0 || lo >= hi || hi > n {
				bad.Add(1)
			}
			done.Add(int64(hi - lo))
		})
		if bad.Load() != 0 || done.Load() != int64(n) {
			t.Fatalf("job %d (n %d, align %d): %d bad chunks, %d of %d indices", job, n, align, bad.Load(), done.Load(), n)
		}
	}
}
