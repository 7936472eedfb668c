// Package sample turns a model's next-token logits into a token id, and
// watches streamed text for stop strings.
//
// A Sampler applies, in order: repetition penalty, a Constraint's mask and
// the additive adjustments (OpenAI's logit bias, frequency and presence
// penalties), top-k, softmax with
// temperature, top-p (nucleus), min-p, and finally draws a token with a PCG
// generator (math/rand/v2) seeded by the seed and the token's position
// (Sampler.Key), so the same seed and the same logits at the same positions
// give the same tokens, whatever else was sampled in between. Temperature 0
// means greedy decoding.
//
// The chain is llama.cpp's default sampler chain, except that temperature is
// applied before top-p and min-p (llama.cpp scales by temperature after them),
// so here a temperature changes which tokens top-p and min-p keep.
package sample

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// DefaultRepeatWindow is the number of recent tokens the repetition penalty
// looks at when Options.RepeatWindow is 0.
const DefaultRepeatWindow = 64

// Options configures a Sampler. The zero value is greedy decoding.
type Options struct {
	Temperature   float32 // 0 => greedy (argmax, ties -> lowest id)
	TopK          int     // keep the K most likely tokens; 0 => off
	TopP          float32 // keep the smallest set of tokens whose probability reaches TopP; 0 or 1 => off
	MinP          float32 // keep tokens with p >= MinP * p_max; 0 => off
	RepeatPenalty float32 // 0 or 1 => off; logit>0 ? logit/R : logit*R, once per distinct token in the window
	RepeatWindow  int     // how many recent history tokens the penalty looks at; 0 => DefaultRepeatWindow
	Seed          uint64  // with a token's position, keys its draw (Sampler.Key)

	// FrequencyPenalty and PresencePenalty are OpenAI's: a token's logit
	// loses FrequencyPenalty for each time it was generated and
	// PresencePenalty once if it was; 0 => off. They count the history past
	// its first Prompt tokens (the engine sets Prompt to the prompt's
	// length, so only generated tokens count, as OpenAI defines them).
	FrequencyPenalty float32
	PresencePenalty  float32
	Prompt           int
	// LogitBias adds a value to a token's logit (OpenAI's logit_bias);
	// tokens outside the vocabulary are ignored.
	LogitBias map[int]float32
	// Constraint, when set, keeps only the tokens that can continue the
	// generated text (the history past Prompt) in its language
	// (constrain.JSON: OpenAI's response_format json_object).
	Constraint Constraint
}

// OpenAI's ranges for its sampling options, which the APIs (server, CLI,
// C ABI) enforce; New itself takes any finite value.
const (
	PenaltyLimit = 2   // FrequencyPenalty and PresencePenalty in [-PenaltyLimit, PenaltyLimit]
	BiasLimit    = 100 // each LogitBias value in [-BiasLimit, BiasLimit]
)

// A Constraint limits generation to a language; each sequence's Sampler
// follows its text with a Matcher of its own.
type Constraint interface {
	NewMatcher() Matcher
}

// A Matcher masks the tokens that cannot follow a sequence's generated
// tokens: their logits become -Inf.
type Matcher interface {
	Mask(generated []int, logits []float32)
}

// Greedy reports whether the options pick the most likely token (after
// the repetition penalty) without drawing: temperature 0 or top-k 1.
func (o Options) Greedy() bool { return o.Temperature == 0 || o.TopK == 1 }

// Penalizes reports whether the repetition penalty is on (not 0 or 1).
func (o Options) Penalizes() bool { return o.RepeatPenalty != 0 && o.RepeatPenalty != 1 }

// Counts reports whether the frequency or presence penalty is on: the
// logits then depend on how often each token was generated.
func (o Options) Counts() bool { return o.FrequencyPenalty != 0 || o.PresencePenalty != 0 }

// Constrains reports whether a Constraint masks tokens.
func (o Options) Constrains() bool { return o.Constraint != nil }

// Adds reports whether an additive adjustment is on: the frequency or
// presence penalty, a logit bias, or a constraint's mask (-Inf). (The
// GPU's sampling kernel applies the repetition penalty but not these:
// backend/cuda samples such rows on the host.)
func (o Options) Adds() bool {
	if o.Counts() || o.Constrains() {
		return true
	}
	for _, b := range o.LogitBias {
		if b != 0 {
			return true
		}
	}
	return false
}

// ReadsHistory reports whether the token drawn depends on the tokens
// before it (a repetition, frequency or presence penalty, a Constraint),
// not only on their number: such a row cannot be sampled before its last
// token is known.
func (o Options) ReadsHistory() bool { return o.Penalizes() || o.Counts() || o.Constrains() }

// Argmax reports whether the token is the argmax of the logits as they
// are: greedy, with nothing that changes a logit first.
func (o Options) Argmax() bool { return o.Greedy() && !o.Penalizes() && !o.Adds() }

// Sampler picks tokens from logits. It keeps scratch buffers sized to the
// vocabulary, so after the first call Sample does not allocate. A Sampler is
// not safe for concurrent use.
type Sampler struct {
	opts Options
	src  *rand.PCG  // reseeded with Key for each draw
	rng  *rand.Rand // over src

	logit  []float32 // penalized copy of the caller's logits
	ids    []int32   // candidate token ids
	weight []float64 // weight[id] = exp((logit[id]-max)/T), valid for candidates
	counts []int32   // the generated tokens, sorted (add)
	match  Matcher   // Options.Constraint's, for this sequence
}

// New validates opts and returns a Sampler. Invalid options give an error
// naming the offending field.
func New(opts Options) (*Sampler, error) {
	bad := func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }
	switch {
	case bad(opts.Temperature) || opts.Temperature < 0:
		return nil, fmt.Errorf("sample: Temperature must be a finite number >= 0, got %v", opts.Temperature)
	case opts.TopK < 0:
		return nil, fmt.Errorf("sample: TopK must be >= 0, got %d", opts.TopK)
	case bad(opts.TopP) || opts.TopP < 0 || opts.TopP > 1:
		return nil, fmt.Errorf("sample: TopP must be in [0, 1], got %v", opts.TopP)
	case bad(opts.MinP) || opts.MinP < 0 || opts.MinP > 1:
		return nil, fmt.Errorf("sample: MinP must be in [0, 1], got %v", opts.MinP)
	case bad(opts.RepeatPenalty) || opts.RepeatPenalty < 0:
		return nil, fmt.Errorf("sample: RepeatPenalty must be a finite number >= 0, got %v", opts.RepeatPenalty)
	case opts.RepeatWindow < 0:
		return nil, fmt.Errorf("sample: RepeatWindow must be >= 0, got %d", opts.RepeatWindow)
	case bad(opts.FrequencyPenalty):
		return nil, fmt.Errorf("sample: FrequencyPenalty must be a finite number, got %v", opts.FrequencyPenalty)
	case bad(opts.PresencePenalty):
		return nil, fmt.Errorf("sample: PresencePenalty must be a finite number, got %v", opts.PresencePenalty)
	case opts.Prompt < 0:
		return nil, fmt.Errorf("sample: Prompt must be >= 0, got %d", opts.Prompt)
	}
	for t, b := range opts.LogitBias {
		if t < 0 || bad(b) {
			return nil, fmt.Errorf("sample: LogitBias of token %d must be a finite number for a token id >= 0, got %v", t, b)
		}
	}
	if opts.RepeatWindow == 0 {
		opts.RepeatWindow = DefaultRepeatWindow
	}
	src := rand.NewPCG(0, 0)
	s := &Sampler{opts: opts, src: src, rng: rand.New(src)}
	if opts.Constraint != nil {
		s.match = opts.Constraint.NewMatcher()
	}
	return s, nil
}

// Options returns the sampler's options, with defaults filled in.
func (s *Sampler) Options() Options { return s.opts }

// Key returns the 64 random bits that key the draw of the token at
// position pos of a sequence (the length of the history before it): the
// seed and the position mixed by splitmix64's finalizer. Sample draws from a
// generator seeded with them, and a backend that samples on its own device
// (backend/cuda) keys a row's noise with them. So a token's draw depends on
// the seed and its position only, not on what was sampled before: a step
// that also samples positions it then discards (prompt lookup's rejected
// draft tokens) leaves the next tokens' draws, and so a seeded text, as
// they would be without it.
func (s *Sampler) Key(pos int) uint64 { return mix64(s.opts.Seed ^ mix64(uint64(pos))) }

// mix64 is splitmix64's step and finalizer.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Penalized appends to dst, in ascending order, the distinct token ids in
// [0, vocab) that the repetition penalty changes: those among history's
// last RepeatWindow entries. It appends none when the penalty is off.
func (s *Sampler) Penalized(dst []int32, history []int, vocab int) []int32 {
	if !s.opts.Penalizes() {
		return dst
	}
	if len(history) > s.opts.RepeatWindow {
		history = history[len(history)-s.opts.RepeatWindow:]
	}
	n := len(dst)
	for _, t := range history {
		if t >= 0 && t < vocab {
			dst = append(dst, int32(t))
		}
	}
	slices.Sort(dst[n:])
	return append(dst[:n], slices.Compact(dst[n:])...)
}

// Sample returns the next token id for logits (one value per vocabulary
// entry). history is the sequence of tokens so far (prompt and generated):
// its length is the new token's position, which keys the draw with the seed
// (Key), so the same logits at the same position give the same token; only
// its last RepeatWindow entries are penalized, and only when RepeatPenalty
// is on. Ids in history outside [0, len(logits)) are ignored.
//
// Sample never modifies logits or history: it works on its own copy. NaN
// logits are treated as -Inf. If some logit is +Inf, or every candidate is
// -Inf or NaN, Sample falls back to the greedy choice (the first +Inf; 0 when
// all are -Inf or NaN). It returns -1 only when logits is empty.
func (s *Sampler) Sample(logits []float32, history []int) int {
	if len(logits) == 0 {
		return -1
	}
	cand := s.candidates(logits, history)
	if len(cand) == 1 {
		return int(cand[0])
	}
	var total float64
	for _, id := range cand {
		total += s.weight[id]
	}
	s.src.Seed(s.Key(len(history)), 0x9e3779b97f4a7c15)
	r := s.rng.Float64() * total
	var acc float64
	for _, id := range cand {
		acc += s.weight[id]
		if r < acc {
			return int(id)
		}
	}
	return int(cand[len(cand)-1]) // only reached through rounding
}

// candidates runs the filter chain and returns the ids that may be drawn; the
// probability of id is proportional to s.weight[id]. When the result has one
// element no random number is needed.
func (s *Sampler) candidates(logits []float32, history []int) []int32 {
	n := len(logits)
	if cap(s.logit) < n {
		s.logit = make([]float32, n)
		s.ids = make([]int32, n)
		s.weight = make([]float64, n)
	}
	l := s.logit[:n]
	ids := s.ids[:n]
	penalize := s.opts.Penalizes()
	greedy := s.opts.Greedy()

	if s.opts.Argmax() {
		ids[0] = int32(argmax(logits))
		return ids[:1]
	}

	// Copy, turning NaN into -Inf so that comparisons form a total order.
	for i, v := range logits {
		if v != v {
			v = float32(math.Inf(-1))
		}
		l[i] = v
	}

	// Repetition penalty. Each penalized value is computed from the caller's
	// logit, so a token repeated in the window is penalized once.
	if penalize {
		r := s.opts.RepeatPenalty
		h := history
		if len(h) > s.opts.RepeatWindow {
			h = h[len(h)-s.opts.RepeatWindow:]
		}
		for _, t := range h {
			if t < 0 || t >= n {
				continue
			}
			v := logits[t]
			if v != v {
				continue
			}
			if v > 0 {
				l[t] = v / r
			} else {
				l[t] = v * r
			}
		}
	}

	if s.opts.Adds() {
		s.add(l, history)
	}

	if greedy {
		ids[0] = int32(argmax(l))
		return ids[:1]
	}

	// Top-k: partial selection, leaving the k best sorted best-first.
	var cand []int32
	sorted := false
	if k := s.opts.TopK; k > 0 && k < n {
		cand = topK(l, ids, k)
		sorted = true
	} else {
		for i := range ids {
			ids[i] = int32(i)
		}
		cand = ids
	}

	// Softmax with temperature (unnormalized: the best token has weight 1).
	maxv := l[cand[0]]
	if !sorted {
		for _, id := range cand {
			maxv = max(maxv, l[id])
		}
	}
	if math.IsInf(float64(maxv), 0) {
		ids[0] = int32(argmax(l))
		return ids[:1]
	}
	invT := 1 / float64(s.opts.Temperature)
	var total float64
	for _, id := range cand {
		w := math.Exp((float64(l[id]) - float64(maxv)) * invT)
		s.weight[id] = w
		total += w
	}

	// Top-p: keep the shortest best-first prefix whose mass reaches TopP.
	if p := s.opts.TopP; p > 0 && p < 1 {
		target := float64(p) * total
		var acc float64
		if sorted {
			for i, id := range cand {
				acc += s.weight[id]
				if acc >= target {
					cand = cand[:i+1]
					break
				}
			}
		} else {
			// Lazy sort: heapify all candidates, pop the best until the mass
			// is reached. Popped ids collect at the end of cand.
			h := len(cand)
			heapify(l, cand)
			for h > 0 {
				cand[0], cand[h-1] = cand[h-1], cand[0]
				acc += s.weight[cand[h-1]]
				h--
				siftDown(l, cand[:h], 0)
				if acc >= target {
					break
				}
			}
			cand = cand[h:]
			for i, j := 0, len(cand)-1; i < j; i, j = i+1, j-1 {
				cand[i], cand[j] = cand[j], cand[i]
			}
			sorted = true
		}
	}

	// Min-p: p >= MinP*p_max is weight >= MinP, since the best weight is 1.
	if m := float64(s.opts.MinP); m > 0 {
		kept := cand[:0]
		for _, id := range cand {
			if s.weight[id] >= m {
				kept = append(kept, id)
			}
		}
		cand = kept
	}
	return cand
}

// add applies the logit bias, the frequency and presence penalties and
// the constraint's mask to l (the copy, after the repetition penalty):
// each token's total is added once, so the order of history does not
// change the result.
func (s *Sampler) add(l []float32, history []int) {
	n := len(l)
	if s.match != nil {
		gen := history[min(s.opts.Prompt, len(history)):]
		s.match.Mask(gen, l)
	}
	for t, b := range s.opts.LogitBias {
		if t < n {
			l[t] += b
		}
	}
	if !s.opts.Counts() || s.opts.Prompt >= len(history) {
		return
	}
	gen := s.counts[:0]
	for _, t := range history[s.opts.Prompt:] {
		if t >= 0 && t < n {
			gen = append(gen, int32(t))
		}
	}
	slices.Sort(gen)
	s.counts = gen
	for i := 0; i < len(gen); {
		j := i + 1
		for j < len(gen) && gen[j] == gen[i] {
			j++
		}
		l[gen[i]] -= float32(j-i)*s.opts.FrequencyPenalty + s.opts.PresencePenalty
		i = j
	}
}

// argmax returns the index of the largest value, ties to the lowest index.
// NaN never wins; if no value exceeds -Inf it returns 0. It finds the
// largest value in four independent lanes, then its first index: greedy
// decoding of a batch samples a row per sequence each step, and a one-lane
// loop over 100,000 logits was a few percent of a small model's step.
func argmax(l []float32) int {
	ninf := float32(math.Inf(-1))
	m := [4]float32{ninf, ninf, ninf, ninf}
	i := 0
	for ; i+4 <= len(l); i += 4 {
		v := l[i : i+4 : i+4]
		if v[0] > m[0] {
			m[0] = v[0]
		}
		if v[1] > m[1] {
			m[1] = v[1]
		}
		if v[2] > m[2] {
			m[2] = v[2]
		}
		if v[3] > m[3] {
			m[3] = v[3]
		}
	}
	for ; i < len(l); i++ {
		if l[i] > m[0] {
			m[0] = l[i]
		}
	}
	best := max(m[0], m[1], m[2], m[3])
	if best == ninf {
		return 0
	}
	for i, v := range l {
		if v == best {
			return i
		}
	}
	return 0
}

// better reports whether token a ranks above token b: higher logit, ties to
// the lower id.
func better(l []float32, a, b int32) bool {
	return l[a] > l[b] || (l[a] == l[b] && a < b)
}

// topK selects the k best tokens of l into ids[:k], sorted best-first, in
// O(n log k) time using a size-k heap whose root is the worst kept token.
func topK(l []float32, ids []int32, k int) []int32 {
	h := ids[:k]
	for i := range h {
		h[i] = int32(i)
	}
	worse := func(a, b int32) bool { return better(l, b, a) }
	down := func(h []int32, i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && worse(h[c+1], h[c]) {
				c++
			}
			if !worse(h[c], h[i]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(h, i)
	}
	for i := k; i < len(l); i++ {
		if better(l, int32(i), h[0]) {
			h[0] = int32(i)
			down(h, 0)
		}
	}
	// Heap sort: repeatedly move the worst to the end, giving best-first.
	for end := k - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		down(h[:end], 0)
	}
	return h
}

// heapify arranges h as a max-heap under better.
func heapify(l []float32, h []int32) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(l, h, i)
	}
}

func siftDown(l []float32, h []int32, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && better(l, h[c+1], h[c]) {
			c++
		}
		if !better(l, h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
