// Package backend is the execution seam: everything a forward pass does to
// numbers happens behind the Backend interface, on memory the backend owns.
// The model (package model) is a fixed sequence of calls to it; the CPU
// backend (backend/cpu) runs each call at once on its worker pool, a GPU
// backend enqueues it on a stream, where a whole decode step can be
// captured as one graph.
//
// The calls are imperative rather than a graph built first and executed
// later (ggml's way): a decoder step is a short, fixed list of ops, Go has
// no operator overloading to make graph building pleasant, and a GPU gets
// the same effect from stream capture. What keeps a step free of host
// round trips is that everything that changes from step to step (token
// ids, positions, KV slots, block tables, which rows need logits) travels
// in one Step, copied to the backend by SetStep before the ops; the op
// sequence itself depends only on the token count, so a GPU can capture
// one graph per batch size and replay it.
package backend

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tensor"
)

// Buffer is float32 memory owned by a backend (activations, logits).
type Buffer interface {
	// Len is the buffer's size in float32 values.
	Len() int
}

// Weight is a matrix (any codec) or vector handed to a backend once, with
// LoadMatrix or LoadVector. A CPU backend keeps using the caller's memory
// (the model's memory map); a GPU backend uploads it.
type Weight interface {
	Rows() int
	Cols() int
}

// View is a column window of a row-major buffer: row i of the view starts
// at Off + i*Stride of Buf. It lets ops read the q, k and v parts of a fused
// projection output in place.
type View struct {
	Buf         Buffer
	Off, Stride int
}

// Whole is the view of a buffer of rows of width values each.
func Whole(b Buffer, width int) View { return View{Buf: b, Stride: width} }

// KVType is how a KV cache stores keys and values. The zero value is the
// default, KVF16.
type KVType uint8

const (
	// KVF16 stores half-precision floats (the default).
	KVF16 KVType = iota
	// KVF32 stores float32: exact.
	KVF32
	// KVQ8 stores int8 codes with an fp16 scale per KVQ8Group values of a
	// row (one position's head): value = scale·code, the scale being the
	// group's largest magnitude / 127. About half of KVF16's bytes.
	KVQ8
)

// KVQ8Group is the values per scale of a KVQ8 row; a row's last group is
// shorter when the head dimension is not a multiple of it.
const KVQ8Group = 32

// kvTypeNames are the names ParseKVType accepts, in KVType order.
var kvTypeNames = [...]string{KVF16: "f16", KVF32: "f32", KVQ8: "q8"}

// String is the type's name as the --kv-cache flag spells it.
func (t KVType) String() string {
	if int(t) < len(kvTypeNames) {
		return kvTypeNames[t]
	}
	return fmt.Sprintf("KVType(%d)", uint8(t))
}

// KVTypeNames lists the accepted names, for messages ("f16, f32 or q8").
func KVTypeNames() string {
	n := len(kvTypeNames)
	return strings.Join(kvTypeNames[:n-1], ", ") + " or " + kvTypeNames[n-1]
}

// ParseKVType maps a name ("f16", "f32", "q8", any case) to a KVType.
func ParseKVType(s string) (KVType, error) {
	for t, n := range kvTypeNames {
		if strings.EqualFold(s, n) {
			return KVType(t), nil
		}
	}
	return 0, fmt.Errorf("KV cache type %q is not one of %s", s, KVTypeNames())
}

// KVQ8Groups is the number of scales of a KVQ8 row of hd values.
func KVQ8Groups(hd int) int { return (hd + KVQ8Group - 1) / KVQ8Group }

// RowBytes is the storage of one row of hd values (one position's key, or
// value, for one KV head), scales included.
func (t KVType) RowBytes(hd int) int64 {
	switch t {
	case KVF32:
		return 4 * int64(hd)
	case KVQ8:
		return int64(hd) + 2*int64(KVQ8Groups(hd))
	}
	return 2 * int64(hd)
}

// KVSpec is the shape of a paged KV cache's storage: Blocks blocks of
// BlockSize positions each, for every layer and KV head.
type KVSpec struct {
	Layers, KVHeads, HeadDim int
	BlockSize, Blocks        int
	Type                     KVType
}

// BlockBytes is the storage of one block over all layers, keys and values
// (with KVQ8, their scales too).
func (s KVSpec) BlockBytes() int64 {
	return int64(s.Layers) * int64(s.KVHeads) * int64(s.BlockSize) * 2 * s.Type.RowBytes(s.HeadDim)
}

// Validate reports a spec no backend can hold.
func (s KVSpec) Validate() error {
	if int(s.Type) >= len(kvTypeNames) {
		return fmt.Errorf("backend: KV cache type %v is not supported (want %s)", s.Type, KVTypeNames())
	}
	if s.Layers <= 0 || s.KVHeads <= 0 || s.HeadDim <= 0 || s.BlockSize <= 0 || s.Blocks <= 0 {
		return fmt.Errorf("backend: invalid KV cache shape: %d layers, %d KV heads of %d, %d blocks of %d positions",
			s.Layers, s.KVHeads, s.HeadDim, s.Blocks, s.BlockSize)
	}
	return nil
}

// KV is a paged KV cache's storage on a backend. Slot s (a block times
// BlockSize plus the offset in it) holds one position's keys and values;
// which slots belong to which sequence is kvcache.Pool's business.
type KV interface {
	Spec() KVSpec
}

// Step is the host-side description of one forward pass: N tokens of one
// or more sequences. Token i of the step has id Tokens[i], sits at position
// Pos[i] of sequence Seq[i] (an index into Tables), stores its key and value
// in KV slot Slot[i], and attends to positions 0..Pos[i] of its sequence,
// whose slots are given by the sequence's block table: position p is in
// block Tables[Seq[i]][p/BlockSize]. Out lists the tokens whose next-token
// logits are wanted, in the order the logits rows come out.
//
// With PrevTokens (a Pipeliner's steps only), token i's id is the token the
// backend's last SampleAsync sampled for row i, not Tokens[i] (which then
// holds a placeholder in range): the step can be queued before the host
// has read those tokens back.
type Step struct {
	Tokens     []int32
	Pos        []int32
	Slot       []int32
	Seq        []int32
	Tables     [][]int32
	Out        []int32
	PrevTokens bool
}

// Reset empties the step, keeping its slices' capacity, so that it can be
// built again (kvcache.Pool.AppendStep) without allocating.
func (s *Step) Reset() {
	s.Tokens, s.Pos, s.Slot, s.Seq, s.Tables, s.Out = s.Tokens[:0], s.Pos[:0], s.Slot[:0], s.Seq[:0], s.Tables[:0], s.Out[:0]
	s.PrevTokens = false
}

// Validate checks the step's internal consistency (lengths, ranges)
// against a KV spec, so that a bad step is an error, not a wild write.
func (s *Step) Validate(spec KVSpec, vocab int) error {
	n := len(s.Tokens)
	if len(s.Pos) != n || len(s.Slot) != n || len(s.Seq) != n {
		return fmt.Errorf("backend: step of %d tokens has %d positions, %d slots, %d sequence indices", n, len(s.Pos), len(s.Slot), len(s.Seq))
	}
	maxSlot := int32(spec.Blocks * spec.BlockSize)
	for i := range n {
		if s.Tokens[i] < 0 || int(s.Tokens[i]) >= vocab {
			return fmt.Errorf("backend: token id %d out of range [0, %d)", s.Tokens[i], vocab)
		}
		if s.Slot[i] < 0 || s.Slot[i] >= maxSlot {
			return fmt.Errorf("backend: KV slot %d out of range [0, %d)", s.Slot[i], maxSlot)
		}
		if s.Seq[i] < 0 || int(s.Seq[i]) >= len(s.Tables) {
			return fmt.Errorf("backend: token %d names sequence %d of %d", i, s.Seq[i], len(s.Tables))
		}
		t := s.Tables[s.Seq[i]]
		if s.Pos[i] < 0 || int(s.Pos[i]) >= len(t)*spec.BlockSize {
			return fmt.Errorf("backend: position %d beyond its sequence's %d blocks", s.Pos[i], len(t))
		}
		if t[s.Pos[i]/int32(spec.BlockSize)]*int32(spec.BlockSize)+s.Pos[i]%int32(spec.BlockSize) != s.Slot[i] {
			return fmt.Errorf("backend: token %d's slot %d is not where its block table puts position %d", i, s.Slot[i], s.Pos[i])
		}
	}
	for _, t := range s.Tables {
		for _, b := range t {
			if b < 0 || int(b) >= spec.Blocks {
				return fmt.Errorf("backend: block %d out of range [0, %d)", b, spec.Blocks)
			}
		}
	}
	for _, o := range s.Out {
		if o < 0 || int(o) >= n {
			return fmt.Errorf("backend: logits row for token %d of %d", o, n)
		}
	}
	return nil
}

// StepBuf is a Step held by the backend (device memory on a GPU), sized
// once for the most tokens, sequences and blocks a context will use.
type StepBuf interface {
	// N is the number of tokens of the step last set.
	N() int
}

// StepLimits size a StepBuf.
type StepLimits struct {
	Tokens, Seqs, BlocksPerSeq int
}

// RopeSpec is a rotary embedding: Dim rotated values per head (partial
// rotary when Dim < head dim), adjacent pairs (Interleave, GGUF/Meta) or
// halves (Hugging Face), angle pos·PosScale·InvFreq[i].
type RopeSpec struct {
	Dim        int
	Interleave bool
	InvFreq    []float64
	PosScale   float64
	Positions  int // table length: the most positions a sequence may have
}

// Rope is a rotary embedding's tables held by a backend.
type Rope interface{}

// SampleRequest asks for one row of logits to be turned into a token.
type SampleRequest struct {
	// Sampler carries the sequence's options and its seed, so that its
	// tokens do not depend on the other sequences of the step.
	Sampler *sample.Sampler
	// History is the sequence's tokens before this row's token: its tail
	// for the repetition penalty, its length (the position) to key the
	// draw (Sampler.Key). A prompt-lookup step's draft positions have the
	// tokens and the draft tokens before them.
	History []int
	// TopLogprobs < 0: no log-probabilities; 0: the chosen token's; k > 0:
	// also the k most likely tokens'.
	TopLogprobs int
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int
	Logprob float32
}

// SampleResult is a sampled token, with log-probabilities when asked for
// (of the model's distribution before sampling options are applied, as
// OpenAI reports them).
type SampleResult struct {
	Token   int
	Logprob float32
	Top     []TokenLogprob
}

// Backend runs the ops of a forward pass on memory it owns. Ops take
// effect in call order; results reach the host only through Read and
// Sample. A Backend may be shared by several model contexts from several
// goroutines: each call is atomic (the CPU backend serialises them on its
// worker pool).
type Backend interface {
	// Name identifies the backend and its kernel level, e.g. "cpu/avx512".
	Name() string
	// Close releases worker threads and device memory.
	Close()
	// FreeMemory is how many more bytes the backend's own memory can hold
	// (a GPU's free device memory), or 0 where its buffers live in host
	// memory, which the caller judges (the CPU).
	FreeMemory() int64

	// NewBuffer allocates n float32 values.
	NewBuffer(n int) (Buffer, error)
	// LoadMatrix hands a weight matrix (any codec) to the backend.
	LoadMatrix(m tensor.Matrix) (Weight, error)
	// LoadVector hands a weight vector (norm weights, biases) to the backend.
	LoadVector(v []float32) (Weight, error)
	// NewKV allocates paged KV storage.
	NewKV(spec KVSpec) (KV, error)
	// NewRope builds a rotary embedding's tables.
	NewRope(spec RopeSpec) (Rope, error)
	// NewStep allocates step metadata for at most the given sizes.
	NewStep(lim StepLimits) (StepBuf, error)

	// SetStep copies a validated step's metadata to the backend.
	SetStep(dst StepBuf, s *Step) error
	// Write copies src into dst from element off.
	Write(dst Buffer, off int, src []float32)
	// Read copies len(dst) values of src from element off into dst,
	// after every op issued before it has finished.
	Read(dst []float32, src Buffer, off int)

	// Embed writes the embedding rows of the step's tokens into dst.
	Embed(dst Buffer, table Weight, s StepBuf)
	// RMSNorm writes x/rms(x)·w for n rows of w.Cols() values (HF LlamaRMSNorm).
	RMSNorm(dst, x Buffer, w Weight, eps float32, n int)
	// RMSNormOut is RMSNorm over the rows of x listed in the step's Out, in order.
	RMSNormOut(dst, x Buffer, w Weight, eps float32, s StepBuf)
	// MatMul computes dst[t*R + r] = Σ_c W[r, c] · x[t*C + c] for t < n.
	MatMul(dst, x Buffer, w Weight, n int)
	// AddBias adds the vector b to each of n rows of x (width b.Cols()).
	AddBias(x Buffer, b Weight, n int)
	// Add adds the first n values of src to dst's.
	Add(dst, src Buffer, n int)
	// Rope rotates the heads (of headDim values) of each step token's row of
	// x by the token's position.
	Rope(x View, heads, headDim int, r Rope, s StepBuf)
	// StoreKV writes each step token's key and value rows (KV heads × head
	// dim values) into its slot of the given layer.
	StoreKV(kv KV, layer int, k, v View, s StepBuf)
	// Attention computes softmax(q·kᵀ·scale)·v per query head for each step
	// token over positions 0..Pos of its sequence, grouped-query (heads
	// query heads share the KV heads evenly), into dst (rows of heads ×
	// head dim values).
	Attention(dst Buffer, q View, heads int, scale float32, kv KV, layer int, s StepBuf)
	// SwiGLU writes silu(gate)·up for n rows of width values into dst.
	SwiGLU(dst Buffer, gate, up View, width, n int)
	// CopyKVBlock copies every layer's block src to block dst
	// (copy-on-write of a shared block).
	CopyKVBlock(kv KV, dst, src int)
	// Sample turns row i of logits (rows of vocab values) into a token for
	// reqs[i], writing res[i].
	Sample(logits Buffer, vocab int, reqs []SampleRequest, res []SampleResult) error
}

// SampleWait delivers the results of a SampleAsync into res (one per
// request), waiting for them when they are not back yet.
type SampleWait func(res []SampleResult) error

// Pipeliner is a backend that can queue a step on tokens it has sampled
// before they reach the host (host overlap: a GPU runs step N+1 while the
// host reads step N's tokens and decides what comes next, instead of
// idling between them).
type Pipeliner interface {
	// SampleAsync is Sample that may return before the tokens are back:
	// the returned function delivers them. A step set with PrevTokens
	// after it feeds its rows' tokens. Its wait must be called before the
	// SampleAsync after the next one (a backend keeps two in flight).
	SampleAsync(logits Buffer, vocab int, reqs []SampleRequest) (SampleWait, error)
	// DeviceTokens reports whether Embed with table can take a step's
	// tokens from the device (PrevTokens); a GPU backend that embeds some
	// codecs on the host cannot.
	DeviceTokens(table Weight) bool
}

// Tables computes cos and sin of every position × frequency, [pos][Dim/2],
// in the float32 arithmetic of Hugging Face's implementation.
func (r RopeSpec) Tables() (cos, sin []float32) {
	half := r.Dim / 2
	cos = make([]float32, r.Positions*half)
	sin = make([]float32, r.Positions*half)
	for p := 0; p < r.Positions; p++ {
		for i, f := range r.InvFreq[:half] {
			a := float64(float32(float64(p)*r.PosScale) * float32(f))
			cos[p*half+i] = float32(math.Cos(a))
			sin[p*half+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

// Logprobs returns log softmax(row)[tok] and appends the k most likely
// tokens with theirs to top (ties to the lower id): the host side of
// Sample's log-probabilities, shared by the backends that sample on the host.
func Logprobs(row []float32, tok, k int, top []TokenLogprob) (float32, []TokenLogprob) {
	mx := row[0]
	for _, v := range row {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range row {
		sum += math.Exp(float64(v - mx))
	}
	lse := float64(mx) + math.Log(sum)
	if k > 0 {
		idx := make([]int, 0, k+1)
		for i, v := range row {
			if len(idx) == k && v <= row[idx[k-1]] {
				continue
			}
			j := sort.Search(len(idx), func(j int) bool { return row[idx[j]] < v })
			idx = append(idx, 0)
			copy(idx[j+1:], idx[j:])
			idx[j] = i
			if len(idx) > k {
				idx = idx[:k]
			}
		}
		for _, i := range idx {
			top = append(top, TokenLogprob{Token: i, Logprob: float32(float64(row[i]) - lse)})
		}
	}
	return float32(float64(row[tok]) - lse), top
}
