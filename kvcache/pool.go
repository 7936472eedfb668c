// Package kvcache manages the attention keys and values of many sequences
// in a pool of fixed-size blocks (paged attention, as in vLLM): each
// sequence has a block table mapping its positions to blocks, blocks are
// reference counted so that forked sequences share their common prefix
// (copy-on-write), and the pool's size is a byte budget. The storage itself
// belongs to the backend (backend.KV); the pool is host bookkeeping only,
// and is not safe for concurrent use (one scheduler owns it).
package kvcache

import (
	"errors"
	"fmt"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/tensor"
)

// DefaultBlockSize is the positions per block when Options leave it 0.
const DefaultBlockSize = 32

// ErrNoBlocks is returned (wrapped) by Reserve when the pool has too few
// free blocks; nothing was changed.
var ErrNoBlocks = errors.New("kvcache: out of KV cache blocks")

// Options describe a pool.
type Options struct {
	Layers, KVHeads, HeadDim int
	DType                    tensor.DType // tensor.F16 (default when Invalid) or tensor.F32
	BlockSize                int          // positions per block (0 = DefaultBlockSize)
	Budget                   int64        // bytes of key/value storage; the pool holds Budget / block bytes blocks
}

func (o Options) spec() backend.KVSpec {
	if o.DType == tensor.Invalid {
		o.DType = tensor.F16
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	return backend.KVSpec{Layers: o.Layers, KVHeads: o.KVHeads, HeadDim: o.HeadDim, BlockSize: o.BlockSize, DType: o.DType, Blocks: 1}
}

// Pool is a paged KV cache.
type Pool struct {
	be   backend.Backend
	kv   backend.KV
	spec backend.KVSpec
	free []int32 // free block ids, a stack
	ref  []int32 // references per block
	seqs map[int]*seqState
}

type seqState struct {
	blocks []int32 // the block table
	n      int     // positions stored
}

// New allocates a pool's storage on be.
func New(be backend.Backend, o Options) (*Pool, error) {
	spec := o.spec()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	bb := spec.BlockBytes()
	spec.Blocks = int(o.Budget / bb)
	if spec.Blocks <= 0 {
		return nil, fmt.Errorf("kvcache: a budget of %d bytes holds no block (one block of %d positions takes %d bytes)", o.Budget, spec.BlockSize, bb)
	}
	kv, err := be.NewKV(spec)
	if err != nil {
		return nil, err
	}
	p := &Pool{be: be, kv: kv, spec: spec, ref: make([]int32, spec.Blocks), seqs: map[int]*seqState{}}
	p.free = make([]int32, spec.Blocks)
	for i := range p.free {
		p.free[i] = int32(spec.Blocks - 1 - i) // block 0 on top
	}
	return p, nil
}

// BudgetFor is the budget that holds positions positions of each of seqs
// sequences, in whole blocks.
func BudgetFor(o Options, positions, seqs int) int64 {
	spec := o.spec()
	blocks := (positions + spec.BlockSize - 1) / spec.BlockSize
	return int64(blocks*seqs) * spec.BlockBytes()
}

// KV is the backend storage the pool manages.
func (p *Pool) KV() backend.KV { return p.kv }

// Spec is the storage's shape.
func (p *Pool) Spec() backend.KVSpec { return p.spec }

// BlockSize is the positions per block.
func (p *Pool) BlockSize() int { return p.spec.BlockSize }

// Blocks is the pool's size in blocks.
func (p *Pool) Blocks() int { return p.spec.Blocks }

// FreeBlocks is the number of blocks no sequence holds.
func (p *Pool) FreeBlocks() int { return len(p.free) }

// Bytes is the storage the pool was given.
func (p *Pool) Bytes() int64 { return int64(p.spec.Blocks) * p.spec.BlockBytes() }

// Len is the number of positions stored for seq.
func (p *Pool) Len(seq int) int {
	if s := p.seqs[seq]; s != nil {
		return s.n
	}
	return 0
}

// SeqBlocks is the number of blocks in seq's table.
func (p *Pool) SeqBlocks(seq int) int {
	if s := p.seqs[seq]; s != nil {
		return len(s.blocks)
	}
	return 0
}

// Table is seq's block table (a view, valid until the next change to seq).
func (p *Pool) Table(seq int) []int32 {
	if s := p.seqs[seq]; s != nil {
		return s.blocks
	}
	return nil
}

// Slot is the storage slot of position pos of seq, which Reserve made room for.
func (p *Pool) Slot(seq, pos int) int32 {
	s := p.seqs[seq]
	bs := p.spec.BlockSize
	return s.blocks[pos/bs]*int32(bs) + int32(pos%bs)
}

// Sequences is the number of sequences holding positions or blocks.
func (p *Pool) Sequences() int { return len(p.seqs) }

// Needed is the number of free blocks Reserve(seq, n) would take: new
// blocks for positions beyond seq's table, plus a copy of its last block
// when a fork shares it and the new positions start inside it.
func (p *Pool) Needed(seq, n int) int {
	bs := p.spec.BlockSize
	s := p.seqs[seq]
	have, used := 0, 0
	if s != nil {
		have, used = len(s.blocks), s.n
	}
	need := max(0, (used+n+bs-1)/bs-have)
	if s != nil && n > 0 && used%bs != 0 && used/bs < have && p.ref[s.blocks[used/bs]] > 1 {
		need++
	}
	return need
}

// Reserve makes room for positions Len(seq) .. Len(seq)+n-1 of seq, taking
// blocks from the pool and copying a shared block that the new positions
// would write into (copy-on-write). Either all of it happens or, when too
// few blocks are free, nothing does and the error wraps ErrNoBlocks. Call
// Commit once the positions are written.
func (p *Pool) Reserve(seq, n int) error {
	need := p.Needed(seq, n)
	if need > len(p.free) {
		return fmt.Errorf("%w: sequence %d needs %d more blocks of %d positions, %d of %d are free",
			ErrNoBlocks, seq, need, p.spec.BlockSize, len(p.free), p.spec.Blocks)
	}
	s := p.seqs[seq]
	if s == nil {
		s = &seqState{}
		p.seqs[seq] = s
	}
	bs := p.spec.BlockSize
	if s.n%bs != 0 && n > 0 {
		if i := s.n / bs; i < len(s.blocks) && p.ref[s.blocks[i]] > 1 {
			old := s.blocks[i]
			nb := p.take()
			p.be.CopyKVBlock(p.kv, int(nb), int(old))
			p.ref[old]--
			s.blocks[i] = nb
		}
	}
	for len(s.blocks)*bs < s.n+n {
		s.blocks = append(s.blocks, p.take())
	}
	return nil
}

func (p *Pool) take() int32 {
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.ref[b] = 1
	return b
}

func (p *Pool) release(b int32) {
	p.ref[b]--
	if p.ref[b] == 0 {
		p.free = append(p.free, b)
	}
}

// Commit records that n more positions of seq were written (after Reserve).
func (p *Pool) Commit(seq, n int) {
	s := p.seqs[seq]
	if s == nil || s.n+n > len(s.blocks)*p.spec.BlockSize {
		panic(fmt.Sprintf("kvcache: commit of %d positions to sequence %d without a reservation", n, seq))
	}
	s.n += n
}

// Truncate forgets positions ≥ n of seq and returns the blocks it no longer
// needs to the pool; n = 0 removes the sequence.
func (p *Pool) Truncate(seq, n int) {
	s := p.seqs[seq]
	if s == nil {
		return
	}
	n = max(0, min(n, s.n))
	keep := (n + p.spec.BlockSize - 1) / p.spec.BlockSize
	for _, b := range s.blocks[keep:] {
		p.release(b)
	}
	s.blocks = s.blocks[:keep]
	s.n = n
	if n == 0 {
		delete(p.seqs, seq)
	}
}

// Remove forgets positions [from, to) of seq. Only a suffix can be removed
// (to ≥ Len): the positions after a hole would keep the rotary phases of
// where they were.
func (p *Pool) Remove(seq, from, to int) error {
	if to < p.Len(seq) {
		return fmt.Errorf("kvcache: cannot remove positions [%d, %d) of sequence %d with %d: only a suffix can be removed", from, to, seq, p.Len(seq))
	}
	p.Truncate(seq, from)
	return nil
}

// Fork makes dst a copy of the first n positions of src (n < 0: all of
// them) sharing src's blocks; a shared block is copied when either
// sequence first writes into it. Any previous dst is removed first.
func (p *Pool) Fork(dst, src, n int) error {
	s := p.seqs[src]
	if s == nil {
		return fmt.Errorf("kvcache: fork of unknown sequence %d", src)
	}
	if dst == src {
		return fmt.Errorf("kvcache: fork of sequence %d onto itself", src)
	}
	if n < 0 || n > s.n {
		n = s.n
	}
	p.Truncate(dst, 0)
	if n == 0 {
		return nil
	}
	keep := (n + p.spec.BlockSize - 1) / p.spec.BlockSize
	d := &seqState{blocks: append([]int32(nil), s.blocks[:keep]...), n: n}
	for _, b := range d.blocks {
		p.ref[b]++
	}
	p.seqs[dst] = d
	return nil
}

// StepFor reserves room for tokens after seq's stored positions and returns
// the one-sequence step that feeds them (logits of every token when
// allLogits, else of the last); Commit(seq, len(tokens)) after the forward
// pass. For callers that run one sequence at a time (eval, the compressor,
// tests); the engine builds multi-sequence steps itself.
func (p *Pool) StepFor(seq int, tokens []int, allLogits bool) (*backend.Step, error) {
	if err := p.Reserve(seq, len(tokens)); err != nil {
		return nil, err
	}
	n, start := len(tokens), p.Len(seq)
	s := &backend.Step{Tokens: make([]int32, n), Pos: make([]int32, n), Slot: make([]int32, n), Seq: make([]int32, n),
		Tables: [][]int32{p.Table(seq)}}
	for i, t := range tokens {
		s.Tokens[i], s.Pos[i], s.Slot[i] = int32(t), int32(start+i), p.Slot(seq, start+i)
	}
	if allLogits {
		for i := range n {
			s.Out = append(s.Out, int32(i))
		}
	} else if n > 0 {
		s.Out = []int32{int32(n - 1)}
	}
	return s, nil
}
