package kvcache

import (
	"slices"
	"testing"
)

func newPrefixPool(t *testing.T, blocks int) *Pool {
	t.Helper()
	o := Options{Layers: 2, KVHeads: 2, HeadDim: 8, BlockSize: 4, PrefixCache: true}
	o.Budget = int64(blocks) * o.spec().BlockBytes()
	p, err := New(&fakeBackend{}, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fill stores tokens as seq's positions and registers its full blocks.
func fill(t *testing.T, p *Pool, seq int, tokens []int) {
	t.Helper()
	n := len(tokens) - p.Len(seq)
	if err := p.Reserve(seq, n); err != nil {
		t.Fatal(err)
	}
	p.Commit(seq, n)
	p.Register(seq, tokens)
}

func seqTokens(n, salt int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i*7 + salt
	}
	return s
}

// TestPrefixShareAndEvict: a second sequence with the same prefix shares its
// full blocks (reference counted, never written), released blocks stay
// cached (counted free) until they are needed, and then the least recently
// used go first, later blocks of a sequence before earlier ones.
func TestPrefixShareAndEvict(t *testing.T) {
	p := newPrefixPool(t, 8)
	a := seqTokens(10, 0) // 2 full blocks + 2 positions
	fill(t, p, 1, a)
	if p.FreeBlocks() != 5 || p.CachedBlocks() != 0 {
		t.Fatalf("free %d cached %d", p.FreeBlocks(), p.CachedBlocks())
	}
	// Same first 9 tokens, then different: the 2 full blocks are shared.
	b := append(slices.Clone(a[:9]), 999, 1000, 1001)
	if got := p.MatchPrefix(b[:len(b)-1]); got != 8 {
		t.Fatalf("match %d positions, want 8", got)
	}
	if got := p.Attach(2, b[:len(b)-1]); got != 8 || p.Len(2) != 8 || p.SeqBlocks(2) != 2 {
		t.Fatalf("attach %d, len %d, blocks %d", got, p.Len(2), p.SeqBlocks(2))
	}
	if !slices.Equal(p.Table(2), p.Table(1)[:2]) || p.FreeBlocks() != 5 {
		t.Fatalf("tables %v %v, free %d", p.Table(1), p.Table(2), p.FreeBlocks())
	}
	fill(t, p, 2, b) // 12 positions: a third block of its own
	if p.Table(2)[2] == p.Table(1)[2] || p.FreeBlocks() != 4 {
		t.Fatalf("tables %v %v, free %d", p.Table(1), p.Table(2), p.FreeBlocks())
	}
	// A different first block matches nothing.
	if got := p.MatchPrefix(seqTokens(12, 1)); got != 0 {
		t.Fatalf("unrelated prefix matched %d", got)
	}
	// Releasing both: the registered full blocks (a's 2 shared, b's third)
	// stay cached; a's partial block is plain free.
	p.Truncate(1, 0)
	p.Truncate(2, 0)
	if p.FreeBlocks() != 8 || p.CachedBlocks() != 3 {
		t.Fatalf("after release: free %d cached %d", p.FreeBlocks(), p.CachedBlocks())
	}
	if got := p.MatchPrefix(b); got != 12 {
		t.Fatalf("after release: match %d, want 12", got)
	}
	// Taking 6 blocks uses the 5 plain free ones, then evicts the least
	// recently released chain's last block first: b's third.
	if err := p.Reserve(3, 24); err != nil {
		t.Fatal(err)
	}
	if p.CachedBlocks() != 2 || p.MatchPrefix(b) != 8 {
		t.Fatalf("after one eviction: cached %d, match %d", p.CachedBlocks(), p.MatchPrefix(b))
	}
	if err := p.Reserve(3, 32); err != nil { // 2 more: evicts the rest
		t.Fatal(err)
	}
	if p.CachedBlocks() != 0 || p.MatchPrefix(b) != 0 || p.FreeBlocks() != 0 {
		t.Fatalf("full: cached %d, match %d, free %d", p.CachedBlocks(), p.MatchPrefix(b), p.FreeBlocks())
	}
}

// TestPrefixOverwrite: truncating into a registered block and writing new
// tokens unregisters it (or copies it when another sequence shares it), so
// the cache never hands out blocks whose contents changed.
func TestPrefixOverwrite(t *testing.T) {
	p := newPrefixPool(t, 8)
	a := seqTokens(8, 0)
	fill(t, p, 1, a)
	p.Truncate(1, 6) // back into block 1
	if err := p.Reserve(1, 1); err != nil {
		t.Fatal(err)
	}
	if got := p.MatchPrefix(a); got != 4 {
		t.Fatalf("block about to be overwritten still matches: %d", got)
	}
	// Shared case: another sequence holds the registered block.
	c := seqTokens(8, 3)
	fill(t, p, 2, c)
	if got := p.Attach(3, c); got != 8 {
		t.Fatalf("attach %d", got)
	}
	p.Truncate(2, 6)
	if err := p.Reserve(2, 1); err != nil {
		t.Fatal(err)
	}
	if p.Table(2)[1] == p.Table(3)[1] {
		t.Fatal("shared block written in place")
	}
	if got := p.MatchPrefix(c); got != 8 {
		t.Fatalf("the other sequence's copy should still match: %d", got)
	}
	// Re-registering after rewriting keeps the cache consistent.
	p.Commit(2, 1)
	c2 := append(slices.Clone(c[:6]), 77, 78)
	fill(t, p, 2, c2)
	if got := p.MatchPrefix(c2); got != 8 {
		t.Fatalf("rewritten block: match %d", got)
	}
	p.Truncate(2, 0)
	p.Truncate(3, 0)
	p.Truncate(1, 0)
	if p.FreeBlocks() != 8 {
		t.Fatalf("free %d", p.FreeBlocks())
	}
}

// TestPrefixOff: without the option nothing is cached.
func TestPrefixOff(t *testing.T) {
	p, _ := newPool(t, 4)
	a := seqTokens(8, 0)
	fill(t, p, 1, a)
	p.Truncate(1, 0)
	if p.MatchPrefix(a) != 0 || p.Attach(2, a) != 0 || p.CachedBlocks() != 0 || p.FreeBlocks() != 4 {
		t.Fatal("prefix cache active without the option")
	}
}
