// Package kvcache manages the attention keys and values of many sequences
// in a pool of fixed-size blocks (paged attention, as in vLLM): each
// sequence has a block table mapping its positions to blocks, blocks are
// reference counted so that forked sequences share their common prefix
// (copy-on-write), and the pool's size is a byte budget. The storage itself
// belongs to the backend (backend.KV, allocated and copied through a
// Storage: a backend, or a model split over two backends, which keeps each
// backend's layers there); the pool is host bookkeeping only, and is not
// safe for concurrent use (one scheduler owns it).
//
// With Options.PrefixCache, full blocks are also content-addressed: a
// block's key is the SHA-256 of its parent block's key and its tokens, so
// equal keys mean equal token prefixes and therefore equal keys and values
// (a position's cache entries depend only on the tokens up to it). Register
// records a sequence's full blocks; Attach gives a new sequence the cached
// blocks its tokens start with (shared, reference counted). A cached block
// that no sequence references stays in the pool, counted as free, until a
// new block is needed: then the least recently used one is evicted.
package kvcache

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/upg-ai/upg/backend"
)

// DefaultBlockSize is the positions per block when Options leave it 0.
const DefaultBlockSize = 32

// ErrNoBlocks is returned (wrapped) by Reserve when the pool has too few
// free blocks; nothing was changed.
var ErrNoBlocks = errors.New("kvcache: out of KV cache blocks")

// Options describe a pool.
type Options struct {
	Layers, KVHeads, HeadDim int
	Type                     backend.KVType // backend.KVF16 (the zero value), KVF32 (exact) or KVQ8
	BlockSize                int            // positions per block (0 = DefaultBlockSize)
	Budget                   int64          // bytes of key/value storage; the pool holds Budget / block bytes blocks
	PrefixCache              bool           // keep full blocks for reuse by later sequences with the same prefix
}

func (o Options) spec() backend.KVSpec {
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	return backend.KVSpec{Layers: o.Layers, KVHeads: o.KVHeads, HeadDim: o.HeadDim, BlockSize: o.BlockSize, Type: o.Type, Blocks: 1}
}

// Storage allocates a pool's blocks and copies them (copy-on-write): a
// backend.Backend, or a model.Model, whose storage a model split over two
// backends keeps on both (each backend the layers it runs).
type Storage interface {
	NewKV(spec backend.KVSpec) (backend.KV, error)
	CopyKVBlock(kv backend.KV, dst, src int)
}

// Pool is a paged KV cache.
type Pool struct {
	be   Storage
	kv   backend.KV
	spec backend.KVSpec
	free []int32 // free block ids, a stack
	ref  []int32 // references per block
	seqs map[int]*seqState

	// Prefix cache (nil maps and slices when off).
	prefix  bool
	cached  map[blockKey]int32 // key → block holding it
	key     []blockKey         // per block: its key, when registered
	isReg   []bool             // per block: registered in cached
	lruPrev []int32            // per block: LRU list of unreferenced registered blocks
	lruNext []int32
	lruHead int32 // least recently used (evicted first); -1 when empty
	lruTail int32
	lruLen  int
	hbuf    []byte
}

// blockKey identifies a full block's content and everything before it.
type blockKey [sha256.Size]byte

type seqState struct {
	blocks []int32    // the block table
	n      int        // positions stored
	keys   []blockKey // keys of the leading full blocks registered or attached
}

// New allocates a pool's storage on be: a backend, or the model whose
// contexts will use it (a split model's storage is on both its backends).
func New(be Storage, o Options) (*Pool, error) {
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
	p.lruHead, p.lruTail = -1, -1
	if o.PrefixCache {
		p.prefix = true
		p.cached = map[blockKey]int32{}
		p.key = make([]blockKey, spec.Blocks)
		p.isReg = make([]bool, spec.Blocks)
		p.lruPrev = make([]int32, spec.Blocks)
		p.lruNext = make([]int32, spec.Blocks)
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

// KV is the storage the pool manages (Storage.NewKV's).
func (p *Pool) KV() backend.KV { return p.kv }

// Spec is the storage's shape.
func (p *Pool) Spec() backend.KVSpec { return p.spec }

// BlockSize is the positions per block.
func (p *Pool) BlockSize() int { return p.spec.BlockSize }

// Blocks is the pool's size in blocks.
func (p *Pool) Blocks() int { return p.spec.Blocks }

// FreeBlocks is the number of blocks no sequence holds (including cached
// blocks, which are evicted when needed).
func (p *Pool) FreeBlocks() int { return len(p.free) + p.lruLen }

// CachedBlocks is the number of blocks no sequence holds that keep a
// cached prefix (part of FreeBlocks).
func (p *Pool) CachedBlocks() int { return p.lruLen }

// PrefixCache reports whether the pool caches full blocks for reuse.
func (p *Pool) PrefixCache() bool { return p.prefix }

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
	if need > p.FreeBlocks() {
		return fmt.Errorf("%w: sequence %d needs %d more blocks of %d positions, %d of %d are free",
			ErrNoBlocks, seq, need, p.spec.BlockSize, p.FreeBlocks(), p.spec.Blocks)
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
		} else if i < len(s.blocks) && p.prefix && p.isReg[s.blocks[i]] {
			// Positions of a registered block are about to be overwritten.
			p.unregister(s.blocks[i])
		}
	}
	for len(s.blocks)*bs < s.n+n {
		s.blocks = append(s.blocks, p.take())
	}
	return nil
}

func (p *Pool) take() int32 {
	var b int32
	if len(p.free) > 0 {
		b = p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
	} else {
		b = p.lruHead // evict the least recently used cached block
		p.lruRemove(b)
		p.unregister(b)
	}
	p.ref[b] = 1
	return b
}

func (p *Pool) release(b int32) {
	p.ref[b]--
	if p.ref[b] == 0 {
		if p.prefix && p.isReg[b] {
			p.lruPush(b)
		} else {
			p.free = append(p.free, b)
		}
	}
}

func (p *Pool) unregister(b int32) {
	if p.isReg[b] {
		delete(p.cached, p.key[b])
		p.isReg[b] = false
	}
}

func (p *Pool) lruPush(b int32) {
	p.lruPrev[b], p.lruNext[b] = p.lruTail, -1
	if p.lruTail >= 0 {
		p.lruNext[p.lruTail] = b
	} else {
		p.lruHead = b
	}
	p.lruTail = b
	p.lruLen++
}

func (p *Pool) lruRemove(b int32) {
	prev, next := p.lruPrev[b], p.lruNext[b]
	if prev >= 0 {
		p.lruNext[prev] = next
	} else {
		p.lruHead = next
	}
	if next >= 0 {
		p.lruPrev[next] = prev
	} else {
		p.lruTail = prev
	}
	p.lruLen--
}

// hashBlock is the key of a block holding tokens after the block keyed parent
// (the zero key for the first block).
func (p *Pool) hashBlock(parent *blockKey, tokens []int) blockKey {
	p.hbuf = append(p.hbuf[:0], parent[:]...)
	for _, t := range tokens {
		p.hbuf = binary.LittleEndian.AppendUint32(p.hbuf, uint32(t))
	}
	return sha256.Sum256(p.hbuf)
}

// Register records seq's full blocks in the prefix cache, so that later
// sequences starting with the same tokens can Attach them. tokens are seq's
// tokens (at least Len(seq) of them). A no-op without Options.PrefixCache.
func (p *Pool) Register(seq int, tokens []int) {
	s := p.seqs[seq]
	if !p.prefix || s == nil {
		return
	}
	bs := p.spec.BlockSize
	for i := len(s.keys); (i+1)*bs <= s.n && (i+1)*bs <= len(tokens); i++ {
		var parent blockKey
		if i > 0 {
			parent = s.keys[i-1]
		}
		k := p.hashBlock(&parent, tokens[i*bs:(i+1)*bs])
		s.keys = append(s.keys, k)
		b := s.blocks[i]
		if _, dup := p.cached[k]; !dup && !p.isReg[b] {
			p.cached[k] = b
			p.key[b] = k
			p.isReg[b] = true
		}
	}
}

// match walks the cache along the full blocks of tokens and returns the
// blocks found and their keys.
func (p *Pool) match(tokens []int, fn func(b int32, k blockKey)) int {
	if !p.prefix {
		return 0
	}
	bs := p.spec.BlockSize
	var parent blockKey
	n := 0
	for ; (n+1)*bs <= len(tokens); n++ {
		k := p.hashBlock(&parent, tokens[n*bs:(n+1)*bs])
		b, ok := p.cached[k]
		if !ok {
			break
		}
		if fn != nil {
			fn(b, k)
		}
		parent = k
	}
	return n * bs
}

// MatchPrefix is the number of leading positions of tokens (whole blocks)
// whose keys and values are in the prefix cache.
func (p *Pool) MatchPrefix(tokens []int) int { return p.match(tokens, nil) }

// Attach gives seq, which must hold no positions, the cached blocks that
// tokens start with, and returns how many positions they hold (a multiple
// of the block size; 0 without a match or Options.PrefixCache). Pass the
// tokens whose cache entries are wanted: a caller that must compute the
// last prompt token to get logits passes all but it.
func (p *Pool) Attach(seq int, tokens []int) int {
	if !p.prefix {
		return 0
	}
	if s := p.seqs[seq]; s != nil && (s.n > 0 || len(s.blocks) > 0) {
		return 0
	}
	s := &seqState{}
	n := p.match(tokens, func(b int32, k blockKey) {
		if p.ref[b] == 0 {
			p.lruRemove(b)
		}
		p.ref[b]++
		s.blocks = append(s.blocks, b)
		s.keys = append(s.keys, k)
	})
	if n > 0 {
		s.n = n
		p.seqs[seq] = s
	}
	return n
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
	// Last block first: in the prefix cache's LRU order, a sequence's later
	// blocks are evicted before the earlier ones they depend on.
	for i := len(s.blocks) - 1; i >= keep; i-- {
		p.release(s.blocks[i])
	}
	s.blocks = s.blocks[:keep]
	s.n = n
	if full := n / p.spec.BlockSize; len(s.keys) > full {
		s.keys = s.keys[:full]
	}
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
	d.keys = append(d.keys, s.keys[:min(len(s.keys), n/p.spec.BlockSize)]...)
	for _, b := range d.blocks {
		p.ref[b]++
	}
	p.seqs[dst] = d
	return nil
}

// AppendStep adds seq to the step st as its next sequence, feeding tokens
// at the positions after seq's stored ones: seq's block table, and per
// token its id, position, KV slot and sequence index. Room must have been
// reserved (Reserve(seq, len(tokens))); the caller asks for logits rows
// (st.Out) and commits (Commit(seq, len(tokens))) after the forward pass.
// The one place a step is built from the pool (the engine, the benchmark,
// the compressor and StepFor use it); it allocates nothing once st's slices
// have grown.
func (p *Pool) AppendStep(st *backend.Step, seq int, tokens []int) {
	si, start := int32(len(st.Tables)), p.Len(seq)
	st.Tables = append(st.Tables, p.Table(seq))
	for i, t := range tokens {
		st.Tokens = append(st.Tokens, int32(t))
		st.Pos = append(st.Pos, int32(start+i))
		st.Slot = append(st.Slot, p.Slot(seq, start+i))
		st.Seq = append(st.Seq, si)
	}
}

// StepFor reserves room for tokens after seq's stored positions and returns
// the one-sequence step that feeds them (logits of every token when
// allLogits, else of the last); Commit(seq, len(tokens)) after the forward
// pass. For callers that run one sequence at a time (eval, tests).
func (p *Pool) StepFor(seq int, tokens []int, allLogits bool) (*backend.Step, error) {
	if err := p.Reserve(seq, len(tokens)); err != nil {
		return nil, err
	}
	n := len(tokens)
	s := &backend.Step{Tokens: make([]int32, 0, n), Pos: make([]int32, 0, n), Slot: make([]int32, 0, n), Seq: make([]int32, 0, n)}
	p.AppendStep(s, seq, tokens)
	if allLogits {
		for i := range n {
			s.Out = append(s.Out, int32(i))
		}
	} else if n > 0 {
		s.Out = []int32{int32(n - 1)}
	}
	return s, nil
}

// DefaultBudget is the KV budget a server takes when none is given: half
// of free (the memory left for the cache after the weights), at most
// maxSeqs full contexts of ctx positions and at least one; free ≤ 0 means
// unknown (then maxSeqs full contexts). It says why, for the log.
func DefaultBudget(o Options, ctx, maxSeqs int, free int64) (int64, string) {
	full := BudgetFor(o, ctx, maxSeqs)
	one := BudgetFor(o, ctx, 1)
	if free <= 0 {
		return full, "free memory unknown: room for every sequence's full context"
	}
	share := free / 2
	switch {
	case share >= full:
		return full, "room for every sequence's full context"
	case share < one:
		return one, "free memory is short: room for one full context"
	}
	return share, "half of the free memory after the model"
}
