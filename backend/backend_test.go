package backend

import (
	"math"
	"strings"
	"testing"
)

func TestStepValidate(t *testing.T) {
	spec := KVSpec{Layers: 1, KVHeads: 1, HeadDim: 4, BlockSize: 4, Blocks: 3}
	good := func() *Step {
		return &Step{Tokens: []int32{5, 6}, Pos: []int32{4, 5}, Slot: []int32{8, 9}, Seq: []int32{0, 0},
			Tables: [][]int32{{0, 2}}, Out: []int32{1}}
	}
	if err := good().Validate(spec, 10); err != nil {
		t.Fatalf("valid step: %v", err)
	}
	for _, c := range []struct {
		name string
		mut  func(s *Step)
		want string
	}{
		{"lengths", func(s *Step) { s.Pos = s.Pos[:1] }, "1 positions"},
		{"token", func(s *Step) { s.Tokens[0] = 10 }, "token id 10 out of range"},
		{"slot range", func(s *Step) { s.Slot[0] = 12 }, "KV slot 12 out of range"},
		{"slot table", func(s *Step) { s.Slot[0] = 4 }, "not where its block table puts position 4"},
		{"sequence", func(s *Step) { s.Seq[1] = 1 }, "names sequence 1 of 1"},
		{"position", func(s *Step) { s.Pos[1] = 8 }, "beyond its sequence's 2 blocks"},
		{"block", func(s *Step) { s.Tables[0][0] = 3 }, "block 3 out of range"},
		{"out", func(s *Step) { s.Out[0] = 2 }, "logits row for token 2 of 2"},
	} {
		s := good()
		c.mut(s)
		if err := s.Validate(spec, 10); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestKVSpec(t *testing.T) {
	s := KVSpec{Layers: 2, KVHeads: 3, HeadDim: 4, BlockSize: 5, Blocks: 1}
	if got := s.BlockBytes(); got != 2*3*4*5*2*2 {
		t.Errorf("f16 BlockBytes = %d", got)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
	s.Type = KVF32
	if got := s.BlockBytes(); got != 2*3*4*5*2*4 {
		t.Errorf("f32 BlockBytes = %d", got)
	}
	// q8: one byte per value and a 2-byte scale per 32 values of a row
	// (a partial group counts as a whole scale).
	for _, c := range []struct{ hd, row int }{{4, 4 + 2}, {32, 32 + 2}, {33, 33 + 4}, {128, 128 + 8}} {
		s.Type, s.HeadDim = KVQ8, c.hd
		if got := s.BlockBytes(); got != int64(2*3*5*2*c.row) {
			t.Errorf("q8 BlockBytes (head dim %d) = %d, want %d", c.hd, got, 2*3*5*2*c.row)
		}
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
	}
	s.Type = KVQ8 + 1
	if err := s.Validate(); err == nil {
		t.Error("unknown KV type accepted")
	}
}

func TestParseKVType(t *testing.T) {
	for _, c := range []struct {
		s    string
		want KVType
	}{{"f16", KVF16}, {"F32", KVF32}, {"q8", KVQ8}, {"Q8", KVQ8}} {
		got, err := ParseKVType(c.s)
		if err != nil || got != c.want {
			t.Errorf("ParseKVType(%q) = %v, %v; want %v", c.s, got, err, c.want)
		}
		if !strings.EqualFold(got.String(), c.s) {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	for _, s := range []string{"", "q4", "bf16", "int8"} {
		if _, err := ParseKVType(s); err == nil || !strings.Contains(err.Error(), "f16, f32 or q8") {
			t.Errorf("ParseKVType(%q): %v, want an error naming f16, f32 or q8", s, err)
		}
	}
}

func TestRopeTables(t *testing.T) {
	r := RopeSpec{Dim: 4, InvFreq: []float64{1, 0.01}, PosScale: 0.5, Positions: 3}
	cos, sin := r.Tables()
	if len(cos) != 6 || len(sin) != 6 {
		t.Fatalf("tables of %d and %d values", len(cos), len(sin))
	}
	// Position 2, frequency 0.01, scaled positions: angle 2·0.5·0.01.
	if got, want := float64(sin[2*2+1]), math.Sin(0.01); math.Abs(got-want) > 1e-7 {
		t.Errorf("sin = %v, want %v", got, want)
	}
	if cos[0] != 1 || sin[0] != 0 {
		t.Errorf("position 0: cos %v sin %v", cos[0], sin[0])
	}
}

func TestLogprobs(t *testing.T) {
	row := []float32{1, 3, 3, 0}
	lse := math.Log(math.Exp(1) + 2*math.Exp(3) + 1)
	lp, top := Logprobs(row, 0, 2, nil)
	if math.Abs(float64(lp)-(1-lse)) > 1e-6 {
		t.Errorf("logprob of token 0 = %v, want %v", lp, 1-lse)
	}
	if len(top) != 2 || top[0].Token != 1 || top[1].Token != 2 || math.Abs(float64(top[0].Logprob)-(3-lse)) > 1e-6 {
		t.Errorf("top 2 = %+v, want tokens 1 and 2 (ties to the lower id) at %v", top, 3-lse)
	}
	if _, top := Logprobs(row, 3, 0, nil); len(top) != 0 {
		t.Errorf("k = 0 gave %d top entries", len(top))
	}
}
