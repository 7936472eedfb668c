package codec

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/tensor"
)

const miniphiDir = "../../shared/models/miniphi-29m"

// loadSafetensors reads the named 2-D bf16/f16/f32 tensors from the
// safetensors shards in dir (8-byte LE header length, JSON header, data).
func loadSafetensors(dir string, want map[string]bool) (map[string][]float32, map[string][2]int, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("no safetensors in %s", dir)
	}
	out := map[string][]float32{}
	shapes := map[string][2]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		if len(b) < 8 {
			return nil, nil, fmt.Errorf("%s: too short", f)
		}
		n := binary.LittleEndian.Uint64(b)
		if n > uint64(len(b)-8) {
			return nil, nil, fmt.Errorf("%s: header length %d", f, n)
		}
		var hdr map[string]json.RawMessage
		if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
			return nil, nil, fmt.Errorf("%s: %v", f, err)
		}
		data := b[8+n:]
		for name, raw := range hdr {
			if !want[name] {
				continue
			}
			var ti struct {
				DType   string   `json:"dtype"`
				Shape   []int    `json:"shape"`
				Offsets [2]int64 `json:"data_offsets"`
			}
			if err := json.Unmarshal(raw, &ti); err != nil {
				return nil, nil, fmt.Errorf("%s: %s: %v", f, name, err)
			}
			dt, err := tensor.ParseDType(ti.DType)
			if err != nil || len(ti.Shape) != 2 || ti.Offsets[1] > int64(len(data)) || ti.Offsets[0] > ti.Offsets[1] {
				return nil, nil, fmt.Errorf("%s: %s: bad tensor info %+v (%v)", f, name, ti, err)
			}
			v := make([]float32, ti.Shape[0]*ti.Shape[1])
			if err := tensor.ToFloat32(v, data[ti.Offsets[0]:ti.Offsets[1]], dt); err != nil {
				return nil, nil, fmt.Errorf("%s: %s: %v", f, name, err)
			}
			out[name] = v
			shapes[name] = [2]int{ti.Shape[0], ti.Shape[1]}
		}
	}
	return out, shapes, nil
}

// synthHessian is a cheap correlated input model: H = S·(B·Bᵀ/k + 0.2·I)·S
// with a rank-k Gaussian B and log-normal channel scales S (3% of channels
// 6× louder), like transformer activations with outlier channels.
func synthHessian(rng *rand.Rand, cols int) *Hessian {
	const k = 48
	b := make([]float64, cols*k)
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	s := make([]float64, cols)
	for i := range s {
		s[i] = math.Exp(0.5 * rng.NormFloat64())
		if rng.Float64() < 0.03 {
			s[i] *= 6
		}
	}
	h := make([]float64, cols*cols)
	for i := 0; i < cols; i++ {
		for j := 0; j <= i; j++ {
			v := tensor.Dot(b[i*k:(i+1)*k], b[j*k:(j+1)*k]) / k
			if i == j {
				v += 0.2
			}
			v *= s[i] * s[j]
			h[i*cols+j], h[j*cols+i] = v, v
		}
	}
	return &Hessian{N: 1, Cols: cols, H: h}
}

// TestReport logs, for real miniphi-29m weights, the bits per weight, the
// relative weight error and the relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ)
// (synthetic correlated H) of each codec configuration, with RTN and with
// GPTQ. It only runs when selected explicitly: go test -run TestReport -v.
func TestReport(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "TestReport") {
		t.Skip("report only runs with -run TestReport")
	}
	names := map[string]bool{
		"model.layers.0.self_attn.qkv_proj.weight": true,
		"model.layers.3.self_attn.o_proj.weight":   true,
		"model.layers.2.mlp.gate_up_proj.weight":   true,
		"model.layers.5.mlp.down_proj.weight":      true,
		"lm_head.weight":                           true,
	}
	ws, shp, err := loadSafetensors(miniphiDir, names)
	if err != nil {
		testutil.NeedData(t, miniphiDir)
		t.Fatal(err)
	}
	configs := []Params{
		{Codec: "dense", Bits: 3, GroupSize: 64},
		{Codec: "dense", Bits: 3, GroupSize: 128},
		{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "asym"},
		{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd"},
		{Codec: "dense", Bits: 3, GroupSize: 128, Rotate: 1},
		{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 1},
		{Codec: "dense", Bits: 3, GroupSize: 256, Levels: "lloyd", Rotate: 1},
		{Codec: "overlay", Bits: 3, GroupSize: 128, Levels: "lloyd", OverlayFrac: 0.005},
		{Codec: "overlay", Bits: 3, GroupSize: 256, Levels: "lloyd", Rotate: 1, OverlayFrac: 0.004},
		{Codec: "dense", Bits: 2, GroupSize: 64, Levels: "lloyd", Rotate: 1},
		{Codec: "dense", Bits: 4, GroupSize: 128, Levels: "lloyd", Rotate: 1},
		{Codec: "dense", Bits: 4, GroupSize: 128},
		{Codec: "sparse", Bits: 4, GroupSize: 64, N: 2, M: 4, Levels: "lloyd"},
		{Codec: "sparse", Bits: 4, GroupSize: 128, Density: 0.5, Levels: "lloyd"},
	}
	keys := make([]string, 0, len(ws))
	for k := range ws {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rng := rand.New(rand.NewPCG(1, 1))
	hs := map[int]*Hessian{}
	type agg struct{ bits, elems, wErr, wDen, oR, oG, oDen float64 }
	sum := make([]agg, len(configs))
	for _, name := range keys {
		w, rows, cols := ws[name], shp[name][0], shp[name][1]
		h := hs[cols]
		if h == nil {
			h = synthHessian(rng, cols)
			hs[cols] = h
		}
		den := OutputError(w, make([]float32, len(w)), rows, cols, h)
		wden := OutputError(w, make([]float32, len(w)), rows, cols, nil)
		for i, p := range configs {
			bpw := BitsPerWeight(p, rows, cols)
			t0 := time.Now()
			rtn := decodeAll(t, w, rows, cols, p, nil)
			tR := time.Since(t0)
			t0 = time.Now()
			gq := decodeAll(t, w, rows, cols, p, h)
			tG := time.Since(t0)
			we := OutputError(w, rtn, rows, cols, nil)
			oR, oG := OutputError(w, rtn, rows, cols, h), OutputError(w, gq, rows, cols, h)
			t.Logf("%-44s %-58s bpw %.3f  wErr %.4f  outErr RTN %.5f GPTQ %.5f  (%v, %v)", name, fmtParams(p), bpw,
				math.Sqrt(we/wden), oR/den, oG/den, tR.Round(time.Millisecond), tG.Round(time.Millisecond))
			s := &sum[i]
			n := float64(rows * cols)
			s.bits += bpw * n
			s.elems += n
			s.wErr += we
			s.wDen += wden
			s.oR += oR
			s.oG += oG
			s.oDen += den
		}
	}
	t.Logf("summary over %d tensors (weighted by size):", len(keys))
	for i, p := range configs {
		s := sum[i]
		t.Logf("  %-58s bpw %.3f  wErr %.4f  outErr RTN %.5f GPTQ %.5f", fmtParams(p), s.bits/s.elems,
			math.Sqrt(s.wErr/s.wDen), s.oR/s.oDen, s.oG/s.oDen)
	}
}

func decodeAll(t *testing.T, w []float32, rows, cols int, p Params, h *Hessian) []float32 {
	t.Helper()
	data, err := Encode(w, rows, cols, p, h)
	if err != nil {
		t.Fatalf("%+v: %v", p, err)
	}
	m, err := Open(p, rows, cols, data)
	if err != nil {
		t.Fatalf("%+v: %v", p, err)
	}
	dec := make([]float32, rows*cols)
	m.DecodeRows(dec, 0, rows)
	return dec
}

func fmtParams(p Params) string {
	b, _ := json.Marshal(p)
	return string(b)
}
