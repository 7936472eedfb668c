// Package kvcache stores attention keys and values per sequence, layer and
// position. The model graph talks to the Cache interface only, so a paged
// cache (for continuous batching) can replace the contiguous one here.
package kvcache

import (
	"fmt"

	"github.com/upg-ai/upg/tensor"
)

// Cache holds keys and values of KVDim values per (sequence, layer, position).
type Cache interface {
	// KVDim is the width of one key (or value) vector: kv heads × head dim.
	KVDim() int
	// Store writes the key and value of seq at pos in layer. Positions of a
	// sequence must be stored in order without gaps (pos ≤ Len(seq)).
	Store(seq, layer, pos int, k, v []float32) error
	// Span returns the keys and values of seq in layer from position pos
	// to the end of the contiguous run of stored positions that holds pos
	// (at least pos itself; pos < Len): views, not copies. A contiguous
	// cache returns every position from pos on in one span; a paged cache
	// returns the rest of pos's page.
	Span(seq, layer, pos int) Span
	// Len is the number of positions stored for seq (in layer 0).
	Len(seq int) int
	// Truncate forgets positions ≥ n of seq (n = 0 frees the sequence).
	Truncate(seq, n int)
	// Capacity is the most positions one sequence may hold.
	Capacity() int
}

// Span is a run of consecutive cached positions laid out [position][KVDim]:
// float32 in K and V, or fp16 (IEEE half) in K16 and V16; exactly one pair
// is set.
type Span struct {
	K, V     []float32
	K16, V16 []uint16
}

// Positions is how many positions the span holds.
func (s Span) Positions(kvDim int) int {
	if s.K16 != nil {
		return len(s.K16) / kvDim
	}
	return len(s.K) / kvDim
}

// Contiguous keeps each sequence's keys and values in one block per layer:
// [pos][kvdim], float32 or fp16. Memory grows in chunks as positions are
// stored, up to the capacity.
type Contiguous struct {
	layers, kvDim, capacity int
	f16                     bool
	seqs                    map[int]*seqStore
}

type seqStore struct {
	k, v     [][]float32 // per layer, len = allocated positions × kvDim (float32 cache)
	k16, v16 [][]uint16  // the same for an fp16 cache
	n        []int       // positions stored per layer
}

// NewContiguous makes a float32 cache for layers × kvDim with at most
// capacity positions per sequence.
func NewContiguous(layers, kvDim, capacity int) *Contiguous {
	c, _ := New(tensor.F32, layers, kvDim, capacity)
	return c
}

// New makes a contiguous cache storing dtype (F32 or F16) values. An fp16
// cache halves the memory and the bandwidth attention needs; values are
// rounded to nearest even on store.
func New(dtype tensor.DType, layers, kvDim, capacity int) (*Contiguous, error) {
	if dtype != tensor.F32 && dtype != tensor.F16 {
		return nil, fmt.Errorf("kvcache: unsupported cache type %v (want f32 or f16)", dtype)
	}
	return &Contiguous{layers: layers, kvDim: kvDim, capacity: capacity, f16: dtype == tensor.F16, seqs: map[int]*seqStore{}}, nil
}

// KVDim implements Cache.
func (c *Contiguous) KVDim() int { return c.kvDim }

// Capacity implements Cache.
func (c *Contiguous) Capacity() int { return c.capacity }

// DType is the type of the stored values (F32 or F16).
func (c *Contiguous) DType() tensor.DType {
	if c.f16 {
		return tensor.F16
	}
	return tensor.F32
}

func (c *Contiguous) seq(s int) *seqStore {
	st := c.seqs[s]
	if st == nil {
		st = &seqStore{n: make([]int, c.layers)}
		if c.f16 {
			st.k16, st.v16 = make([][]uint16, c.layers), make([][]uint16, c.layers)
		} else {
			st.k, st.v = make([][]float32, c.layers), make([][]float32, c.layers)
		}
		c.seqs[s] = st
	}
	return st
}

// growTo returns s with room for need values, growing by doubling (at least
// 64 positions) up to the capacity.
func growTo[T float32 | uint16](s []T, need, kvDim, capacity int) []T {
	if len(s) >= need {
		return s
	}
	n := min(max(need, 2*len(s), 64*kvDim), capacity*kvDim)
	ns := make([]T, n)
	copy(ns, s)
	return ns
}

// Store implements Cache.
func (c *Contiguous) Store(seq, layer, pos int, k, v []float32) error {
	if pos < 0 || pos >= c.capacity {
		return fmt.Errorf("kvcache: sequence %d position %d exceeds the context size %d", seq, pos, c.capacity)
	}
	if layer < 0 || layer >= c.layers {
		return fmt.Errorf("kvcache: layer %d out of range [0, %d)", layer, c.layers)
	}
	if len(k) != c.kvDim || len(v) != c.kvDim {
		return fmt.Errorf("kvcache: key/value of %d/%d values, want %d", len(k), len(v), c.kvDim)
	}
	st := c.seq(seq)
	if pos > st.n[layer] {
		return fmt.Errorf("kvcache: sequence %d: position %d stored out of order (have %d)", seq, pos, st.n[layer])
	}
	lo, need := pos*c.kvDim, (pos+1)*c.kvDim
	if c.f16 {
		st.k16[layer] = growTo(st.k16[layer], need, c.kvDim, c.capacity)
		st.v16[layer] = growTo(st.v16[layer], need, c.kvDim, c.capacity)
		tensor.F32ToF16s(st.k16[layer][lo:need], k)
		tensor.F32ToF16s(st.v16[layer][lo:need], v)
	} else {
		st.k[layer] = growTo(st.k[layer], need, c.kvDim, c.capacity)
		st.v[layer] = growTo(st.v[layer], need, c.kvDim, c.capacity)
		copy(st.k[layer][lo:need], k)
		copy(st.v[layer][lo:need], v)
	}
	if pos == st.n[layer] {
		st.n[layer]++
	}
	return nil
}

// Span implements Cache.
func (c *Contiguous) Span(seq, layer, pos int) Span {
	st := c.seqs[seq]
	lo, hi := pos*c.kvDim, st.n[layer]*c.kvDim
	if c.f16 {
		return Span{K16: st.k16[layer][lo:hi], V16: st.v16[layer][lo:hi]}
	}
	return Span{K: st.k[layer][lo:hi], V: st.v[layer][lo:hi]}
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
