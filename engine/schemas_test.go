package engine

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/upg-ai/upg/constrain"
)

// TestSchemaCacheCompilesOnce: callers asking at once for one schema share
// one compile; a refused schema is refused again without a compile; past
// maxSchemaBytes the cache starts over.
func TestSchemaCacheCompilesOnce(t *testing.T) {
	var c schemaCache
	j := constrain.NewJSON(0, nil, nil, nil)
	var compiles atomic.Int32
	release := make(chan struct{})
	compile := func(text string) func() (*constrain.Schema, error) {
		return func() (*constrain.Schema, error) {
			compiles.Add(1)
			<-release
			return constrain.NewSchema(j, []byte(text))
		}
	}
	const good = `{"type":"object","properties":{"a":{"type":"integer"}}}`
	var wg sync.WaitGroup
	got := make([]*constrain.Schema, 16)
	for i := range got {
		wg.Go(func() {
			s, err := c.get(good, compile(good))
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	for compiles.Load() == 0 { // the first caller is compiling; the others find its entry
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := compiles.Load(); n != 1 {
		t.Errorf("16 callers at once: %d compiles, want 1", n)
	}
	for i, s := range got {
		if s == nil || s != got[0] {
			t.Fatalf("caller %d got schema %p, want the one compile's %p", i, s, got[0])
		}
	}

	const bad = `{"type":"string","pattern":"(("}`
	_, err1 := c.get(bad, compile(bad))
	_, err2 := c.get(bad, compile(bad))
	if err1 == nil || err1 != err2 {
		t.Errorf("a refused schema twice: errors %v and %v, want one error kept", err1, err2)
	}
	if n := compiles.Load(); n != 2 {
		t.Errorf("after a refused schema asked twice: %d compiles, want 2", n)
	}

	// a key past what the cache keeps: the cache starts over with it alone
	huge := good + strings.Repeat(" ", maxSchemaBytes)
	if _, err := c.get(huge, compile(good)); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	n, _ := len(c.m), c.m[huge]
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("after a schema past maxSchemaBytes: %d kept, want 1", n)
	}
	if _, err := c.get(good, compile(good)); err != nil || compiles.Load() != 4 {
		t.Errorf("the first schema after the cache started over: %v, %d compiles, want 4", err, compiles.Load())
	}
}
