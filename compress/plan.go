package compress

import (
	"fmt"
	"sort"
	"strings"

	"github.com/upg-ai/upg/codec"
)

// Family names a set of codec configurations the planner may choose from
// for the 2-D weights.
type Family string

// Ladder returns the candidate encodings of a family for a matrix with
// cols columns, from smallest to largest.
func Ladder(f Family, cols int) ([]codec.Params, error) {
	gs := 64
	if cols%128 == 0 && cols >= 2048 {
		gs = 128
	}
	rot := uint64(0x5eed)
	var out []codec.Params
	switch f {
	case "dense", "auto", "":
		for _, b := range []int{2, 3, 4, 5, 6, 8} {
			for _, g := range []int{256, 128, 64} {
				if g > cols && g != 64 {
					continue
				}
				out = append(out, codec.Params{Codec: "dense", Bits: b, GroupSize: g, Levels: "lloyd", Rotate: rot})
			}
		}
	case "trellis":
		// Trellis codes at 2-4 bits; the scalar Lloyd codec above that,
		// where a trellis adds little and the planner may want more bits.
		// One scale per row (a group of all columns, rounded up to the
		// tiles) is a candidate too: after the rotation rows are alike.
		row := (cols + 15) &^ 15
		for _, b := range []int{2, 3, 4} {
			for _, g := range []int{256, 128, 64} {
				if g < row {
					out = append(out, codec.Params{Codec: "trellis", Bits: b, GroupSize: g, Rotate: rot})
				}
			}
			out = append(out, codec.Params{Codec: "trellis", Bits: b, GroupSize: row, Rotate: rot})
		}
		for _, b := range []int{5, 6, 8} {
			out = append(out, codec.Params{Codec: "dense", Bits: b, GroupSize: 128, Levels: "lloyd", Rotate: rot})
		}
	case "dense-uniform":
		for _, b := range []int{2, 3, 4, 5, 6, 8} {
			out = append(out, codec.Params{Codec: "dense", Bits: b, GroupSize: gs})
		}
	case "sparse":
		for _, b := range []int{2, 3, 4} {
			out = append(out, codec.Params{Codec: "sparse", Bits: b, GroupSize: gs, N: 2, M: 4})
		}
		for _, b := range []int{3, 4, 5, 6, 8} {
			out = append(out, codec.Params{Codec: "sparse", Bits: b, GroupSize: gs, N: 4, M: 8})
		}
		out = append(out, codec.Params{Codec: "dense", Bits: 8, GroupSize: gs})
	case "overlay":
		for _, b := range []int{2, 3, 4, 5, 6} {
			for _, frac := range []float64{1.0 / 512, 1.0 / 128} {
				out = append(out, codec.Params{Codec: "overlay", Bits: b, GroupSize: max(gs, 128), OverlayFrac: frac, Levels: "lloyd", Rotate: rot})
			}
		}
		out = append(out, codec.Params{Codec: "dense", Bits: 8, GroupSize: gs})
	default:
		return nil, fmt.Errorf("unknown codec family %q (known: auto, dense, trellis, dense-uniform, sparse, overlay)", f)
	}
	sort.SliceStable(out, func(i, j int) bool {
		si, _ := codec.EncodedSize(out[i], 1024, cols)
		sj, _ := codec.EncodedSize(out[j], 1024, cols)
		return si < sj
	})
	return out, nil
}

// FamilyNote says what a family chooses from and why, for the log: the
// default stays with the scalar codec because trellis codes, though lower
// in error per byte, cost more arithmetic to decode (a third of the scalar
// codec's speed with AVX2 and on CUDA).
func FamilyNote(f Family) string {
	switch f {
	case "auto", "":
		return "auto: dense scalar (Lloyd) codes, fast on every backend; --codec trellis gives lower error per byte and, with AVX-512, decodes as fast (prefills faster), but its AVX2 kernels are about a third as fast and its CUDA kernel a third as fast as the scalar codec's (docs/benchmarks.md)"
	case "trellis":
		return "trellis codes at 2-4 bits per weight (dense scalar codes above): lower error per byte than --codec dense; as fast with AVX-512, about a third as fast with AVX2 and on CUDA"
	}
	return string(f)
}

// tensorPlan is one tensor's candidates and estimated relative errors.
type tensorPlan struct {
	name       string
	rows, cols int
	weight     float64 // importance of this tensor's relative error
	sens       float64 // measured KL divergence at the smallest candidate (0 = not measured)
	cands      []codec.Params
	sizes      []int64
	errs       []float64 // estimated relative output error per candidate
	probeErr   float64   // round to nearest's error of the probe candidate in the metric of errs, where errs are GPTQ's (0: errs[probe()])
	choice     int
}

// allocate picks one candidate per tensor so that the total size fits the
// budget while minimising Σ weight·err, by greedy upgrades in order of error
// reduction per byte (the lower convex hull of each tensor's rate-distortion
// curve).
func allocate(plans []*tensorPlan, budget int64) (int64, error) {
	var total int64
	for _, p := range plans {
		p.choice = 0
		total += p.sizes[0]
	}
	if total > budget {
		return total, fmt.Errorf("even the smallest encodings need %d bytes, over the %d-byte budget", total, budget)
	}
	for {
		best, bestGain := -1, 0.0
		bestNext := 0
		for i, p := range plans {
			for j := p.choice + 1; j < len(p.cands); j++ {
				dBytes := p.sizes[j] - p.sizes[p.choice]
				if total+dBytes > budget || dBytes <= 0 {
					continue
				}
				gain := p.weight * (p.errs[p.choice] - p.errs[j]) / float64(dBytes)
				if gain > bestGain {
					best, bestGain, bestNext = i, gain, j
				}
			}
		}
		if best < 0 {
			return total, nil
		}
		p := plans[best]
		total += p.sizes[bestNext] - p.sizes[p.choice]
		p.choice = bestNext
	}
}

// relErr is the diag(H)-weighted relative squared error of an encoding,
// each row weighted by rowW[r] too where rowW is not nil.
func relErr(w, wq []float32, rows, cols int, diag []float64, rowW []float32) float64 {
	var num, den float64
	for r := 0; r < rows; r++ {
		rw := 1.0
		if rowW != nil {
			rw = float64(rowW[r])
		}
		for c := 0; c < cols; c++ {
			d := float64(w[r*cols+c] - wq[r*cols+c])
			h := rw
			if diag != nil {
				h *= diag[c]
			}
			num += h * d * d
			den += h * float64(w[r*cols+c]) * float64(w[r*cols+c])
		}
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// describe gives a short human name of an encoding, e.g. "dense q3 g64 lloyd rot".
func describe(p codec.Params) string {
	parts := []string{p.Codec}
	if p.Bits > 0 {
		parts = append(parts, fmt.Sprintf("q%d", p.Bits))
	}
	if p.GroupSize > 0 {
		parts = append(parts, fmt.Sprintf("g%d", p.GroupSize))
	}
	if p.N > 0 {
		parts = append(parts, fmt.Sprintf("%d:%d", p.N, p.M))
	}
	if p.Density > 0 {
		parts = append(parts, fmt.Sprintf("density %.2f", p.Density))
	}
	if p.OverlayFrac > 0 {
		parts = append(parts, fmt.Sprintf("+%.2f%% fp16", 100*p.OverlayFrac))
	}
	if p.Levels != "" && p.Levels != "uniform" {
		parts = append(parts, p.Levels)
	}
	if p.Rotate != 0 {
		parts = append(parts, "rot")
	}
	return strings.Join(parts, " ")
}

func sortedByName(plans []*tensorPlan) []*tensorPlan {
	out := append([]*tensorPlan(nil), plans...)
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
