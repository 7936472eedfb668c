package tokenizer

import (
	"container/heap"
	"unicode"
)

// bpeMerge runs byte-pair merging over the initial symbols: repeatedly the
// adjacent pair with the lowest rank (leftmost on ties) is merged, as HF's
// BPE model, tiktoken and llama.cpp all do. rank returns -1 when the pair
// does not merge.
func bpeMerge(syms []string, rank func(a, b string) int) []string {
	if len(syms) < 2 {
		return syms
	}
	n := len(syms)
	prev := make([]int, n)
	next := make([]int, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	next[n-1] = -1
	q := &pairQueue{}
	push := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		if rk := rank(syms[l], syms[r]); rk >= 0 {
			heap.Push(q, pair{l, r, rk, len(syms[l]), len(syms[r])})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i, i+1)
	}
	for q.Len() > 0 {
		p := heap.Pop(q).(pair)
		l, r := p.left, p.right
		// Skip stale pairs: a side was merged away or has grown.
		if !alive[l] || !alive[r] || next[l] != r || len(syms[l]) != p.llen || len(syms[r]) != p.rlen {
			continue
		}
		syms[l] += syms[r]
		syms[r] = ""
		alive[r] = false
		next[l] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = l
		}
		push(prev[l], l)
		push(l, next[l])
	}
	out := syms[:0]
	for i := 0; i >= 0 && i < n; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type pair struct {
	left, right int
	rank        int
	llen, rlen  int
}

type pairQueue []pair

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].left < q[j].left
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(pair)) }
func (q *pairQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// chars splits s into its UTF-8 characters (invalid bytes stand alone).
func chars(s string) []string {
	out := make([]string, 0, len(s))
	for i := 0; i < len(s); {
		n := charLen(s, i)
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

// charLen is the length of the UTF-8 character at s[i], computed from the
// lead byte as llama.cpp's unicode_len_utf8 does (clamped to the string).
func charLen(s string, i int) int {
	c := s[i]
	n := 1
	switch {
	case c >= 0xF0:
		n = 4
	case c >= 0xE0:
		n = 3
	case c >= 0xC0:
		n = 2
	}
	if i+n > len(s) {
		n = len(s) - i
	}
	return n
}

func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
