package constrain

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Numeric bounds (minimum, maximum, exclusiveMinimum, exclusiveMaximum) as
// a regular language: a number between two whole numbers is its sign, an
// integer part in a decimal range (ranges of digit strings of one length
// at a time), and a fraction that may be anything, must be zeros, or must
// not be zeros, depending on whether the integer part is inside the range
// or on a bound. Numbers under bounds are written without an exponent.

// bound is one side of a range: its value (a whole number), whether the
// value itself is excluded, and whether there is no bound at all.
type bound struct {
	v    int64
	excl bool
	none bool
}

// maxBound is the largest bound magnitude a schema may set (2^53: every
// such whole number is exact in a float64, as a JSON parser reads it).
const maxBound = 1 << 53

// bounds reads a schema's numeric bounds; integer says the type is
// integer, whose bounds may be fractional (rounded inward: minimum 0.5 is
// minimum 1), where a number's must be whole. any is false when the schema
// sets none.
func bounds(kw map[string]*onode, path string, integer bool) (lo, hi bound, any bool, err error) {
	lo, hi = bound{none: true}, bound{none: true}
	read := func(k string, up bool) (bound, error) {
		x := kw[k]
		excl := strings.HasPrefix(k, "exclusive")
		if x.kind == 'b' { // draft 4: exclusiveMinimum: true modifies minimum
			return bound{none: true}, nil
		}
		f, ok := new(big.Float).SetString(x.str)
		if x.kind != 'n' || !ok {
			return bound{}, fmt.Errorf("%s.%s: want a number", path, k)
		}
		if f.IsInt() {
			i, acc := f.Int64()
			if acc != big.Exact || i > maxBound || i < -maxBound {
				return bound{}, fmt.Errorf("%s.%s: %s is beyond ±2^53", path, k, x.str)
			}
			return bound{v: i, excl: excl}, nil
		}
		if !integer {
			return bound{}, fmt.Errorf("%s.%s: %s: a number's bounds must be whole numbers", path, k, x.str)
		}
		// an integer's fractional bound: the whole number inside it, included
		g, _ := f.Float64()
		if math.Abs(g) > maxBound {
			return bound{}, fmt.Errorf("%s.%s: %s is beyond ±2^53", path, k, x.str)
		}
		if up {
			return bound{v: int64(math.Floor(g))}, nil
		}
		return bound{v: int64(math.Ceil(g))}, nil
	}
	tighter := func(b, c bound, up bool) bound { // the tighter of two bounds on one side
		switch {
		case b.none:
			return c
		case c.none:
			return b
		case b.v == c.v:
			return bound{v: b.v, excl: b.excl || c.excl}
		case (b.v < c.v) == up:
			return b
		}
		return c
	}
	for _, s := range []struct {
		k  string
		up bool
	}{{"minimum", false}, {"exclusiveMinimum", false}, {"maximum", true}, {"exclusiveMaximum", true}} {
		if kw[s.k] == nil {
			continue
		}
		any = true
		b, err := read(s.k, s.up)
		if err != nil {
			return lo, hi, any, err
		}
		if s.up {
			hi = tighter(hi, b, true)
		} else {
			lo = tighter(lo, b, false)
		}
	}
	// draft 4's boolean exclusives
	if x := kw["exclusiveMinimum"]; x != nil && x.kind == 'b' && x.b && !lo.none {
		lo.excl = true
	}
	if x := kw["exclusiveMaximum"]; x != nil && x.kind == 'b' && x.b && !hi.none {
		hi.excl = true
	}
	if integer { // whole numbers: exclusive bounds are the next one in
		if !lo.none && lo.excl {
			lo = bound{v: lo.v + 1}
		}
		if !hi.none && hi.excl {
			hi = bound{v: hi.v - 1}
		}
	}
	return lo, hi, any, nil
}

// ranged is a JSON number (integer: an integer) within lo and hi.
func (a *nfa) ranged(lo, hi bound, integer bool, path string) (frag, error) {
	var fs []frag
	// values ≥ 0: magnitudes from max(lo, 0)
	if hi.none || hi.v > 0 || hi.v == 0 && !hi.excl {
		from := bound{}
		if !lo.none && lo.v >= 0 {
			from = lo
		}
		if f, ok := a.magnitude(from, hi, integer); ok {
			fs = append(fs, f)
		}
	}
	// values < 0: "-" and a magnitude above 0 (or -hi) and up to -lo
	if lo.none || lo.v < 0 {
		from := bound{v: 0, excl: true}
		if !hi.none && hi.v < 0 {
			from = bound{v: -hi.v, excl: hi.excl}
		}
		to := bound{none: true}
		if !lo.none {
			to = bound{v: -lo.v, excl: lo.excl}
		}
		if f, ok := a.magnitude(from, to, integer); ok {
			fs = append(fs, a.seq(a.lit("-"), f))
		}
	}
	if len(fs) == 0 {
		return frag{}, fmt.Errorf("%s: no %s between its bounds", path, map[bool]string{true: "integer", false: "number"}[integer])
	}
	return a.alt(fs...), nil
}

// magnitude is an unsigned number (integer part, and a fraction unless
// integer) from lo to hi (lo ≥ 0, hi ≥ lo or none); false when there is
// none.
func (a *nfa) magnitude(lo, hi bound, integer bool) (frag, bool) {
	if integer {
		first := lo.v
		if lo.excl {
			first++
		}
		if hi.none {
			return a.digitsFrom(first, 0, true), true
		}
		last := hi.v
		if hi.excl {
			last--
		}
		if last < first {
			return frag{}, false
		}
		return a.digitsFrom(first, last, false), true
	}
	var fs []frag
	// the integer part on the lower bound: any fraction, or a fraction
	// above zero when the bound is excluded
	if hi.none || hi.v > lo.v {
		if lo.excl {
			fs = append(fs, a.seq(a.lit(strconv.FormatInt(lo.v, 10)), a.fracNonzero()))
		} else {
			fs = append(fs, a.seq(a.lit(strconv.FormatInt(lo.v, 10)), a.fracAny()))
		}
	}
	// integer parts strictly inside: any fraction
	if hi.none {
		fs = append(fs, a.seq(a.digitsFrom(lo.v+1, 0, true), a.fracAny()))
	} else if hi.v-1 >= lo.v+1 {
		fs = append(fs, a.seq(a.digitsFrom(lo.v+1, hi.v-1, false), a.fracAny()))
	}
	// the integer part on the upper bound (included): only zeros after it
	if !hi.none && !hi.excl && (hi.v > lo.v || hi.v == lo.v && !lo.excl) {
		fs = append(fs, a.seq(a.lit(strconv.FormatInt(hi.v, 10)), a.fracZero()))
	}
	if len(fs) == 0 {
		return frag{}, false
	}
	return a.alt(fs...), true
}

// digitsFrom is the decimal integers (no leading zeros) from lo to hi (lo
// ≥ 0; or every one from lo when open): the numbers of each digit count
// in turn.
func (a *nfa) digitsFrom(lo, hi int64, open bool) frag {
	ls := strconv.FormatInt(lo, 10)
	var fs []frag
	if open {
		// lo's length up to 99…9, then every longer number
		fs = append(fs, a.sameLength(ls, strings.Repeat("9", len(ls))))
		fs = append(fs, a.seq(a.class('1', '9'), a.times(len(ls), a.digit), a.star(a.digit())))
		return a.alt(fs...)
	}
	hs := strconv.FormatInt(hi, 10)
	for n := len(ls); n <= len(hs); n++ {
		x, y := "1"+strings.Repeat("0", n-1), strings.Repeat("9", n)
		if n == len(ls) {
			x = ls
		}
		if n == len(hs) {
			y = hs
		}
		fs = append(fs, a.sameLength(x, y))
	}
	return a.alt(fs...)
}

// sameLength is the digit strings from x to y, both of one length.
func (a *nfa) sameLength(x, y string) frag {
	if len(x) == 1 {
		return a.class(x[0], y[0])
	}
	if x[0] == y[0] {
		return a.seq(a.lit(x[:1]), a.sameLength(x[1:], y[1:]))
	}
	rest := len(x) - 1
	fs := []frag{
		a.seq(a.lit(x[:1]), a.sameLength(x[1:], strings.Repeat("9", rest))),
		a.seq(a.lit(y[:1]), a.sameLength(strings.Repeat("0", rest), y[1:])),
	}
	if y[0]-x[0] > 1 {
		fs = append(fs, a.seq(a.class(x[0]+1, y[0]-1), a.times(rest, a.digit)))
	}
	return a.alt(fs...)
}

// fracAny is an optional fraction; fracZero an optional fraction of zeros;
// fracNonzero a fraction with a digit other than zero.
func (a *nfa) fracAny() frag {
	return a.opt(a.seq(a.lit("."), a.digit(), a.star(a.digit())))
}

func (a *nfa) fracZero() frag {
	return a.opt(a.seq(a.lit(".0"), a.star(a.lit("0"))))
}

func (a *nfa) fracNonzero() frag {
	return a.seq(a.lit("."), a.star(a.digit()), a.class('1', '9'), a.star(a.digit()))
}
