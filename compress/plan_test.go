package compress

import (
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
