package compress

import (
	"math"
	"testing"

	"github.com/upg-ai/upg/codec"
)

// TestTrellisLadder: the trellis family offers 2-4-bit trellis codes with
// one scale per row and per 64-256 columns (never wider than the padded
// row, no duplicates), then the scalar codec above 4 bits, smallest first.
func TestTrellisLadder(t *testing.T) {
	for _, cols := range []int{512, 1792, 100, 256} {
		l, err := Ladder("trellis", cols)
		if err != nil {
			t.Fatal(err)
		}
		row := (cols + 15) &^ 15
		seen := map[codec.Params]bool{}
		var prev int64
		nt := 0
		for _, p := range l {
			if seen[p] {
				t.Errorf("cols %d: %+v twice", cols, p)
			}
			seen[p] = true
			sz, err := codec.EncodedSize(p, 1024, cols)
			if err != nil {
				t.Fatalf("cols %d: %+v: %v", cols, p, err)
			}
			if sz < prev {
				t.Errorf("cols %d: not sorted by size at %+v", cols, p)
			}
			prev = sz
			if p.Codec == "trellis" {
				nt++
				if p.GroupSize > row {
					t.Errorf("cols %d: group %d wider than the padded row %d", cols, p.GroupSize, row)
				}
			}
		}
		if !seen[codec.Params{Codec: "trellis", Bits: 3, GroupSize: row, Rotate: 0x5eed}] {
			t.Errorf("cols %d: no one-scale-per-row candidate", cols)
		}
		if nt < 6 {
			t.Errorf("cols %d: %d trellis candidates", cols, nt)
		}
	}
}

// TestRelErrRowWeights: relErr weights each element's squared error and
// squared weight by its column's energy and, where given, its row's weight.
func TestRelErrRowWeights(t *testing.T) {
	w := []float32{1, 2, 3, 4}  // 2×2
	wq := []float32{1, 1, 3, 2} // errors 0, 1; 0, 2
	diag := []float64{1, 3}     // column energies
	rw := []float32{0.5, 2}     // row weights
	// Unweighted rows: (3·1 + 3·4) / (1 + 3·4 + 9 + 3·16) = 15/70.
	if got, want := relErr(w, wq, 2, 2, diag, nil), 15.0/70; math.Abs(got-want) > 1e-12 {
		t.Errorf("relErr without row weights = %v, want %v", got, want)
	}
	// Rows weighted 0.5 and 2: (0.5·3 + 2·12) / (0.5·13 + 2·57) = 25.5/120.5.
	if got, want := relErr(w, wq, 2, 2, diag, rw), 25.5/120.5; math.Abs(got-want) > 1e-12 {
		t.Errorf("relErr with row weights = %v, want %v", got, want)
	}
	// No column energies: rows weighted alone, (0.5·1 + 2·4) / (0.5·5 + 2·25).
	if got, want := relErr(w, wq, 2, 2, nil, rw), 8.5/52.5; math.Abs(got-want) > 1e-12 {
		t.Errorf("relErr with row weights, no diag = %v, want %v", got, want)
	}
}
