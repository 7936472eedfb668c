package engine

import (
	"slices"
	"testing"
)

// TestLookupDraft: the longest suffix with an earlier occurrence wins, the
// most recent occurrence of it, at most k tokens, never a single-token
// match, and nothing without a match.
func TestLookupDraft(t *testing.T) {
	for _, c := range []struct {
		tokens []int
		k      int
		want   []int
	}{
		{[]int{1, 2, 3, 4, 5, 1, 2}, 3, []int{3, 4, 5}},
		{[]int{1, 2, 3, 4, 5, 1, 2}, 10, []int{3, 4, 5, 1, 2}},   // up to the end
		{[]int{1, 2, 3, 9, 1, 2, 4, 1, 2}, 2, []int{4, 1}},       // the most recent occurrence
		{[]int{7, 1, 2, 3, 9, 1, 2, 4, 7, 1, 2}, 2, []int{3, 9}}, // the longer suffix (7 1 2) over the recent (1 2)
		{[]int{5, 5, 5, 5, 5, 5}, 3, []int{5}},                   // overlapping: the occurrence ending one before
		{[]int{1, 2, 3, 4, 2}, 3, nil},                           // a single-token match is not used
		{[]int{1, 2, 3, 1, 2}, 0, nil},                           // k = 0
		{[]int{1, 2}, 3, nil},                                    // too short
		{[]int{3, 1, 2, 3, 1, 2, 3, 1, 2}, 4, []int{3, 1, 2}},    // n = 4 matches at 3..6
	} {
		got := LookupDraft(nil, c.tokens, c.k)
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("LookupDraft(%v, %d) = %v, want %v", c.tokens, c.k, got, c.want)
		}
	}
}
