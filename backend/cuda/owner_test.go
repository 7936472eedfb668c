//go:build linux

package cuda

import (
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestOwner (CPU) runs calls from many goroutines through the owner, polled
// and not: each runs once, on the owner's locked thread, one at a time, and
// the caller sees its effects when run returns.
func TestOwner(t *testing.T) {
	for _, spin := range []time.Duration{0, 50 * time.Microsecond, 20 * time.Millisecond} {
		var ownerG int64
		inited, finished := false, false
		o, err := startOwner(spin, func() error { inited = true; return nil }, func() { finished = true })
		if err != nil || !inited {
			t.Fatalf("spin %v: start: %v, init ran %v", spin, err, inited)
		}
		var (
			mu      sync.Mutex
			running int
			total   int
		)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					x := 0
					o.run(func() {
						mu.Lock()
						running++
						if running != 1 {
							t.Errorf("spin %v: %d calls at once", spin, running)
						}
						mu.Unlock()
						x = i + 1
						if i%50 == 0 {
							time.Sleep(100 * time.Microsecond) // a call longer than some polls
						}
						mu.Lock()
						running--
						total++
						mu.Unlock()
					})
					if x != i+1 {
						t.Errorf("spin %v: run returned before its call's effects (x = %d)", spin, x)
						return
					}
				}
			}()
		}
		wg.Wait()
		o.run(func() { ownerG = threadID() })
		o.run(func() {
			if id := threadID(); id != ownerG {
				t.Errorf("spin %v: calls on threads %d and %d", spin, ownerG, id)
			}
		})
		time.Sleep(2 * spin) // the owner asleep again: the next call must wake it
		done := false
		o.run(func() { done = true })
		o.stop()
		if !done || total != 8*200 || !finished {
			t.Fatalf("spin %v: last call ran %v, %d of %d calls, fini ran %v", spin, done, total, 8*200, finished)
		}
	}
}

// threadID identifies the calling OS thread (the owner's goroutine is
// locked to one).
func threadID() int64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return int64(syscall.Gettid())
}
