// Package kvcache stores attention keys and values per sequence, layer and
// position. The model graph talks to the Cache interface only, so a paged
// cache (for continuous batching) can replace the contiguous one here.
package kvcache

import "fmt"

// Cache holds keys and values of KVDim floats per (sequence, layer, position).
type Cache interface {
	// KVDim is the width of one key (or value) vector: kv heads × head dim.
	KVDim() int
	// Store writes the key and value of seq at pos in layer. Positions of a
	// sequence must be stored in order without gaps (pos ≤ Len(seq)).
	Store(seq, layer, pos int, k, v []float32) error
	// Span returns the keys and values of seq in layer from position pos
	// to the end of the contiguous run of stored positions that holds pos
	// (at least pos itself; pos < Len): views, not copies, laid out
	// [position][KVDim]. A contiguous cache returns every position from
	// pos on in one span; a paged cache returns the rest of pos's page.
	Span(seq, layer, pos int) (k, v []float32)
	// Len is the number of positions stored for seq (in layer 0).
	Len(seq int) int
	// Truncate forgets positions ≥ n of seq (n = 0 frees the sequence).
	Truncate(seq, n int)
	// Capacity is the most positions one sequence may hold.
	Capacity() int
}

// Contiguous is a float32 cache that keeps each sequence's keys and values in
// one block per layer: [pos][kvdim]. Memory grows in chunks as positions are
// stored, up to the capacity.
type Contiguous struct {
	layers, kvDim, capacity int
	seqs                    map[int]*seqStore
}

type seqStore struct {
	k, v [][]float32 // per layer, len = allocated positions × kvDim
	n    []int       // positions stored per layer
}

// NewContiguous makes a cache for layers × kvDim with at most capacity positions per sequence.
func NewContiguous(layers, kvDim, capacity int) *Contiguous {
	return &Contiguous{layers: layers, kvDim: kvDim, capacity: capacity, seqs: map[int]*seqStore{}}
}

func (c *Contiguous) KVDim() int    { return c.kvDim }
func (c *Contiguous) Capacity() int { return c.capacity }

func (c *Contiguous) seq(s int) *seqStore {
	st := c.seqs[s]
	if st == nil {
		st = &seqStore{k: make([][]float32, c.layers), v: make([][]float32, c.layers), n: make([]int, c.layers)}
		c.seqs[s] = st
	}
	return st
}

// Store implements Cache.
func (c *Contiguous) Store(seq, layer, pos int, k, v []float32) error {
	if pos >= c.capacity {
		return fmt.Errorf("kvcache: sequence %d position %d exceeds the context size %d", seq, pos, c.capacity)
	}
	if layer < 0 || layer >= c.layers {
		return fmt.Errorf("kvcache: layer %d out of range [0, %d)", layer, c.layers)
	}
	st := c.seq(seq)
	if pos > st.n[layer] {
		return fmt.Errorf("kvcache: sequence %d: position %d stored out of order (have %d)", seq, pos, st.n[layer])
	}
	need := (pos + 1) * c.kvDim
	if len(st.k[layer]) < need {
		grow := max(need, 2*len(st.k[layer]), 64*c.kvDim)
		grow = min(grow, c.capacity*c.kvDim)
		nk := make([]float32, grow)
		nv := make([]float32, grow)
		copy(nk, st.k[layer])
		copy(nv, st.v[layer])
		st.k[layer], st.v[layer] = nk, nv
	}
	copy(st.k[layer][pos*c.kvDim:need], k)
	copy(st.v[layer][pos*c.kvDim:need], v)
	if pos == st.n[layer] {
		st.n[layer]++
	}
	return nil
}

// Span implements Cache.
func (c *Contiguous) Span(seq, layer, pos int) (k, v []float32) {
	st := c.seqs[seq]
	lo, hi := pos*c.kvDim, st.n[layer]*c.kvDim
	return st.k[layer][lo:hi], st.v[layer][lo:hi]
}

// Len implements Cache.
func (c *Contiguous) Len(seq int) int {
	if st := c.seqs[seq]; st != nil {
		return st.n[0]
	}
	return 0
}

// Truncate implements Cache.
func (c *Contiguous) Truncate(seq, n int) {
	st := c.seqs[seq]
	if st == nil {
		return
	}
	if n <= 0 {
		delete(c.seqs, seq)
		return
	}
	for l := range st.n {
		st.n[l] = min(st.n[l], n)
	}
}
