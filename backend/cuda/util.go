package cuda

import (
	"math"
	"os"
	"strconv"
)

func getenv(k string) string { return os.Getenv(k) }

func f32bits(v float32) uint32 { return math.Float32bits(v) }

// envInt is environment variable k as a positive integer, or def when it
// is unset or not one (settings for measurements).
func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
		return n
	}
	return def
}

// envIntZero is envInt that also takes 0.
func envIntZero(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n >= 0 {
		return n
	}
	return def
}

// allOnes reports whether every value of v is 1 (and v is not empty).
func allOnes(v []float32) bool {
	for _, x := range v {
		if x != 1 {
			return false
		}
	}
	return len(v) > 0
}
