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

// Span is a run of N consecutive cached positions of one sequence and
// layer. Keys and values are float32 (K, V) or fp16 IEEE halves (K16, V16);
// exactly one pair is set. Element i of KV head h at the span's t-th
// position is at h*HeadStride + t*RowStride + i. A span is a view that
// stays valid until the next Store or Truncate of its sequence.
type Span struct {
	N                     int
	RowStride, HeadStride int
	K, V                  []float32
	K16, V16              []uint16
}

// Contiguous keeps each sequence's keys and values in one block per layer,
// KV head by KV head ([head][position][head dim]), so that attention for
// one head streams through memory; float32 or fp16. Blocks grow by
// doubling as positions are stored, up to the capacity.
type Contiguous struct {
	layers, heads, headDim, capacity int
	f16                              bool
	seqs                             map[int]*seqStore
}

type seqStore struct {
	k, v     [][]float32 // per layer, heads × alloc × headDim (float32 cache)
	k16, v16 [][]uint16  // the same for an fp16 cache
	alloc    []int       // positions allocated per head, per layer
	n        []int       // positions stored per layer
}

// NewContiguous makes a float32 cache for layers × kvHeads × headDim with
// at most capacity positions per sequence.
func NewContiguous(layers, kvHeads, headDim, capacity int) *Contiguous {
	c, _ := New(tensor.F32, layers, kvHeads, headDim, capacity)
	return c
}

// New makes a contiguous cache storing dtype (F32 or F16) values. An fp16
// cache halves the memory and the bandwidth attention needs; values are
// rounded to nearest even on store.
func New(dtype tensor.DType, layers, kvHeads, headDim, capacity int) (*Contiguous, error) {
	if dtype != tensor.F32 && dtype != tensor.F16 {
		return nil, fmt.Errorf("kvcache: unsupported cache type %v (want f32 or f16)", dtype)
	}
	if layers <= 0 || kvHeads <= 0 || headDim <= 0 || capacity <= 0 {
		return nil, fmt.Errorf("kvcache: invalid shape: %d layers, %d KV heads of %d, capacity %d", layers, kvHeads, headDim, capacity)
	}
	return &Contiguous{layers: layers, heads: kvHeads, headDim: headDim, capacity: capacity,
		f16: dtype == tensor.F16, seqs: map[int]*seqStore{}}, nil
}

// KVDim implements Cache.
func (c *Contiguous) KVDim() int { return c.heads * c.headDim }

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
		st = &seqStore{n: make([]int, c.layers), alloc: make([]int, c.layers)}
		if c.f16 {
			st.k16, st.v16 = make([][]uint16, c.layers), make([][]uint16, c.layers)
		} else {
			st.k, st.v = make([][]float32, c.layers), make([][]float32, c.layers)
		}
		c.seqs[s] = st
	}
	return st
}

// regrow copies the n stored positions of every head from a block of
// alloc positions per head into a new block of grown positions per head.
func regrow[T float32 | uint16](old []T, heads, hd, alloc, grown, n int) []T {
	b := make([]T, heads*grown*hd)
	for h := 0; h < heads; h++ {
		copy(b[h*grown*hd:h*grown*hd+n*hd], old[h*alloc*hd:h*alloc*hd+n*hd])
	}
	return b
}

// Store implements Cache.
func (c *Contiguous) Store(seq, layer, pos int, k, v []float32) error {
	if pos < 0 || pos >= c.capacity {
		return fmt.Errorf("kvcache: sequence %d position %d exceeds the context size %d", seq, pos, c.capacity)
	}
	if layer < 0 || layer >= c.layers {
		return fmt.Errorf("kvcache: layer %d out of range [0, %d)", layer, c.layers)
	}
	kvDim := c.KVDim()
	if len(k) != kvDim || len(v) != kvDim {
		return fmt.Errorf("kvcache: key/value of %d/%d values, want %d", len(k), len(v), kvDim)
	}
	st := c.seq(seq)
	if pos > st.n[layer] {
		return fmt.Errorf("kvcache: sequence %d: position %d stored out of order (have %d)", seq, pos, st.n[layer])
	}
	hd, alloc := c.headDim, st.alloc[layer]
	if pos >= alloc {
		grown := min(max(pos+1, 2*alloc, 64), c.capacity)
		if c.f16 {
			st.k16[layer] = regrow(st.k16[layer], c.heads, hd, alloc, grown, st.n[layer])
			st.v16[layer] = regrow(st.v16[layer], c.heads, hd, alloc, grown, st.n[layer])
		} else {
			st.k[layer] = regrow(st.k[layer], c.heads, hd, alloc, grown, st.n[layer])
			st.v[layer] = regrow(st.v[layer], c.heads, hd, alloc, grown, st.n[layer])
		}
		st.alloc[layer], alloc = grown, grown
	}
	for h := 0; h < c.heads; h++ {
		dst, src := (h*alloc+pos)*hd, h*hd
		if c.f16 {
			tensor.F32ToF16s(st.k16[layer][dst:dst+hd], k[src:src+hd])
			tensor.F32ToF16s(st.v16[layer][dst:dst+hd], v[src:src+hd])
		} else {
			copy(st.k[layer][dst:dst+hd], k[src:src+hd])
			copy(st.v[layer][dst:dst+hd], v[src:src+hd])
		}
	}
	if pos == st.n[layer] {
		st.n[layer]++
	}
	return nil
}

// Span implements Cache: one span from pos to the last stored position.
func (c *Contiguous) Span(seq, layer, pos int) Span {
	st := c.seqs[seq]
	hd := c.headDim
	sp := Span{N: st.n[layer] - pos, RowStride: hd, HeadStride: st.alloc[layer] * hd}
	if c.f16 {
		sp.K16, sp.V16 = st.k16[layer][pos*hd:], st.v16[layer][pos*hd:]
	} else {
		sp.K, sp.V = st.k[layer][pos*hd:], st.v[layer][pos*hd:]
	}
	return sp
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
