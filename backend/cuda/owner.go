package cuda

import (
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// owner runs functions, one at a time and in call order, on a goroutine
// locked to its OS thread (the CUDA context's owner thread: Device.Do).
//
// A call is handed over through an atomic slot that the owner polls for a
// while after each function before it sleeps on a channel, and the caller
// polls for the result before it sleeps in turn. Over channels alone each
// hand-over woke a sleeping thread: run 69 measured ~35 µs each way per
// decode step on the GPU machine (UPG_CUDA_TRACE's host line), while a
// polled hand-over takes well under a microsecond. The price is up to two
// busy cores while steps run back to back (the driver's own synchronize
// polls too); OwnerSpinEnv sets the polling time, 0 turns it off, and with
// fewer than 4 Ps (GOMAXPROCS) nobody polls, so that a polling owner never
// holds the only processor its caller needs.
type owner struct {
	mu   sync.Mutex // one call at a time
	slot atomic.Pointer[ownerCall]
	wake chan struct{} // buffered: a call is in the slot
	quit chan struct{}
	done chan struct{} // closed when the owner has returned
	spin time.Duration
}

type ownerCall struct {
	f    func()
	done chan struct{} // closed when f has run
}

// finished reports, without waiting, whether c's function has run.
func (c *ownerCall) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// OwnerSpinEnv is how long the owner thread polls for the next call, and a
// caller for its result, before sleeping (a Go duration; default 20ms).
const OwnerSpinEnv = "UPG_CUDA_SPIN"

// ownerSpin is OwnerSpinEnv's duration (0 when polling is off).
func ownerSpin() time.Duration {
	if runtime.GOMAXPROCS(0) < 4 {
		return 0
	}
	if v := os.Getenv(OwnerSpinEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
		slog.Warn("ignoring "+OwnerSpinEnv, "value", v, "want", "a duration such as 5ms, or 0 to sleep at once")
	}
	return 20 * time.Millisecond
}

// startOwner starts the owner goroutine, locks it to its thread and runs
// init there; the owner runs calls until stop, then fini.
func startOwner(spin time.Duration, init func() error, fini func()) (*owner, error) {
	o := &owner{wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), spin: spin}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(o.done)
		if err := init(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		o.loop()
		fini()
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return o, nil
}

func (o *owner) loop() {
	for {
		c := o.slot.Swap(nil)
		if c == nil {
			c = o.poll()
		}
		if c == nil {
			select {
			case <-o.wake:
				continue
			case <-o.quit:
				return
			}
		}
		c.f()
		close(c.done)
	}
}

// poll waits up to o.spin for a call in the slot.
func (o *owner) poll() *ownerCall {
	if o.spin <= 0 {
		return nil
	}
	start := time.Now()
	for i := 1; ; i++ {
		if c := o.slot.Swap(nil); c != nil {
			return c
		}
		if i%64 == 0 && time.Since(start) > o.spin {
			return nil
		}
	}
}

// run runs f on the owner thread and returns when it has.
func (o *owner) run(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := &ownerCall{f: f, done: make(chan struct{})}
	o.slot.Store(c)
	select {
	case o.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	if o.spin > 0 {
		start := time.Now()
		for i := 1; !c.finished(); i++ {
			if i%64 == 0 {
				if time.Since(start) > o.spin {
					break
				}
				runtime.Gosched() // let the process's other goroutines use this P
			}
		}
	}
	<-c.done
}

// stop ends the owner after the calls already made; run must not be
// called after it.
func (o *owner) stop() {
	close(o.quit)
	<-o.done
}
