package cpu

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// prefetchDistances are how far ahead of the codes it is reading the
// AVX-512 decode kernel asks for cache lines: near into L1 (PREFETCHT0),
// far into L2 (PREFETCHT2). Both levels matter on the development machine
// (docs/benchmarks.md): without software prefetch the kernel streams little
// more than half the read bandwidth, with only the near one about 80%, with
// both 87–91%. Every cache line must be covered at both levels: the
// two-group loop advances 32·bits bytes, so it prefetches two lines per
// step at each distance (with one, a 3-bit loop left every third line to a
// demand miss whenever near ≡ far mod 192, and decoding fell to 75%).
// With full coverage any near in [1.5, 4] KiB and far in [8, 16] KiB decode
// within a few percent of each other (tools/prefetch-sweep).
type prefetchDistances struct{ near, far int }

var prefetch = defaultPrefetch()

// PrefetchEnv overrides the prefetch distances: "near,far" in bytes.
const PrefetchEnv = "UPG_PREFETCH"

func defaultPrefetch() prefetchDistances {
	d := prefetchDistances{near: 2048, far: 12288}
	if v := os.Getenv(PrefetchEnv); v != "" {
		p, err := parsePrefetch(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "upg: ignoring %s: %v\n", PrefetchEnv, err)
			return d
		}
		d = p
	}
	return d
}

// parsePrefetch parses "near,far" (bytes, each a multiple of 64 in
// [0, 1 MiB]).
func parsePrefetch(s string) (prefetchDistances, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return prefetchDistances{}, fmt.Errorf("%q is not \"near,far\"", s)
	}
	var d [2]int
	for i, f := range []string{a, b} {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 || v > 1<<20 || v%64 != 0 {
			return prefetchDistances{}, fmt.Errorf("%q: distance %q is not a multiple of 64 in [0, 1048576]", s, f)
		}
		d[i] = v
	}
	return prefetchDistances{near: d[0], far: d[1]}, nil
}

// SetPrefetch sets the decode kernel's software prefetch distances in bytes
// (near into L1, far into L2; multiples of 64, at most 1 MiB) for every
// backend in the process. Call it between matrix multiplies, not during one.
func SetPrefetch(near, far int) error {
	d, err := parsePrefetch(fmt.Sprintf("%d,%d", near, far))
	if err != nil {
		return err
	}
	prefetch = d
	return nil
}

// Prefetch reports the decode kernel's prefetch distances in bytes.
func Prefetch() (near, far int) { return prefetch.near, prefetch.far }
