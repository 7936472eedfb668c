package kvcache

import (
	"errors"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
)

// fakeBackend provides KV storage and records block copies; the pool uses
// nothing else of a backend.
type fakeBackend struct {
	backend.Backend
	copies [][2]int
}

type fakeKV struct{ spec backend.KVSpec }

func (k *fakeKV) Spec() backend.KVSpec { return k.spec }

func (f *fakeBackend) NewKV(spec backend.KVSpec) (backend.KV, error) { return &fakeKV{spec}, nil }
func (f *fakeBackend) CopyKVBlock(kv backend.KV, dst, src int) {
	f.copies = append(f.copies, [2]int{dst, src})
}

func newPool(t *testing.T, blocks int) (*Pool, *fakeBackend) {
	t.Helper()
	be := &fakeBackend{}
	o := Options{Layers: 2, KVHeads: 2, HeadDim: 8, BlockSize: 4}
	o.Budget = int64(blocks)*o.spec().BlockBytes() + 7 // a partial block does not count
	p, err := New(be, o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Blocks() != blocks {
		t.Fatalf("%d blocks, want %d", p.Blocks(), blocks)
	}
	return p, be
}

func TestReserveCommitTruncate(t *testing.T) {
	p, _ := newPool(t, 5)
	if err := p.Reserve(7, 6); err != nil {
		t.Fatal(err)
	}
	if p.SeqBlocks(7) != 2 || p.Len(7) != 0 || p.FreeBlocks() != 3 {
		t.Fatalf("after reserving 6: %d blocks, len %d, %d free", p.SeqBlocks(7), p.Len(7), p.FreeBlocks())
	}
	p.Commit(7, 6)
	tb := p.Table(7)
	for pos := 0; pos < 6; pos++ {
		if want := tb[pos/4]*4 + int32(pos%4); p.Slot(7, pos) != want {
			t.Errorf("slot of %d = %d, want %d", pos, p.Slot(7, pos), want)
		}
	}
	// 15 more positions (21) need 4 more blocks: more than the 3 free; nothing changes.
	err := p.Reserve(7, 15)
	if !errors.Is(err, ErrNoBlocks) || !strings.Contains(err.Error(), "needs 4 more blocks of 4 positions, 3 of 5 are free") {
		t.Fatalf("over-reserve: %v", err)
	}
	if p.SeqBlocks(7) != 2 || p.FreeBlocks() != 3 || p.Len(7) != 6 {
		t.Fatalf("a failed reserve changed the pool: %d blocks, %d free, len %d", p.SeqBlocks(7), p.FreeBlocks(), p.Len(7))
	}
	p.Truncate(7, 3)
	if p.SeqBlocks(7) != 1 || p.FreeBlocks() != 4 || p.Len(7) != 3 {
		t.Fatalf("after truncating to 3: %d blocks, %d free, len %d", p.SeqBlocks(7), p.FreeBlocks(), p.Len(7))
	}
	if err := p.Remove(7, 1, 2); err == nil {
		t.Error("removing a middle range succeeded")
	}
	if err := p.Remove(7, 0, 3); err != nil || p.Sequences() != 0 || p.FreeBlocks() != 5 {
		t.Fatalf("remove all: %v, %d sequences, %d free", err, p.Sequences(), p.FreeBlocks())
	}
}

func TestForkCopyOnWrite(t *testing.T) {
	p, be := newPool(t, 6)
	if err := p.Reserve(1, 6); err != nil {
		t.Fatal(err)
	}
	p.Commit(1, 6) // blocks A (0-3) and B (4-5, partial)
	a, b := p.Table(1)[0], p.Table(1)[1]
	if err := p.Fork(2, 1, -1); err != nil {
		t.Fatal(err)
	}
	if p.FreeBlocks() != 4 || p.Len(2) != 6 {
		t.Fatalf("fork took blocks: %d free, len %d", p.FreeBlocks(), p.Len(2))
	}
	// Sequence 2 writes into the shared partial block: it gets a copy.
	if p.Needed(2, 1) != 1 {
		t.Fatalf("Needed = %d, want 1 (the copy)", p.Needed(2, 1))
	}
	if err := p.Reserve(2, 1); err != nil {
		t.Fatal(err)
	}
	t2 := p.Table(2)
	if t2[0] != a || t2[1] == b || len(be.copies) != 1 || be.copies[0] != [2]int{int(t2[1]), int(b)} {
		t.Fatalf("copy-on-write: table %v (source %d %d), copies %v", t2, a, b, be.copies)
	}
	// Sequence 1's block B is now its own: no copy when it writes.
	if err := p.Reserve(1, 1); err != nil || len(be.copies) != 1 {
		t.Fatalf("writing an unshared block copied: %v, %v", err, be.copies)
	}
	// A fork of a prefix shares only the blocks covering it.
	if err := p.Fork(3, 1, 4); err != nil || p.SeqBlocks(3) != 1 || p.Table(3)[0] != a {
		t.Fatalf("prefix fork: %v, table %v", err, p.Table(3))
	}
	// Freeing sequence 1 keeps A (still used by 2 and 3).
	p.Truncate(1, 0)
	p.Truncate(2, 0)
	if p.FreeBlocks() != 5 {
		t.Fatalf("%d free with only sequence 3's block A held", p.FreeBlocks())
	}
	p.Truncate(3, 0)
	if p.FreeBlocks() != 6 {
		t.Fatalf("%d free at the end", p.FreeBlocks())
	}
	if err := p.Fork(4, 9, -1); err == nil {
		t.Error("fork of an unknown sequence succeeded")
	}
}

func TestBudgetTooSmall(t *testing.T) {
	o := Options{Layers: 2, KVHeads: 2, HeadDim: 8, BlockSize: 4, Budget: 100}
	if _, err := New(&fakeBackend{}, o); err == nil || !strings.Contains(err.Error(), "holds no block") {
		t.Errorf("budget below one block: %v", err)
	}
	if got, want := BudgetFor(o, 9, 2), int64(3*2)*o.spec().BlockBytes(); got != want {
		t.Errorf("BudgetFor = %d, want %d", got, want)
	}
}

// TestBudgetQ8 checks the pool's byte arithmetic for an int8 cache: the
// scales count, and a q8 budget holds about twice the blocks of f16.
func TestBudgetQ8(t *testing.T) {
	o := Options{Layers: 2, KVHeads: 2, HeadDim: 64, BlockSize: 4, Type: backend.KVQ8}
	// Per block: 2 layers × 2 heads × 4 positions × (K and V) × (64 codes + 2 scales of 2 bytes).
	if got, want := o.spec().BlockBytes(), int64(2*2*4*2*(64+4)); got != want {
		t.Fatalf("q8 block bytes %d, want %d", got, want)
	}
	o16 := o
	o16.Type = backend.KVF16
	budget := BudgetFor(o16, 40, 1) // 10 f16 blocks
	p, err := New(&fakeBackend{}, Options{Layers: 2, KVHeads: 2, HeadDim: 64, BlockSize: 4, Type: backend.KVQ8, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	// 10 f16 blocks of 4096 bytes hold 40960 / 2176 = 18 q8 blocks.
	if p.Blocks() != 18 || p.Bytes() != 18*2176 {
		t.Errorf("q8 pool of an f16 budget for 10 blocks: %d blocks, %d bytes; want 18, %d", p.Blocks(), p.Bytes(), 18*2176)
	}
}

// TestPhi4Q8Context16k is the arithmetic behind the claim that Phi-4's
// keys and values for 16,384 positions fit in 2.68 GB with the q8 cache:
// 40 layers, 10 KV heads of 128, blocks of DefaultBlockSize positions.
func TestPhi4Q8Context16k(t *testing.T) {
	o := Options{Layers: 40, KVHeads: 10, HeadDim: 128, Type: backend.KVQ8}
	got := BudgetFor(o, 16384, 1)
	// 16384 positions × 40 layers × 10 heads × (K, V) × (128 codes + 4 fp16 scales).
	const want = int64(16384 * 40 * 10 * 2 * (128 + 4*2))
	if got != want {
		t.Errorf("Phi-4 q8 KV for 16,384 positions: %d bytes, want %d", got, want)
	}
	if got > 2_680_000_000 {
		t.Errorf("Phi-4 q8 KV for 16,384 positions: %d bytes, more than 2.68 GB", got)
	}
	o.Type = backend.KVF16
	f16 := BudgetFor(o, 16384, 1)
	t.Logf("Phi-4, 16,384 positions: q8 %d bytes (%.2f GB), f16 %d bytes (%.2f GB)", got, float64(got)/1e9, f16, float64(f16)/1e9)
	if f16 <= 2_680_000_000 {
		t.Errorf("f16 cache of %d bytes also fits: the test no longer shows what q8 buys", f16)
	}
}

// TestDefaultBudget: half of the free memory, between one full context and
// every sequence's full context; unknown free memory gives the latter.
func TestDefaultBudget(t *testing.T) {
	o := Options{Layers: 40, KVHeads: 10, HeadDim: 128, BlockSize: 16}
	one, full := BudgetFor(o, 4096, 1), BudgetFor(o, 4096, 8)
	for _, c := range []struct {
		free, want int64
	}{
		{0, full}, {-5, full}, {100 * full, full}, {one, one}, {3 * one, 3 * one / 2}, {2 * full, full},
	} {
		if got, why := DefaultBudget(o, 4096, 8, c.free); got != c.want || why == "" {
			t.Errorf("free %d: budget %d (%q), want %d", c.free, got, why, c.want)
		}
	}
}

func TestAppendStep(t *testing.T) {
	p, _ := newPool(t, 6)
	if err := p.Reserve(3, 5); err != nil {
		t.Fatal(err)
	}
	p.Commit(3, 5)
	st := &backend.Step{Out: []int32{9}}
	for round := 0; round < 2; round++ { // the second round reuses the step's slices
		st.Reset()
		for _, c := range []struct {
			seq  int
			toks []int
		}{{3, []int{11, 12}}, {8, []int{21, 22, 23}}} {
			if err := p.Reserve(c.seq, len(c.toks)); err != nil {
				t.Fatal(err)
			}
			p.AppendStep(st, c.seq, c.toks)
		}
		if len(st.Out) != 0 || len(st.Tables) != 2 {
			t.Fatalf("round %d: %d logits rows, %d tables", round, len(st.Out), len(st.Tables))
		}
		want := []struct{ seq, si, pos, tok int }{{3, 0, 5, 11}, {3, 0, 6, 12}, {8, 1, 0, 21}, {8, 1, 1, 22}, {8, 1, 2, 23}}
		for i, w := range want {
			if int(st.Tokens[i]) != w.tok || int(st.Pos[i]) != w.pos || st.Slot[i] != p.Slot(w.seq, w.pos) || int(st.Seq[i]) != w.si {
				t.Fatalf("round %d, token %d: id %d pos %d slot %d seq %d, want %+v (slot %d)", round, i, st.Tokens[i], st.Pos[i], st.Slot[i], st.Seq[i], w, p.Slot(w.seq, w.pos))
			}
		}
		if &st.Tables[0][0] != &p.Table(3)[0] || &st.Tables[1][0] != &p.Table(8)[0] {
			t.Fatalf("round %d: tables are not the pool's", round)
		}
	}
}
