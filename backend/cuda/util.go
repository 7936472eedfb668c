package cuda

import (
	"math"
	"os"
)

func getenv(k string) string { return os.Getenv(k) }

func f32bits(v float32) uint32 { return math.Float32bits(v) }
