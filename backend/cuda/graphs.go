package cuda

import (
	"fmt"
	"os"
	"strconv"
)

// Step graphs. A flushed queue whose key was seen once before is captured
// as a CUDA graph and replayed from then on (Backend.run); the first time
// it runs op by op. Every distinct queue is a key: each step size (tokens,
// logits rows), each attention path a context length takes. A server that
// runs for days meets many, so the cache holds at most GraphCacheEnv graphs
// (default defaultGraphs) and destroys the least recently launched one to
// make room (a queue whose graph was evicted is captured again the next
// time it runs); it remembers at most seenMax keys seen once.

// GraphCacheEnv sets how many step graphs the backend keeps (default 128;
// at least 1).
const GraphCacheEnv = "UPG_CUDA_GRAPH_CACHE"

const (
	defaultGraphs = 128
	seenMax       = 4096
)

// GraphStats counts how the backend ran its flushed step queues.
type GraphStats struct {
	Eager    int64 `json:"eager_steps"`    // run op by op: a queue seen for the first time, or graphs off
	Captured int64 `json:"captured"`       // captured as a graph (a queue's second time) and launched
	Replayed int64 `json:"replayed_steps"` // launched as a graph captured before
	Evicted  int64 `json:"evicted"`        // graphs destroyed to make room for newer ones
	Held     int   `json:"held"`           // graphs held now
}

// GraphReporter is a backend that runs its steps as CUDA graphs and
// counts them (Backend); callers that take any backend assert to it.
type GraphReporter interface{ GraphStats() GraphStats }

func (s GraphStats) String() string {
	return fmt.Sprintf("graphs: %d held, %d captured, %d evicted; steps: %d replayed, %d op by op", s.Held, s.Captured, s.Evicted, s.Replayed, s.Eager)
}

// graphCache maps queue keys to instantiated graphs, least recently used
// out first.
type graphCache struct {
	max   int
	m     map[uint64]*graphEntry
	seen  map[uint64]struct{}
	tick  uint64
	stats GraphStats
}

type graphEntry struct {
	exec uintptr
	used uint64 // tick of the last launch
}

func newGraphCache(max int) *graphCache {
	return &graphCache{max: max, m: map[uint64]*graphEntry{}, seen: map[uint64]struct{}{}}
}

// graphCacheSize is GraphCacheEnv's value, or the default.
func graphCacheSize() (int, error) {
	v := os.Getenv(GraphCacheEnv)
	if v == "" {
		return defaultGraphs, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("cuda: %s=%q: want a number of graphs, at least 1", GraphCacheEnv, v)
	}
	return n, nil
}

// get returns key's graph and counts a replay.
func (c *graphCache) get(key uint64) (uintptr, bool) {
	e, ok := c.m[key]
	if !ok {
		return 0, false
	}
	c.tick++
	e.used = c.tick
	c.stats.Replayed++
	return e.exec, true
}

// second reports whether key was seen before (and is to be captured now);
// otherwise it remembers key and counts a step run op by op.
func (c *graphCache) second(key uint64) bool {
	if _, ok := c.seen[key]; ok {
		delete(c.seen, key)
		return true
	}
	if len(c.seen) >= seenMax {
		clear(c.seen)
	}
	c.seen[key] = struct{}{}
	c.stats.Eager++
	return false
}

// put holds exec as key's graph and returns the graph it evicts to stay
// within max (0 when none), which the caller destroys once the GPU no
// longer runs it.
func (c *graphCache) put(key uint64, exec uintptr) (evicted uintptr) {
	c.tick++
	c.m[key] = &graphEntry{exec: exec, used: c.tick}
	c.stats.Captured++
	if len(c.m) <= c.max {
		return 0
	}
	var oldKey uint64
	var old *graphEntry
	for k, e := range c.m {
		if old == nil || e.used < old.used {
			oldKey, old = k, e
		}
	}
	delete(c.m, oldKey)
	c.stats.Evicted++
	// a queue that comes back after its graph was evicted is captured at
	// once: it has been seen
	if len(c.seen) >= seenMax {
		clear(c.seen)
	}
	c.seen[oldKey] = struct{}{}
	return old.exec
}

// drop empties the cache and returns the graphs it held.
func (c *graphCache) drop() []uintptr {
	var gs []uintptr
	for _, e := range c.m {
		gs = append(gs, e.exec)
	}
	clear(c.m)
	clear(c.seen)
	return gs
}

func (c *graphCache) snapshot() GraphStats {
	s := c.stats
	s.Held = len(c.m)
	return s
}
