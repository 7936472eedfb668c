//go:build linux && (amd64 || arm64)

package cuda

import (
	"os"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// WeightBytes is the device memory UploadMatrix will take for m (the
// engine checks that a model fits before uploading it).
func (b *Backend) WeightBytes(m tensor.Matrix) int64 { return weightBytes(m) }

func weightBytes(m tensor.Matrix) int64 {
	R, C := int64(m.Rows()), int64(m.Cols())
	f16 := R * ((C + 7) &^ 7) * 2
	if os.Getenv(FloatEnv) != "" {
		return f16
	}
	switch x := m.(type) {
	case *codec.TrellisMatrix:
		if ok, _ := trellisFusable(x); !ok {
			return f16
		}
		n := int64(x.Bands*x.TileCols*x.TileBytes) + int64(x.Bands*x.Groups*32) + 4*(1<<codec.TrellisStateBits+codec.TrellisCodebookSize)
		if x.Signs != nil {
			n += 4 * C
		}
		return n
	case *codec.SparseMatrix:
		if ok, _ := sparseFusable(x); ok {
			return sparseBytes(x)
		}
	case *codec.OverlayMatrix:
		n := denseBytes(x.Base)
		if n == 0 {
			return f16
		}
		return n + 4*R*int64(x.K)
	case *codec.DenseMatrix:
		if n := denseBytes(x); n > 0 {
			return n
		}
	}
	return f16
}

// denseBytes is a fused dense matrix's device size (0: not fusable).
func denseBytes(m *codec.DenseMatrix) int64 {
	if ok, _ := denseFusable(m); !ok {
		return 0
	}
	rp := int64((m.R + 31) / 32 * 32)
	U := int64((m.C + unitCodes - 1) / unitCodes)
	n := rp*int64(layoutBits(m.Bits))*U*16 + 2*rp*int64(m.Groups) + int64(4<<m.Bits)
	if m.Bits > 4 && !linearLevels(m.Levels) {
		n += 256 // the byte layout's level table
	}
	if m.Asym {
		n += 2 * rp * int64(m.Groups)
	}
	if m.Signs != nil {
		n += 4 * int64(m.C)
	}
	return n
}
