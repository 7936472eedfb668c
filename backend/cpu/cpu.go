// Package cpu is the CPU backend: a persistent worker pool that splits matrix
// rows across cores, and kernels per weight encoding. Encodings without a
// fused kernel go through the generic path: decode a block of rows once,
// then multiply it by every token of the batch.
package cpu

import (
	"runtime"
	"sync"

	"github.com/upg-ai/upg/tensor"
)

// rowBlock is how many rows a worker decodes at a time on the generic path.
const rowBlock = 16

// Backend is the CPU implementation of backend.Backend.
type Backend struct {
	threads int
	work    chan task
	wg      sync.WaitGroup
	scratch [][]float32 // per worker decode buffer
	once    sync.Once
}

type task struct {
	fn     func(worker, lo, hi int)
	lo, hi int
	worker int
	done   *sync.WaitGroup
}

// New starts a backend with the given number of worker threads (0 = number of CPUs).
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	b := &Backend{threads: threads, work: make(chan task, threads), scratch: make([][]float32, threads)}
	for i := 0; i < threads; i++ {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for t := range b.work {
				t.fn(t.worker, t.lo, t.hi)
				t.done.Done()
			}
		}()
	}
	return b
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cpu/generic" }

// Threads reports the worker count.
func (b *Backend) Threads() int { return b.threads }

// Close stops the workers.
func (b *Backend) Close() {
	b.once.Do(func() {
		close(b.work)
		b.wg.Wait()
	})
}

// ParallelFor splits [0, n) into one contiguous range per worker (ranges are
// multiples of align where possible) and runs fn on each concurrently.
func (b *Backend) ParallelFor(n, align int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	if align < 1 {
		align = 1
	}
	chunks := (n + align - 1) / align
	workers := min(b.threads, chunks)
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	var done sync.WaitGroup
	done.Add(workers)
	for w := 0; w < workers; w++ {
		lo := (chunks * w / workers) * align
		hi := min((chunks*(w+1)/workers)*align, n)
		b.work <- task{fn: fn, lo: lo, hi: hi, worker: w, done: &done}
	}
	done.Wait()
}

// MatMul implements backend.Backend.
func (b *Backend) MatMul(dst, x []float32, w tensor.Matrix, n int) {
	R, C := w.Rows(), w.Cols()
	if d, ok := w.(*tensor.Dense); ok && d.F32Data != nil {
		b.ParallelFor(R, rowBlock, func(_, lo, hi int) {
			for r := lo; r < hi; r++ {
				row := d.F32Data[r*C : (r+1)*C]
				for t := 0; t < n; t++ {
					dst[t*R+r] = Dot(row, x[t*C:(t+1)*C])
				}
			}
		})
		return
	}
	b.ParallelFor(R, rowBlock, func(worker, lo, hi int) {
		buf := b.scratch[worker]
		if len(buf) < rowBlock*C {
			buf = make([]float32, rowBlock*C)
			b.scratch[worker] = buf
		}
		for r0 := lo; r0 < hi; r0 += rowBlock {
			r1 := min(r0+rowBlock, hi)
			w.DecodeRows(buf, r0, r1)
			for r := r0; r < r1; r++ {
				row := buf[(r-r0)*C : (r-r0+1)*C]
				for t := 0; t < n; t++ {
					dst[t*R+r] = Dot(row, x[t*C:(t+1)*C])
				}
			}
		}
	})
}

// Dot is a float32 dot product with four independent accumulators.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
