package cpu

import (
	"sync"
	"sync/atomic"
	"time"
)

// pool is a persistent set of worker goroutines. A job is published by
// bumping an epoch counter; idle workers spin on it for a while (a decode
// step issues hundreds of short jobs per token, and waking a sleeping
// goroutine costs tens of microseconds) before they sleep until a job
// wakes them. Work is handed out by guided self-scheduling: each grab takes
// a share of what is left (large contiguous ranges first, for streaming;
// small ones at the end, so workers finish together), and a worker slowed
// by the memory system or the OS takes fewer chunks instead of making
// everyone wait for it.
//
// Oversubscription (another busy process, or more threads than cores): a
// worker the OS has descheduled still holds its chunk or has not yet
// acknowledged the job, and everyone else would wait for it. So the caller
// spins only briefly (~50 µs) at the end of a job and then sleeps (giving
// its core to the descheduled worker), and the pool watches how much of its
// time goes into such sleeps: when it is more than 1/stallFraction of the
// time over a window of jobs, the pool runs its jobs on one worker fewer
// (the others sleep), and later tries the full width again (after a delay
// that doubles, up to a second, while the contention lasts). With one busy
// process on a 2-core machine this runs decode on one thread instead of
// two threads that keep waiting for each other (docs/benchmarks.md).
type pool struct {
	threads int

	// epoch is seq<<16 | joined: bumped once per job, together with how
	// many workers (the caller included) take part in it.
	epoch atomic.Uint64
	// pending is the joined workers (other than the caller) still in the
	// job, plus waitBit while the caller sleeps until they are done.
	pending atomic.Int32
	next    atomic.Int64 // next unit to hand out
	quit    atomic.Bool

	// The job in flight; written before epoch is bumped.
	fn       func(worker, lo, hi int)
	n, align int
	units    int // ⌈n/align⌉
	joined   int // workers taking part (the caller included)

	workers []poolWorker // [1, threads)
	done    chan struct{}

	// Adaptation to contention; only the caller touches these.
	active      int           // workers a job may use now (1..threads)
	jobs        int           // jobs in the current window
	stallTime   time.Duration // time the caller waited for descheduled workers in this window
	windowStart time.Time
	probeAt     time.Time     // when to try the full width again
	backoff     time.Duration // delay before the next probe

	wg       sync.WaitGroup
	stopOnce sync.Once
}

// poolWorker is one worker's sleep state.
type poolWorker struct {
	sleeping atomic.Bool   // set by the worker before it blocks on wake
	wake     chan struct{} // one token per claimed sleep
	_        [48]byte      // keep workers' flags on separate cache lines
}

const (
	// spinRounds is how many pause rounds an idle worker spins (about
	// 300 µs) before it sleeps: longer than the host's share of a batched
	// decode step of a small model (sampling 8 sequences, building the
	// step, ~100-150 µs), so that the workers are still spinning when the
	// next step's first parallel op comes (waking a sleeping one took
	// ~100 µs on the development VM).
	spinRounds = 6000
	// waitSpin is how many pause rounds the caller spins at the end of a
	// job before it sleeps until the last worker is done (about 50 µs: in
	// a quiet machine every worker finishes within one short chunk, or
	// within the latency of waking it).
	// wakeSpin is the same after waking a sleeping worker (about 150 µs):
	// a parked caller is readied onto the worker's P, behind the worker's
	// own spinning, so parking costs more than waiting for the wake-up.
	waitSpin = 1000
	wakeSpin = 3000
	// A window, between decisions, is a multiple of adaptWindow jobs
	// lasting at least adaptPeriod: long enough that a short hiccup
	// (an interrupt, a kernel thread) does not count as contention.
	// A window ends early once its stalls add up to minStall and to
	// 1/stallFraction of it: under heavy contention a window of full width
	// would otherwise run slowly for a long time.
	adaptWindow = 256
	adaptPeriod = 20 * time.Millisecond
	minStall    = 2 * time.Millisecond
	// stallFraction: narrow the pool when the caller sleeps waiting for
	// workers more than 1/stallFraction of a window's time (a quiet
	// machine: 2-5%, waking workers after a pause between tokens; one
	// busy process on a 2-core machine: 30% and more).
	stallFraction = 8
	// minBackoff, maxBackoff bound the delay before probing the full width.
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

// guidedShare: a grab takes 1/(guidedShare·workers) of the units left.
const guidedShare = 2

// waitBit, added to pending by a caller that goes to sleep, makes the
// worker whose decrement leaves exactly waitBit (the last one, with the
// caller asleep) send on done. Count and flag in one word make a worker's
// decrement and its check one operation: with a separate flag, a worker
// slowed between the two saw the next job's caller asleep and woke it while
// that job still ran on it, so the caller went on to write the job after's
// fields under the worker (the serve tests' race detector found it;
// TestPoolSlowWorkerTail).
const waitBit = 1 << 30

func (p *pool) start(threads int) {
	p.threads = threads
	p.active = threads
	p.backoff = minBackoff
	p.windowStart = time.Now()
	p.done = make(chan struct{}, 1)
	p.workers = make([]poolWorker, threads)
	for w := 1; w < threads; w++ {
		p.workers[w].wake = make(chan struct{}, 1)
		p.wg.Add(1)
		go p.worker(w)
	}
}

func (p *pool) stop() {
	p.stopOnce.Do(func() {
		p.quit.Store(true)
		p.epoch.Add(1 << 16)
		for w := 1; w < p.threads; w++ {
			p.wakeWorker(w)
		}
		p.wg.Wait()
	})
}

// wakeWorker wakes worker w if it is asleep.
func (p *pool) wakeWorker(w int) bool {
	if sl := &p.workers[w].sleeping; sl.Load() && sl.CompareAndSwap(true, false) { // a plain load keeps a spinning worker's line shared
		p.workers[w].wake <- struct{}{}
		return true
	}
	return false
}

// prewake wakes the sleeping workers that the next job may use, without
// giving them a job: they spin on the epoch as after a job (spinRounds),
// so a job that comes within that time starts on every worker at once
// instead of waiting tens of microseconds for the OS to run them. A caller
// about to issue jobs after a long stretch of work of its own (the host's
// part of a decode step) calls it first.
func (p *pool) prewake() {
	for w := 1; w < p.active; w++ {
		p.wakeWorker(w)
	}
}

// run executes fn over [0, n) in chunks of a multiple of align.
func (p *pool) run(n, align int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	align = max(align, 1)
	units := (n + align - 1) / align
	workers := min(p.active, units)
	if workers <= 1 {
		fn(0, 0, n)
		p.adapt(0)
		return
	}
	p.fn, p.n, p.align, p.units = fn, n, align, units
	p.joined = workers
	p.next.Store(0)
	p.pending.Store(int32(workers - 1))
	seq := p.epoch.Load()>>16 + 1
	// Swap, not Store: a read-modify-write orders this publication before
	// the loads of the workers' sleeping flags below on every machine, also
	// in qemu-user, which maps arm64's store-release/load-acquire pairs onto
	// x86 without the store-load fence this handshake needs (a lost wake-up
	// there deadlocked the golden tests once: the caller waiting for done,
	// the worker for wake).
	p.epoch.Swap(seq<<16 | uint64(workers))
	spin := waitSpin
	for w := 1; w < workers; w++ {
		if p.wakeWorker(w) {
			spin = wakeSpin
		}
	}
	p.work(0)
	var stall time.Duration
	if p.pending.Load() > 0 {
		for i := 0; i < spin && p.pending.Load() > 0; i++ {
			pause()
		}
		if p.pending.Load() > 0 {
			// Still waiting: a worker is slow to wake, or the OS has
			// descheduled it. Sleep, so that the core is free for it.
			t0 := time.Now()
			if p.pending.Add(waitBit) != waitBit { // a read-modify-write, as the epoch Swap
				<-p.done
			}
			stall = time.Since(t0)
		}
	}
	p.fn = nil
	p.adapt(stall)
}

// adapt counts a job and, at the end of each window, narrows the pool if
// stalls took too much of the time, or widens it to probe whether the
// contention is gone.
func (p *pool) adapt(stall time.Duration) {
	p.jobs++
	p.stallTime += stall
	if p.jobs%adaptWindow != 0 && stall == 0 {
		return
	}
	now := time.Now()
	elapsed := now.Sub(p.windowStart)
	stalled := p.stallTime*stallFraction > elapsed
	if elapsed < adaptPeriod && !(stalled && p.stallTime >= minStall) {
		return // too short to tell contention from a passing hiccup
	}
	switch {
	case stalled && p.active > 1:
		p.active--
		p.probeAt = now.Add(p.backoff)
		p.backoff = min(2*p.backoff, maxBackoff)
	case p.active == p.threads:
		p.backoff = minBackoff // a full-width window without stalls
	case !now.Before(p.probeAt):
		p.active = p.threads
	}
	p.jobs, p.stallTime, p.windowStart = 0, 0, now
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
	me := &p.workers[w]
	var seen uint64 // the epoch before the first job: a worker that starts late still joins it
	spin := true
	for {
		e := p.epoch.Load()
		for i := 0; spin && e == seen && i < spinRounds; i++ {
			pause()
			e = p.epoch.Load()
		}
		if e == seen {
			me.sleeping.Swap(true) // ordered before the epoch load (see run's epoch Swap)
			if e = p.epoch.Load(); e == seen || !me.sleeping.CompareAndSwap(true, false) {
				<-me.wake // whoever cleared sleeping sends exactly one token
				e = p.epoch.Load()
			}
		}
		if e == seen {
			continue
		}
		seen = e
		if p.quit.Load() {
			return
		}
		// Not in this job (the pool runs narrower): sleep until called.
		if spin = w < int(e&0xffff); !spin {
			continue
		}
		p.work(w)
		left := p.pending.Add(-1)
		if workerTail != nil {
			workerTail()
		}
		if left == waitBit {
			p.done <- struct{}{}
		}
	}
}

// workerTail, when set (tests), runs in a worker right after it leaves a job.
var workerTail func()
