package engine

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// DraftPlanner decides how many draft tokens each drafting sequence feeds
// in a step (prompt lookup, lookup.go), from what steps cost on this
// machine and how often each sequence's drafts are kept. A step of n fed
// tokens costs more than one of fewer, by an amount that depends on the
// machine: on a GPU, where a decoding step is bound by reading the weights
// and its chain of launches, nine tokens cost ~1.7x one token; on a CPU
// with few cores, or with a model that sits in its cache, ~5x or ~9x. A
// draft token is worth the chance that it is kept. So the planner adds
// draft tokens, likeliest first, while they raise the step's expected
// tokens per second:
//
//	(base + Σ_s Σ_{j ≤ d_s} q_s,j) / cost(base + Σ_s d_s)
//
// where base is the step's tokens without drafts, d_s the tokens of
// sequence s's draft it feeds, and q_s,j the chance that s's first j draft
// tokens are all kept. With many sequences in a step, the step's own
// tokens already fill the batch and a draft token adds its full cost, so
// drafts shrink or stop by themselves.
//
// q_s,j = a1 · a2^(j-1): a1 is the chance that a draft's first token is
// kept, a2 that a later one is when those before it were (miniphi's text:
// 0.65 for the first, 0.76-0.92 for the next seven; a draft that starts
// right tends to go on). Each is the sequence's own record blended with the
// engine's (firstBlend, laterBlend), the engine's starting from priorFirst
// and priorLater; a1 is taken optimistically (one standard error up) so
// that a sequence whose first drafts failed by chance tries again, and
// drafting stops for good only where drafts keep failing.
//
// Costs are learned: the engine reports each decoding step's time
// (Observe). A size not measured yet is estimated from the measured sizes
// around it (estimate), optimistically above the largest, so that larger
// steps are tried and then known — up to twice the largest measured. A
// drafting step's size is one of a ladder (StepSize), and a base size left
// unmeasured while every step drafts is measured afresh (refreshAfter).
// Nothing is drafted before any step has been measured.
type DraftPlanner struct {
	cost  []float64 // cost[n]: seconds of a decoding step of n fed tokens (moving average), 0 when not measured
	seen  []uint8   // steps of n tokens run before n's first measured one (warm)
	warm  uint8     // steps of each size not measured (warmUp, SetWarmUp)
	at    []int64   // at[n]: the observed step that last measured n
	steps int64     // steps observed
	// refresh is the base size Plan left without drafts to measure it
	// afresh (refreshAfter), 0 when none
	refresh int
	record  DraftRecord
	est     []float64 // Plan's scratch: estimated costs of base..base+limit
	cands   []draftCand
}

type draftCand struct {
	q float64 // chance that the token is kept
	i int     // its offer
}

// DraftRecord counts draft positions reached (Tried: every earlier token
// of its draft was kept) and kept, for drafts' first tokens ([0]) and
// their later ones ([1]).
type DraftRecord struct {
	Tried, Kept [2]int
}

// Add counts a draft of n tokens of which the first kept were kept.
func (r *DraftRecord) Add(n, kept int) {
	if n <= 0 {
		return
	}
	r.Tried[0]++
	if kept > 0 {
		r.Kept[0]++
		r.Tried[1] += min(kept, n-1)
		r.Kept[1] += kept - 1
	}
}

// DraftOffer is one sequence's draft on offer for a step: Max tokens (the
// draft LookupDraft found) and the sequence's record so far.
type DraftOffer struct {
	Max    int
	Record DraftRecord
}

const (
	// priorFirst and priorLater are the engine's rates before any draft,
	// as enginePrior positions of record (miniphi's text replayed on this
	// VM's and the H200's step costs, `go run ./tools/lookup-replay -n a8
	// -costs 2:1.4,3:1.9,5:3.0,9:5.2,17:10` and `-costs
	// 2:1.43,3:1.63,5:1.66,9:1.74,17:1.8`: a prior of 4 positions, soon
	// outweighed, drafted a little less well, 1.18x and 1.60x against 1.19x
	// and 1.64x).
	priorFirst, priorLater = 0.6, 0.8
	enginePrior            = 16
	// firstBlend and laterBlend are how many positions of the engine's
	// rates a sequence's own record is blended with: a new sequence starts
	// at the engine's rates and moves to its own as its drafts are tried,
	// slowly for later tokens, whose rate is mostly the text's kind (replayed
	// with the H200's step costs, blends of 4 positions drafted too little:
	// 1.55x against whole drafts' 1.64x).
	firstBlend, laterBlend = 16, 32
	// maxKeep caps an estimated rate below 1, so that a draft's tokens
	// stay in their order of likelihood.
	maxKeep = 0.98
)

// NewDraftPlanner makes a planner for steps of at most maxTokens tokens.
func NewDraftPlanner(maxTokens int) *DraftPlanner {
	return &DraftPlanner{cost: make([]float64, maxTokens+1), seen: make([]uint8, maxTokens+1), at: make([]int64, maxTokens+1), warm: warmUp}
}

// warmUp is how many steps of each size are not measured by default: they
// may pay for setting the size up. The CUDA backend runs a step whose queue
// it has not seen op by op and captures a CUDA graph the second time
// (several times a step's cost for miniphi), then launches the graph.
const warmUp = 2

// SetWarmUp sets how many steps of each size go unmeasured: 0 for a
// backend whose first step of a size costs what later ones do (the CPU's),
// so that a size is known from its first step instead of its third (the
// engine sets it when no layer runs on a GPU).
func (p *DraftPlanner) SetWarmUp(n int) { p.warm = uint8(max(0, min(n, 255))) }

// forgetAfter is how many observed steps a size's cost is kept without a
// new measurement: a machine's speed drifts (another process, a clock), and
// a size measured in a slow spell and then avoided would otherwise be
// avoided for good. A forgotten size is estimated from the sizes around
// it again, and tried again if that says so (this VM, under load, stopped
// drafting for a whole run before).
const forgetAfter = 512

// refreshAfter is how many observed steps the step without drafts (the
// base size) may go unmeasured while the planner drafts: then one step
// runs without drafts, and its time replaces the base size's cost. A base
// cost measured in a slow spell made every drafting step look cheap beside
// it, and once the planner drafted every step the base was never measured
// again to correct it (a 2-vCPU VM, twelve sequences: the 12-token step at
// 21.7x one token's, the 16-token step at 6.4x). Only such a refresh
// replaces a cost; other measurements move it as Observe says. Where one
// sequence drafts nearly every step (a GPU), that is one plain step in 65:
// within the noise of docs/benchmarks.md's run 98.
const refreshAfter = 64

// Observe records that a decoding step of n fed tokens took seconds. The
// first warmUp steps of each size are not measured, and a size not
// measured for forgetAfter steps is forgotten. A measured time moves
// the size's cost quickly down and slowly up, and counts as at most 1.5
// times the cost (twice the estimate for the first): a pause of the
// process, a graph captured for a new queue as the context grows, does not
// make the size look dear and stop drafts of it for good; a real rise is
// reached over a few steps.
func (p *DraftPlanner) Observe(n int, seconds float64) {
	if n <= 0 || n >= len(p.cost) || !(seconds > 0) || math.IsInf(seconds, 0) {
		return
	}
	p.steps++
	if p.steps%64 == 0 {
		for m, t := range p.at {
			if p.cost[m] > 0 && p.steps-t > forgetAfter {
				p.cost[m] = 0
			}
		}
	}
	if p.seen[n] < p.warm {
		p.seen[n]++
		return
	}
	refresh := n == p.refresh
	p.refresh = 0
	p.at[n] = p.steps
	c := p.cost[n]
	switch {
	case refresh:
		p.cost[n] = seconds
	case c == 0:
		if p.estimate(n, n) {
			seconds = min(seconds, 2*p.est[0])
		}
		p.cost[n] = seconds
	case seconds < c:
		p.cost[n] = c + (seconds-c)/2
	default:
		p.cost[n] = c + (min(seconds, 1.5*c)-c)/8
	}
}

// Record adds one sequence's drafting step to the engine-wide record: a
// draft of n tokens of which the first kept were kept.
func (p *DraftPlanner) Record(n, kept int) { p.record.Add(n, kept) }

// Rates are the chances that a token of o's draft is kept: its first (a1,
// taken one standard error up) and a later one when those before it were
// (a2).
func (p *DraftPlanner) Rates(o DraftOffer) (a1, a2 float64) {
	rate := func(i int, prior float64, w float64) (float64, float64) {
		g := (float64(p.record.Kept[i]) + enginePrior*prior) / (float64(p.record.Tried[i]) + enginePrior)
		n := float64(o.Record.Tried[i]) + w
		return (float64(o.Record.Kept[i]) + w*g) / n, n
	}
	a1, n1 := rate(0, priorFirst, firstBlend)
	a2, _ = rate(1, priorLater, laterBlend)
	a1 += math.Sqrt(a1 * (1 - a1) / n1)
	return min(a1, maxKeep), min(a2, maxKeep)
}

// estimate fills p.est with the estimated cost of steps of from..to
// tokens (to < len(p.cost)) and reports whether any size was measured. A
// size between measured ones costs their linear interpolation. Above the
// largest measured size m, each token past m adds half of what a token
// added between m and the measured size below it (of T(m)/m when m is the
// only one): optimistic, so that larger steps are tried and then known,
// but following the curve as far as it has been measured — on a GPU,
// where a step of 3 tokens costs about what one of 9 does, the drafts
// grow to whole in a few steps; on a CPU, where each token costs about
// its share, they do not jump at once to the largest step a batch could
// make.
func (p *DraftPlanner) estimate(from, to int) bool {
	p.est = p.est[:0]
	lo := from // the largest measured size ≤ n
	for lo > 0 && p.cost[lo] == 0 {
		lo--
	}
	hi := from // the smallest measured size ≥ n
	for hi < len(p.cost) && p.cost[hi] == 0 {
		hi++
	}
	if lo == 0 && hi == len(p.cost) {
		return false
	}
	slope := -1.0 // per token past the largest measured size (when n is past it)
	for n := from; n <= to; n++ {
		if n > hi { // past a measured size: find the next
			lo = hi
			for hi++; hi < len(p.cost) && p.cost[hi] == 0; hi++ {
			}
		}
		var c float64
		switch {
		case p.cost[n] > 0:
			c = p.cost[n]
		case lo > 0 && hi < len(p.cost):
			c = p.cost[lo] + (p.cost[hi]-p.cost[lo])*float64(n-lo)/float64(hi-lo)
		case lo > 0:
			if slope < 0 {
				below := lo - 1
				for below > 0 && p.cost[below] == 0 {
					below--
				}
				if below > 0 {
					slope = max(0, p.cost[lo]-p.cost[below]) / float64(lo-below) / 2
				} else {
					slope = p.cost[lo] / float64(lo) / 2
				}
			}
			c = p.cost[lo] + slope*float64(n-lo)
		default:
			c = p.cost[hi]
		}
		p.est = append(p.est, c)
	}
	return true
}

// StepSize reports whether the planner may make a step of n tokens with
// drafts: any size up to smallSteps, then multiples of 8. Each size a
// step takes is set up once: the CUDA backend runs a queue it has not seen
// op by op and captures a graph of it the second time (the two cost
// several steps of miniphi), and the planner learns each size's cost from
// its own steps. Twelve sequences drafting freely made a new size nearly
// every step of a short run, so on the GPU their steps paid that setup
// again and again (NOTES.md run 95); on the ladder a batch of 12 steps
// 12, 13-16, 24, 32, ... tokens. A step of no drafts takes its base size
// whatever it is.
func StepSize(n int) bool { return n <= smallSteps || n%8 == 0 }

// smallSteps: steps up to this many tokens take any size (one sequence's
// drafts of up to 15 tokens, each size its own graph).
const smallSteps = 16

// Plan appends to dst[:0] how many tokens of each offer to feed in a step
// that feeds base tokens without them, at most limit draft tokens in all
// (and a step of at most the planner's maxTokens), and returns it. The
// step's size with drafts is one StepSize allows.
func (p *DraftPlanner) Plan(dst []int, base int, offers []DraftOffer, limit int) []int {
	dst = dst[:0]
	for range offers {
		dst = append(dst, 0)
	}
	limit = min(limit, len(p.cost)-1-base)
	if limit <= 0 || base <= 0 {
		return dst
	}
	if p.cost[base] > 0 && p.steps-p.at[base] > refreshAfter {
		p.refresh = base // this step measures the base size afresh
		return dst
	}
	// at most twice the largest size measured (or 8 tokens past it):
	// estimates above it are optimistic, and a batch of 12 on a CPU tried
	// sizes of 40-72 tokens three times each before it knew better
	for m := len(p.cost) - 1; m > 0; m-- {
		if p.cost[m] > 0 {
			limit = min(limit, max(2*m, m+8)-base)
			break
		}
	}
	if limit <= 0 {
		return dst
	}
	p.cands = p.cands[:0]
	for i, o := range offers {
		a1, a2 := p.Rates(o)
		for j, q := 0, a1; j < o.Max; j, q = j+1, q*a2 {
			p.cands = append(p.cands, draftCand{q, i})
		}
	}
	if len(p.cands) == 0 {
		return dst
	}
	// likeliest first; within an offer q falls with each token, so every
	// prefix of the order takes a prefix of each draft
	slices.SortStableFunc(p.cands, func(x, y draftCand) int { return cmp.Compare(y.q, x.q) })
	limit = min(limit, len(p.cands))
	if !p.estimate(base, base+limit) {
		return dst
	}
	best, bestRate, gain := 0, float64(base)/p.est[0], float64(base)
	for d := 1; d <= limit; d++ {
		gain += p.cands[d-1].q
		if !StepSize(base + d) {
			continue
		}
		if r := gain / p.est[d]; r > bestRate {
			best, bestRate = d, r
		}
	}
	for _, c := range p.cands[:best] {
		dst[c.i]++
	}
	return dst
}

// String is the planner's state: each measured size's cost against one
// token's (or in ms when one token's is not measured) and the engine-wide
// record, first and later tokens kept of tried.
func (p *DraftPlanner) String() string {
	var b strings.Builder
	for n, c := range p.cost {
		if c == 0 {
			continue
		}
		if p.cost[1] > 0 {
			fmt.Fprintf(&b, "%d:%.2f ", n, c/p.cost[1])
		} else {
			fmt.Fprintf(&b, "%d:%.3fms ", n, c*1e3)
		}
	}
	if p.cost[1] > 0 {
		fmt.Fprintf(&b, "(1 = %.3f ms) ", p.cost[1]*1e3)
	}
	r := p.record
	fmt.Fprintf(&b, "first %d/%d later %d/%d", r.Kept[0], r.Tried[0], r.Kept[1], r.Tried[1])
	return b.String()
}
