package cuda

import (
	"slices"
	"testing"
)

// TestGraphCache: a key runs op by op the first time, is captured the
// second and replayed after; past its size the cache evicts the graph
// launched longest ago, whose key is captured again the next time it
// comes; a bad size is an error naming the variable.
func TestGraphCache(t *testing.T) {
	c := newGraphCache(2)
	step := func(key uint64) string {
		if _, ok := c.get(key); ok {
			return "replay"
		}
		if c.second(key) {
			if old := c.put(key, uintptr(100+key)); old != 0 {
				return "capture, evict " + string(rune('0'+old-100))
			}
			return "capture"
		}
		return "eager"
	}
	var got []string
	for _, k := range []uint64{1, 1, 1, 2, 2, 1, 3, 3, 2, 1, 1} {
		got = append(got, step(k))
	}
	want := []string{"eager", "capture", "replay", "eager", "capture", "replay", "eager", "capture, evict 2", "capture, evict 1", "capture, evict 3", "replay"}
	if !slices.Equal(got, want) {
		t.Errorf("steps %q\nwant %q", got, want)
	}
	s := c.snapshot()
	if s != (GraphStats{Eager: 3, Captured: 5, Replayed: 3, Evicted: 3, Held: 2}) {
		t.Errorf("stats %+v", s)
	}
	if gs := c.drop(); len(gs) != 2 || c.snapshot().Held != 0 {
		t.Errorf("drop returned %v, holds %d", gs, c.snapshot().Held)
	}
	if step(1) != "eager" {
		t.Error("a dropped key should start over")
	}

	for _, v := range []string{"0", "-3", "many"} {
		t.Setenv(GraphCacheEnv, v)
		if _, err := graphCacheSize(); err == nil {
			t.Errorf("%s=%s: no error", GraphCacheEnv, v)
		}
	}
	t.Setenv(GraphCacheEnv, "7")
	if n, err := graphCacheSize(); n != 7 || err != nil {
		t.Errorf("%s=7: %d, %v", GraphCacheEnv, n, err)
	}
}
