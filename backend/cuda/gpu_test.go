//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

func TestNoDriverError(t *testing.T) {
	t.Setenv(LibEnv, "/nonexistent/libcuda.so.1")
	err := openDriver()
	if err == nil || !strings.Contains(err.Error(), "no NVIDIA driver") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("want one line saying there is no NVIDIA driver, got %v", err)
	}
}

func TestOOMErrorMessage(t *testing.T) {
	e := &OOMError{What: "weights", Need: 12 << 30, Free: 3 << 30, Total: 12 << 30, Device: "GPU"}
	if got := e.Error(); got != "cuda: out of device memory for weights: need 12.00 GiB, 3.00 GiB free of 12.00 GiB on GPU" {
		t.Fatal(got)
	}
}

var (
	gpuOnce sync.Once
	gpuDev  *Device
	gpuErr  error
)

// gpu returns the shared test device, or skips with the reason there is none.
// benchGPU skips a timing test unless UPG_CUDA_BENCH is set ("set
// UPG_CUDA_BENCH=1 to " + what), and returns the GPU as gpu does.
func benchGPU(t *testing.T, what string) *Device {
	t.Helper()
	if os.Getenv("UPG_CUDA_BENCH") == "" {
		t.Skip("set UPG_CUDA_BENCH=1 to " + what)
	}
	return gpu(t)
}

func gpu(t testing.TB) *Device {
	gpuOnce.Do(func() {
		if gpuErr = Probe(); gpuErr != nil {
			return
		}
		if gpuDev, gpuErr = Open(0); gpuErr != nil {
			return
		}
		gpuErr = gpuDev.LoadKernels()
	})
	if gpuErr != nil {
		if os.Getenv("UPG_REQUIRE_GPU") != "" {
			t.Fatalf("GPU required: %v", gpuErr)
		}
		t.Skipf("no CUDA GPU: %v", gpuErr)
	}
	return gpuDev
}

const poison = 0x7fc00bad // a NaN

func TestGPUInfo(t *testing.T) {
	d := gpu(t)
	free, total, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	_, src, _ := kernelImage()
	t.Logf("%s cc %d.%d, %d SMs, L2 %d MiB, driver %s, %.1f of %.1f GiB free, kernels %s", d.Name, d.Major, d.Minor, d.SMs, d.L2Bytes>>20,
		versionString(d.DriverVer), float64(free)/(1<<30), float64(total)/(1<<30), src)
}

func TestGPUOutOfMemory(t *testing.T) {
	d := gpu(t)
	_, err := d.Alloc(1<<50, "a test")
	var oom *OOMError
	if err == nil {
		t.Fatal("1 PiB allocation succeeded")
	}
	if !asOOM(err, &oom) {
		t.Fatalf("want an out-of-memory error, got %v", err)
	}
	t.Log(err)
}

func asOOM(err error, p **OOMError) bool {
	o, ok := err.(*OOMError)
	*p = o
	return ok
}

// runDense uploads m, multiplies n random tokens on the GPU (output
// poisoned first) and returns the GPU result and the inputs.
func runDense(t *testing.T, d *Device, m tensor.Matrix, n int, rng *rand.Rand) (*DenseGPU, []float32, []float32) {
	g, err := d.UploadMatrix(m)
	if err != nil {
		t.Fatal(err)
	}
	R, C := m.Rows(), m.Cols()
	x := make([]float32, n*C)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	xd, _ := d.Alloc(int64(4*len(x)), "x")
	yd, _ := d.Alloc(int64(4*n*R), "y")
	defer d.Free(xd)
	defer d.Free(yd)
	s, err := d.NewScratch(n, C)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free(d) // its split-K parts too
	if err := d.UploadF32(xd, x); err != nil {
		t.Fatal(err)
	}
	if err := d.Fill32(yd, poison, n*R); err != nil {
		t.Fatal(err)
	}
	if err := d.MatMul(g, yd, xd, C, n, s); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, n*R)
	if err := d.DownloadF32(y, yd); err != nil {
		t.Fatal(err)
	}
	for i, v := range y {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("output %d (token %d row %d) not written or not finite: %v", i, i/R, i%R, v)
		}
	}
	return g, x, y
}

// TestGPUDenseGemv checks the fused dense kernels against the CPU emulation
// of the same int8 algebra (tight) and the codec's reference decoder
// (int8-activation tolerance), on fresh random matrices and inputs at odd
// and even shapes. 1 token: the one-token GEMV; 2 the 2-token GEMV; 3, 11 and 16 the 16-token
// tensor-core tiles, 24 the 32-token ones, 70 the 64-token ones (sm_80 and
// later; the byte layout has none and takes the dp4a kernel); and 3 and 11
// again on the dp4a kernel (up to 8 tokens a launch), which GPUs before
// sm_80 take for every step.
func TestGPUDenseGemv(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 9))
	defer func(m int) { mmaMinTokens = m }(mmaMinTokens)
	saved := mmaMinTokens
	for _, c := range denseCases() {
		for _, run := range []struct {
			n    int
			dp4a bool
		}{{1, false}, {2, false}, {3, false}, {11, false}, {16, false}, {24, false}, {70, false}, {3, true}, {11, true}} {
			n := run.n
			name := fmt.Sprintf("%dx%d_k%d_g%d_%s_rot%v_n%d", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, c.p.Rotate != 0, n)
			mmaMinTokens = saved
			if run.dp4a {
				name += "_dp4a"
				mmaMinTokens = 1 << 30
			}
			t.Run(name, func(t *testing.T) {
				m := randomDense(t, rng, c)
				g, x, y := runDense(t, d, m, n, rng)
				defer g.Free(d)
				if g.Fallback != "" {
					t.Fatalf("unexpected fallback: %s", g.Fallback)
				}
				packed := repackDense(m)
				u, alpha, beta := byteLevels(m.Levels)
				tb := permTable(u)
				var worst, worstRef float64
				for tok := 0; tok < n; tok++ {
					xt := x[tok*c.C : (tok+1)*c.C]
					_, xq, fac := emuRotq(g.plan, m.Signs, xt, alpha, beta)
					emu := make([]float64, c.R)
					for r := range emu {
						emu[r] = float64(emuGemv(packed, m, r, xq, fac, tb))
					}
					yt := y[tok*c.R : (tok+1)*c.R]
					worst = max(worst, relErr(yt, emu))
					worstRef = max(worstRef, relErr(yt, refMatVec(m, xt)))
				}
				if worst > 1e-5 || worstRef > 0.02 {
					t.Fatalf("relative error vs emulation %.3g (want ≤ 1e-5), vs reference decoder %.3g (want ≤ 0.02)", worst, worstRef)
				}
			})
		}
	}
}

// TestGPUFallbackAndOverlay checks the fp16 fallback (7-bit lloyd, f32) and
// fused encodings beside it (sparse, 4-bit lloyd, overlay) against the
// reference decoder.
func TestGPUFallbackAndOverlay(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 10))
	for _, c := range []denseCase{
		{77, 256, codec.Params{Codec: "sparse", Bits: 3, GroupSize: 64, N: 2, M: 4}},
		{50, 333, codec.Params{Codec: "dense", Bits: 7, GroupSize: 64, Levels: "lloyd"}},
		{64, 512, codec.Params{Codec: "dense", Bits: 4, GroupSize: 128, Levels: "lloyd", Rotate: 5}},
		{65, 1024, codec.Params{Codec: "overlay", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed, OverlayFrac: 1.0 / 128}},
		{31, 100, codec.Params{Codec: "f32"}},
	} {
		t.Run(fmt.Sprintf("%s_%dx%d_k%d", c.p.Codec, c.R, c.C, c.p.Bits), func(t *testing.T) {
			m := encodeCase(t, rng, c)
			for _, n := range []int{1, 5, 20} {
				g, x, y := runDense(t, d, m, n, rng)
				tol := 1e-3 // fp16 weights
				if g.Fallback == "" {
					tol = 0.02 // int8 activations
				}
				for tok := 0; tok < n; tok++ {
					if e := relErr(y[tok*c.R:(tok+1)*c.R], refMatVec(m, x[tok*c.C:(tok+1)*c.C])); e > tol {
						t.Fatalf("n=%d token %d: relative error %.3g > %g (fallback %q)", n, tok, e, tol, g.Fallback)
					}
				}
				g.Free(d)
			}
		})
	}
}

// synthDense makes a large dense matrix from random bytes (fast: no
// encoder), lloyd levels with rotation like the synthetic Phi-4 model.
func synthDense(t testing.TB, rng *rand.Rand, R, C, k, gs int) *codec.DenseMatrix {
	p := codec.Params{Codec: "dense", Bits: k, GroupSize: gs, Levels: "lloyd", Rotate: 0x5eed}
	n, err := codec.EncodedSize(p, R, C)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n)
	for i := 0; i+8 <= len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
	}
	for i := 0; i < 1<<k; i++ { // ascending codebook
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(i)-float32(int(1)<<(k-1))+0.5))
	}
	off := (4<<k + 7) &^ 7
	for i := 0; i < R*((C+gs-1)/gs); i++ { // finite positive scales around 0.01
		h := tensor.F32ToF16(0.005 + 0.01*rng.Float32())
		data[off+2*i], data[off+2*i+1] = byte(h), byte(h>>8)
	}
	return openAs[*codec.DenseMatrix](t, p, R, C, data)
}

// TestGPUBenchGemv (UPG_CUDA_BENCH=1) times one Phi-4-shaped layer's four
// projections (3-bit lloyd, group 128, rotated), 1 token, at each lanes
// setting, and the device-to-device copy bandwidth; it also checks sampled
// rows of each against the emulation.
func TestGPUBenchGemv(t *testing.T) {
	d := benchGPU(t, "run the GEMV benchmark")
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := phi4LayerShapes
	// copy bandwidth: 2 GiB buffer, read + write counted
	const cb = 2 << 30
	a, _ := d.Alloc(cb, "copy")
	b, _ := d.Alloc(cb, "copy")
	ms := timeIt(t, d, 20, func() error {
		return call("cuMemcpyDtoDAsync", sym.cuMemcpyDtoDAsync, uintptr(b), uintptr(a), cb, d.stream)
	})
	copyBW := 2 * cb / (float64(ms) * 1e-3) / 1e9
	t.Logf("device-to-device copy: %.0f GB/s (read+write, 2 GiB, median of 20)", copyBW)
	for _, gridMul := range []int{2, 8} {
		ms := timeIt(t, d, 20, func() error {
			return d.launchK("upg_readbw", [3]uint32{uint32(gridMul * 4 * d.SMs), 1, 1}, b256, 0, Ptr(a), I64(cb/16), Ptr(b))
		})
		t.Logf("read-only stream (16-byte loads, %d blocks/SM): %.0f GB/s", 4*gridMul, cb/(float64(ms)*1e-3)/1e9)
	}
	d.Free(a)
	d.Free(b)
	for _, k := range []int{3, 2, 4} {
		type mm struct {
			g     *DenseGPU
			m     *codec.DenseMatrix
			bytes int64
		}
		var ms []mm
		var total int64
		maxC := 0
		for _, s := range shapes {
			m := synthDense(t, rng, s.R, s.C, k, 128)
			if k == 4 { // linear levels for the 4-bit kernel
				for i := range m.Levels {
					m.Levels[i] = float32(i) - 8
				}
			}
			g, err := d.UploadMatrix(m)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, mm{g, m, g.Bytes})
			total += g.Bytes
			maxC = max(maxC, s.C)
		}
		sc, _ := d.NewScratch(32, maxC)
		xd, _ := d.Alloc(int64(32*maxC*4), "x")
		yd, _ := d.Alloc(int64(32*35840*4), "y")
		x := make([]float32, 32*maxC)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		_ = d.UploadF32(xd, x)
		for _, ll := range []int{0, 4, 5, 8, 10, 12, 16, 20, 32} {
			warpsOverride = ll
			var line []string
			var layerMS float64
			for i, s := range shapes {
				msOne := timeIt(t, d, 50, func() error { return d.matMul(ms[i].g, yd, xd, s.C, 1, sc) })
				layerMS += float64(msOne)
				line = append(line, fmt.Sprintf("%s %.1fus %.0fGB/s", s.name, msOne*1e3, float64(ms[i].bytes)/(float64(msOne)*1e-3)/1e9))
			}
			t.Logf("k=%d warps=%d: layer %.1fus = %.0f GB/s (%.0f%% of copy); %s", k, ll, layerMS*1e3,
				float64(total)/(layerMS*1e-3)/1e9, 100*float64(total)/(layerMS*1e-3)/1e9/copyBW, strings.Join(line, ", "))
		}
		warpsOverride = 0
		for i, s := range shapes {
			rq := timeIt(t, d, 50, func() error { return d.rotq(ms[i].g, xd, s.C, 1, sc) })
			gv := timeIt(t, d, 50, func() error { return d.gemv(ms[i].g, yd, 1, sc, 0, nil) })
			t.Logf("k=%d %s: rotq alone %.1fus, gemv alone %.1fus = %.0f GB/s", k, s.name, rq*1e3, gv*1e3, float64(ms[i].bytes)/(float64(gv)*1e-3)/1e9)
		}
		// a graph of 8 layers (distinct copies, 8x the L2) replayed: decode's
		// launch pattern without launch gaps
		var copies [][]*DenseGPU
		for l := 0; l < 8; l++ {
			var row []*DenseGPU
			for i := range shapes {
				c, err := d.cloneDense(ms[i].g)
				if err != nil {
					t.Fatal(err)
				}
				row = append(row, c)
			}
			copies = append(copies, row)
		}
		var exec uintptr
		err := d.Do(func() error {
			if err := d.beginCapture(); err != nil {
				return err
			}
			for l := range copies {
				for i, s := range shapes {
					if err := d.matMul(copies[l][i], yd, xd, s.C, 1, sc); err != nil {
						d.endCapture()
						return err
					}
				}
			}
			var err error
			exec, err = d.endCapture()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		gms := timeIt(t, d, 20, func() error { return d.graphLaunch(exec) })
		t.Logf("k=%d graph of 8 layers: %.1fus per layer = %.0f GB/s (%.0f%% of copy)", k, float64(gms)*1e3/8,
			float64(8*total)/(float64(gms)*1e-3)/1e9, 100*float64(8*total)/(float64(gms)*1e-3)/1e9/copyBW)
		_ = d.Do(func() error { d.graphDestroy(exec); return nil })
		for _, row := range copies {
			for _, c := range row {
				c.Free(d)
			}
		}
		// a layer's four projections for n tokens on the dp4a kernels (up to
		// 8 tokens a launch), the 2-token GEMV and the tensor-core tiles:
		// where the tiles start to pay (mmaMinTokens)
		for _, n := range []int{2, 3, 4, 6, 8, 12, 16, 32} {
			savedMin, saved16, saved2 := mmaMinTokens, useMMA16, useGemv2
			for _, path := range []string{"gemv2", "dp4a", "tiles16", "tiles32"} {
				if path == "tiles16" && n > mmaTokens/4 || path == "gemv2" && n != 2 {
					continue
				}
				mmaMinTokens, useMMA16, useGemv2 = 1, path == "tiles16", path == "gemv2"
				if path == "dp4a" {
					mmaMinTokens = 1 << 30
				}
				var layerMS float64
				for i, s := range shapes {
					layerMS += float64(timeIt(t, d, 20, func() error { return d.matMul(ms[i].g, yd, xd, s.C, n, sc) }))
				}
				t.Logf("k=%d n=%d tokens, %s: layer %.1fus = %.0f GB/s, %.1f token-layers/ms", k, n, path, layerMS*1e3,
					float64(total)/(layerMS*1e-3)/1e9, float64(n)/layerMS)
			}
			mmaMinTokens, useMMA16, useGemv2 = savedMin, saved16, saved2
		}
		// sampled rows against the emulation
		for i, s := range shapes {
			_ = d.Fill32(yd, poison, s.R)
			if err := d.MatMul(ms[i].g, yd, xd, s.C, 1, sc); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, s.R)
			_ = d.DownloadF32(y, yd)
			m := ms[i].m
			u, alpha, beta := byteLevels(m.Levels)
			tb := permTable(u)
			_, xq, fac := emuRotq(ms[i].g.plan, m.Signs, x[:s.C], alpha, beta)
			packed := repackDense(m)
			for j := 0; j < 64; j++ {
				r := rng.IntN(s.R)
				e := emuGemv(packed, m, r, xq, fac, tb)
				if math.Abs(float64(y[r]-e)) > 1e-4*math.Max(1, math.Abs(float64(e))) || math.IsNaN(float64(y[r])) {
					t.Fatalf("k=%d %s row %d: gpu %v emulation %v", k, s.name, r, y[r], e)
				}
			}
		}
		for _, m := range ms {
			m.g.Free(d)
		}
		d.Free(xd)
		d.Free(yd)
		d.Free(sc.xr)
		d.Free(sc.xq)
		d.Free(sc.fac)
	}
}

// timeIt returns the mean milliseconds of f over reps back-to-back runs
// between two events (the GPU's throughput, not the host's launch rate),
// the median of 5 such measurements.
func timeIt(t testing.TB, d *Device, reps int, f func() error) float32 {
	var times []float32
	err := d.Do(func() error {
		e0, err := d.eventCreate()
		if err != nil {
			return err
		}
		e1, _ := d.eventCreate()
		defer d.eventDestroy(e0)
		defer d.eventDestroy(e1)
		for i := 0; i < 3; i++ {
			if err := f(); err != nil {
				return err
			}
		}
		for k := 0; k < 5; k++ {
			_ = d.eventRecord(e0)
			for i := 0; i < reps; i++ {
				if err := f(); err != nil {
					return err
				}
			}
			_ = d.eventRecord(e1)
			ms, err := d.eventElapsed(e0, e1)
			if err != nil {
				return err
			}
			times = append(times, ms/float32(reps))
		}
		return d.sync()
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times[len(times)/2]
}

// phi4LayerShapes are one Phi-4 layer's four projections (the benchmarks').
var phi4LayerShapes = []struct {
	name string
	R, C int
}{{"qkv", 7680, 5120}, {"o", 5120, 5120}, {"gate_up", 35840, 5120}, {"down", 5120, 17920}}

// TestGPUBlocksPerSM checks the occupancy calculator's answer that split-K
// planning uses: on compute capability 9.0 (228 KB of shared memory and
// 64K registers per SM) the GEMMs reach their launch bounds' minimum.
func TestGPUBlocksPerSM(t *testing.T) {
	d := gpu(t)
	for _, c := range []struct {
		name string
		tile int
	}{{"upg_gemm_k3_g1", mmaTokens}, {"upg_gemm32_k3_g1", mmaTokens / 2}, {"upg_gemm_k4_g4", mmaTokens}} {
		var n int
		if err := d.Do(func() error { n = d.blocksPerSM(c.name, 128, 0, -1); return nil }); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d blocks per SM (launch bounds' minimum %d)", c.name, n, mmaBlocksPerSM(c.tile))
		if n < 1 || (d.Major == 9 && d.Minor == 0 && n < mmaBlocksPerSM(c.tile)) {
			t.Errorf("%s: %d blocks per SM", c.name, n)
		}
	}
}

// TestGPUGemvSplit checks the one- and two-token GEMVs with each row
// group's units split over 2 and 3 blocks (gemvPlan's parts, split_finish;
// the two-token kernel's parts per token) against the emulation of the int8
// algebra, and their residual epilogue against the unsplit kernel's, on
// fresh random matrices at odd and even shapes.
func TestGPUGemvSplit(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 31))
	defer func(p int) { gemvSplitOverride = p }(gemvSplitOverride)
	for _, c := range denseCases() {
		for _, n := range []int{1, 2} {
			for _, P := range []int{2, 3} {
				t.Run(fmt.Sprintf("%dx%d_k%d_g%d_%s_rot%v_tokens%d_parts%d", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, c.p.Rotate != 0, n, P), func(t *testing.T) {
					m := randomDense(t, rng, c)
					gemvSplitOverride = P
					g, x, y := runDense(t, d, m, n, rng)
					defer g.Free(d)
					if n == 2 && g.name2 == "" {
						t.Skipf("%s: no 2-token GEMV for these codes (their 2-token steps take the tiles)", g.name8)
					}
					if e, tok := emuRelErr(g, m, x, y, n); !(e <= 1e-5) {
						t.Fatalf("token %d: relative error vs emulation %.3g (want ≤ 1e-5)", tok, e)
					}
					// the residual epilogue: res += y, split and not
					s, err := d.NewScratch(n, c.C)
					if err != nil {
						t.Fatal(err)
					}
					defer s.Free(d)
					xd, res0 := devF32(t, d, x), randF(rng, n*c.R)
					var got [2][]float32
					for i, parts := range []int{1, P} {
						gemvSplitOverride = parts
						yd, rd := devPoisoned(t, d, n*c.R), devF32(t, d, res0)
						run(t, d, func() error {
							if err := d.rotq(g, xd, c.C, n, s); err != nil {
								return err
							}
							return d.gemv(g, yd, n, s, rd, nil)
						})
						got[i] = readF32(t, d, rd, n*c.R)
						d.Free(yd)
						d.Free(rd)
					}
					d.Free(xd)
					for r := range got[0] {
						a, b := float64(got[0][r]), float64(got[1][r])
						if math.IsNaN(b) || math.Abs(a-b) > 1e-5*(1+math.Abs(a)) {
							t.Fatalf("res[%d] (token %d): %v unsplit, %v in %d parts", r, r/c.R, a, b, P)
						}
					}
				})
			}
		}
	}
}

// testSeed is a random test's seed: UPG_TEST_SEED when set, else the
// process id (each run new data). A failing test logs the seed that
// reproduces it.
func testSeed(t testing.TB) uint64 {
	seed := uint64(os.Getpid())
	if v := os.Getenv("UPG_TEST_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("UPG_TEST_SEED %q: %v", v, err)
		}
		seed = s
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random data from seed %d: UPG_TEST_SEED=%d reproduces it", seed, seed)
		}
	})
	return seed
}

// TestGPUUploadThenKernel: a kernel launched right after an upload reads
// every uploaded byte. cuMemcpyHtoD from pageable memory returns once the
// bytes are staged, on the legacy stream the non-blocking stream does not
// wait for; htod queues the copy on the stream instead (run 123's
// TestGPUTrellisGemv read part of an 800 KB upload's old bytes). 64 MiB
// uploads, each with new values, each copied by upg_splitk_sum (S 1: y =
// the part) straight after, every bit compared.
func TestGPUUploadThenKernel(t *testing.T) {
	d := gpu(t)
	const n = 16 << 20
	src, err := d.Alloc(4*n, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(src)
	dst, err := d.Alloc(4*n, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(dst)
	v, got := make([]float32, n), make([]float32, n)
	for round := range 6 {
		for i := range v {
			v[i] = float32(round) + float32(i%4093)/4096
		}
		if err := d.UploadF32(src, v); err != nil {
			t.Fatal(err)
		}
		if err := d.Do(func() error {
			return d.launchK("upg_splitk_sum", grid1(n, 256), b256, 0, Ptr(src), I32(1), Ptr(dst), Ptr(0), I32(n))
		}); err != nil {
			t.Fatal(err)
		}
		if err := d.DownloadF32(got, dst); err != nil {
			t.Fatal(err)
		}
		for i := range v {
			if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
				t.Fatalf("round %d: value %d (byte %d) read as %v, uploaded %v", round, i, 4*i, got[i], v[i])
			}
		}
	}
}

// emuRelErr is the largest relative error, and its token, of the GPU's
// rows y (n tokens of inputs x) against the emulation of the int8 algebra
// (emuRotq, emuGemv) of m as g holds it; NaN when any token's is (callers
// test !(e <= bound), so a NaN fails).
func emuRelErr(g *DenseGPU, m *codec.DenseMatrix, x, y []float32, n int) (worst float64, worstTok int) {
	packed := repackDense(m)
	u, alpha, beta := byteLevels(m.Levels)
	tb := permTable(u)
	for tok := range n {
		_, xq, fac := emuRotq(g.plan, m.Signs, x[tok*m.C:(tok+1)*m.C], alpha, beta)
		emu := make([]float64, m.R)
		for r := range emu {
			emu[r] = float64(emuGemv(packed, m, r, xq, fac, tb))
		}
		if e := relErr(y[tok*m.R:(tok+1)*m.R], emu); tok == 0 || e > worst || math.IsNaN(e) {
			worst, worstTok = e, tok
			if math.IsNaN(e) {
				return worst, worstTok
			}
		}
	}
	return worst, worstTok
}

// TestGPUGemvWideRows: one-token GEMVs of rows wider than one part's room
// for its activations in shared memory (gemvXsUnits units): 65 and 140
// units take more parts (gemvPlan's fewest), 258 units the eight-token
// kernel; and the same rows at two tokens on the two-token kernel (its
// parts by gemvPlan without the room limit). Each against the emulation of
// the int8 algebra, every output poisoned first.
func TestGPUGemvWideRows(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 67))
	p := codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed}
	const R = 40
	for _, c := range []struct{ C, minP, maxP int }{{65 * 128, 2, gemvMaxSplit}, {140 * 128, 3, gemvMaxSplit}, {258 * 128, 0, 0}} {
		// one token: the one-token kernel's parts (0: the eight-token
		// kernel); two: the two-token kernel, whose parts have no room limit
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprintf("%dx%d_n%d", R, c.C, n), func(t *testing.T) {
				U := (c.C + unitCodes - 1) / unitCodes
				room, minP, maxP := gemvXsUnits, c.minP, c.maxP
				if n == 2 {
					room, minP, maxP = 0, 1, gemvMaxSplit
				}
				_, P := gemvPlan(U, (R+31)/32, d.SMs, 32, room)
				t.Logf("%d units, %d tokens: %d parts (0: the eight-token kernel)", U, n, P)
				if P < minP || P > maxP {
					t.Fatalf("%d units: %d parts, want %d-%d", U, P, minP, maxP)
				}
				m := randomDense(t, rng, denseCase{R, c.C, p})
				g, x, y := runDense(t, d, m, n, rng)
				defer g.Free(d)
				if e, tok := emuRelErr(g, m, x, y, n); !(e <= 1e-5) {
					t.Fatalf("token %d: relative error vs emulation %.3g (want ≤ 1e-5)", tok, e)
				}
			})
		}
	}
}
