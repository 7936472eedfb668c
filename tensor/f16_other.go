//go:build !amd64

package tensor

func f32ToF16Fast(dst []uint16, src []float32) int { return 0 }
