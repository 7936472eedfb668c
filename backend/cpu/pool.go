package cpu

import (
	"sync"
	"sync/atomic"
)

// pool is a persistent set of worker goroutines. A job is published by
// bumping an epoch counter; idle workers spin on it for a while (a decode
// step issues hundreds of short jobs per token, and waking a sleeping
// goroutine costs tens of microseconds) before they sleep on a condition
// variable. Work is handed out by guided self-scheduling: each grab takes
// a share of what is left (large contiguous ranges first, for streaming;
// small ones at the end, so workers finish together), and a worker slowed
// by the memory system or the OS takes fewer chunks instead of making
// everyone wait for it.
type pool struct {
	threads int

	epoch    atomic.Uint64 // bumped once per job
	pending  atomic.Int32  // workers (other than the caller) still in the job
	next     atomic.Int64  // next unit to hand out
	sleepers atomic.Int32
	quit     atomic.Bool

	// The job in flight; written before epoch is bumped.
	fn       func(worker, lo, hi int)
	n, align int
	units    int // ⌈n/align⌉
	joined   int // workers taking part (the caller included)
	mu       sync.Mutex
	cond     *sync.Cond
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// spinRounds is how many pause rounds an idle worker spins (about 100 µs)
// before it sleeps.
const spinRounds = 2000

// guidedShare: a grab takes 1/(guidedShare·workers) of the units left.
const guidedShare = 2

func (p *pool) start(threads int) {
	p.threads = threads
	p.cond = sync.NewCond(&p.mu)
	for w := 1; w < threads; w++ {
		p.wg.Add(1)
		go p.worker(w)
	}
}

func (p *pool) stop() {
	p.stopOnce.Do(func() {
		p.quit.Store(true)
		p.epoch.Add(1)
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
		p.wg.Wait()
	})
}

// run executes fn over [0, n) in chunks of a multiple of align.
func (p *pool) run(n, align int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	align = max(align, 1)
	units := (n + align - 1) / align
	workers := min(p.threads, units)
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	p.fn, p.n, p.align, p.units = fn, n, align, units
	p.joined = workers
	p.next.Store(0)
	p.pending.Store(int32(p.threads - 1))
	p.epoch.Add(1)
	if p.sleepers.Load() > 0 {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	p.work(0)
	for p.pending.Load() > 0 {
		pause()
	}
	p.fn = nil
}

// work takes chunks of the current job until none is left.
func (p *pool) work(w int) {
	div := int64(guidedShare * p.joined)
	units := int64(p.units)
	for {
		cur := p.next.Load()
		if cur >= units {
			return
		}
		end := min(units, cur+max(1, (units-cur)/div))
		if !p.next.CompareAndSwap(cur, end) {
			continue
		}
		p.fn(w, int(cur)*p.align, min(int(end)*p.align, p.n))
	}
}

func (p *pool) worker(w int) {
	defer p.wg.Done()
	var seen uint64 // the epoch before the first job: a worker that starts late still joins it
	for {
		e := p.epoch.Load()
		for i := 0; e == seen && i < spinRounds; i++ {
			pause()
			e = p.epoch.Load()
		}
		if e == seen {
			p.mu.Lock()
			p.sleepers.Add(1)
			for e = p.epoch.Load(); e == seen; e = p.epoch.Load() {
				p.cond.Wait()
			}
			p.sleepers.Add(-1)
			p.mu.Unlock()
		}
		seen = e
		if p.quit.Load() {
			return
		}
		if w < p.joined {
			p.work(w)
		}
		p.pending.Add(-1)
	}
}
