package engine

import (
	"errors"
	"sync"

	"github.com/upg-ai/upg/constrain"
)

// maxSchemaBytes bounds what an engine's schema cache keeps: the compiled
// schemas' transition tables and every kept schema's text.
const maxSchemaBytes = 64 << 20

// schemaCache keeps compiled JSON schemas by their text, and the error of
// each schema that did not compile, so that a schema sent again (a client's
// every request, often many at once) is compiled once: a caller asking for
// a schema being compiled waits for that compile instead of starting its
// own, and a refused schema (up to about a second's work to refuse:
// constrain.MaxSchemaWork) is refused again at once. Past maxSchemaBytes
// the cache starts over.
type schemaCache struct {
	mu    sync.Mutex
	m     map[string]*schemaEntry
	bytes int
}

// errCompilePanic is the error of a schema whose compile panicked.
var errCompilePanic = errors.New("schema: the compiler failed on it")

// schemaEntry is one schema's compile: done closes when s or err is set.
type schemaEntry struct {
	done chan struct{}
	s    *constrain.Schema
	err  error
}

// get is the schema of text key, compiled by compile the first time.
func (c *schemaCache) get(key string, compile func() (*constrain.Schema, error)) (*constrain.Schema, error) {
	c.mu.Lock()
	if en, ok := c.m[key]; ok {
		c.mu.Unlock()
		<-en.done
		return en.s, en.err
	}
	en := &schemaEntry{done: make(chan struct{})}
	if c.m == nil {
		c.m = map[string]*schemaEntry{}
	}
	c.m[key] = en
	c.mu.Unlock()

	func() {
		defer close(en.done) // a compile that panics leaves its waiters errCompilePanic
		en.err = errCompilePanic
		en.s, en.err = compile()
	}()
	size := len(key)
	if en.s != nil {
		size += en.s.TableBytes()
	}
	c.mu.Lock()
	if c.m[key] == en {
		if c.bytes+size > maxSchemaBytes { // start over with this one
			c.m, c.bytes = map[string]*schemaEntry{key: en}, 0
		}
		c.bytes += size
	}
	c.mu.Unlock()
	return en.s, en.err
}
