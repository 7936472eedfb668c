//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unsafe"
)

// TraceEnv, when set (UPG_CUDA_TRACE=1), records the step trace: block 0
// of every kernel that waits on its predecessor (pdl_wait in kernels/
// gemv.cu) writes the global timer as it passes the wait, with its call
// site and grid. Unlike ProfileEnv it leaves graphs and programmatic
// dependent launch on, so the time from one record to the next is what each
// kernel costs the step as it really runs: its own work, the launch
// boundary, and whatever overlap PDL gives. When the backend closes, a
// table per call site and grid goes to stderr, naming the kernels launched
// there with their blocks against the SMs' slots for them (launchWaves),
// and the last records in order. Kernels without a pdl_wait (the samplers, tensor-core GEMMs, ...)
// leave no record: their time counts to the record before them.
const TraceEnv = "UPG_CUDA_TRACE"

// traceCap is the most records kept (16 bytes each on the device).
const traceCap = 1 << 20

// traceFiles are the UPG_SRC numbers of kernels/upg.cu, and 9 that of
// experiments/pstep.cu (which includes upg.cu).
var traceFiles = map[uint64]string{1: "gemv.cu", 2: "ops.cu", 3: "fused.cu", 4: "trellis.cu", 5: "mma.cu", 6: "sparse.cu", 7: "attn.cu", 9: "pstep.cu"}

func tracing() bool { v := os.Getenv(TraceEnv); return v != "" && v != "0" }

// tracer owns the device buffer and the address of the module's upg_trace,
// and the kernels launched with each grid (launchK), which name the table's
// rows.
type tracer struct {
	buf    DevPtr
	global DevPtr // struct UpgTrace {u64 buf; u32 cap, n}
	grids  map[traceGrid][]string
}

// traceGrid is a launch as a record knows it: the kernel's source file
// and its grid's x and y.
type traceGrid struct {
	file   string
	gx, gy uint64
}

// saw notes that kernel name was launched with grid, as label says
// (owner thread).
func (tr *tracer) saw(label, name string, grid [3]uint32) {
	k := traceGrid{kernelFile(name), uint64(grid[0]), uint64(grid[1])}
	if !slices.Contains(tr.grids[k], label) {
		tr.grids[k] = append(tr.grids[k], label)
	}
}

// names is the kernels launched with r's file and grid, in launch order.
func (tr *tracer) names(r traceRec) []string {
	return tr.grids[traceGrid{traceFiles[r.site/100000], r.gx, r.gy}]
}

// kernelFile is the kernels/*.cu file that defines kernel name
// (TestKernelFiles checks it against the sources).
func kernelFile(name string) string {
	has := func(p ...string) bool {
		for _, x := range p {
			if strings.HasPrefix(name, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("upg_pstep"):
		return "pstep.cu"
	case has("upg_gemv_sparse", "upg_embed_sparse"):
		return "sparse.cu"
	case has("upg_gemv_trellis", "upg_gemm_trellis", "upg_embed_trellis"):
		return "trellis.cu"
	case has("upg_gemv_", "upg_overlay", "upg_readbw", "upg_rotq"):
		return "gemv.cu"
	case has("upg_gemm"):
		return "mma.cu"
	case has("upg_attn_cascade_") || has("upg_attn_") && strings.Contains(name, "_tc"):
		return "attn.cu"
	case has("upg_rms_rotq", "upg_swiglu_rotq", "upg_combine_rotq", "upg_attn_rotq", "upg_attn_cluster_rotq", "upg_rope_kv_", "upg_splitk_rope_kv_"):
		return "fused.cu"
	}
	return "ops.cu"
}

// startTrace allocates the record buffer and points upg_trace at it (owner
// thread, after the module is loaded).
func (d *Device) startTrace() error {
	if sym.cuModuleGetGlobal == 0 {
		return fmt.Errorf("cuda: %s: the driver lacks cuModuleGetGlobal", TraceEnv)
	}
	var g DevPtr
	var size uintptr
	name := []byte("upg_trace\x00")
	if err := call("cuModuleGetGlobal upg_trace", sym.cuModuleGetGlobal, uintptr(unsafe.Pointer(&g)),
		uintptr(unsafe.Pointer(&size)), d.mod, uintptr(unsafe.Pointer(&name[0]))); err != nil {
		return fmt.Errorf("cuda: %s: %w (kernels built before the trace?)", TraceEnv, err)
	}
	if size != 16 {
		return fmt.Errorf("cuda: %s: upg_trace is %d bytes, want 16", TraceEnv, size)
	}
	buf, err := d.alloc(traceCap*16, "step trace")
	if err != nil {
		return err
	}
	if err := d.memsetD32(buf, 0, traceCap*4); err != nil { // unused reserved slots read as time 0
		d.free(buf)
		return err
	}
	hdr := [2]uint64{uint64(buf), traceCap}
	if err := d.htod(g, unsafe.Pointer(&hdr[0]), 16); err != nil {
		d.free(buf)
		return err
	}
	d.trace = &tracer{buf: buf, global: g, grids: map[traceGrid][]string{}}
	return nil
}

// hostTimes records, for each flush that ends a step with its results
// (the sampled tokens read back), where the host's time went: the engine
// between one such flush and the next (model code queueing the step, the
// scheduler), the hand-off to the owner thread, the upload and the graph
// launch, the wait for the GPU and the results, and the hand-back. The
// step trace's records are the GPU's side; between the last kernel of one
// step and the first of the next the GPU waits on these.
//
// With host overlap (pipeline.go) a step's tokens are waited for outside
// the flush, while the next step runs: that wait is counted apart ("tokens
// wait") instead of in the engine's time, and "GPU and results" is only the
// queueing of the asynchronous read-back.
type hostTimes struct {
	steps [][6]time.Duration // engine, hand-off, upload+launch, GPU and results, hand-back, tokens wait
	last  time.Time          // when the previous flush returned
	wait  time.Duration      // SampleAsync waits since then
}

// add records one flush: t = before the hand-off, when the owner thread
// began, after the launch, after the results; end = back on the caller.
func (h *hostTimes) add(t [4]time.Time, end time.Time) {
	if !h.last.IsZero() {
		h.steps = append(h.steps, [6]time.Duration{t[0].Sub(h.last) - h.wait, t[1].Sub(t[0]), t[2].Sub(t[1]), t[3].Sub(t[2]), end.Sub(t[3]), h.wait})
	}
	h.last, h.wait = end, 0
}

// report writes each phase's median and mean over the steps (the means
// include the steps that captured a graph).
func (h *hostTimes) report(w io.Writer) {
	if h == nil || len(h.steps) == 0 {
		return
	}
	parts := make([]string, 6)
	for i, name := range []string{"engine", "hand-off", "upload+launch", "GPU and results", "hand-back", "tokens wait"} {
		v := make([]float64, len(h.steps))
		var sum float64
		for j, s := range h.steps {
			v[j] = float64(s[i].Nanoseconds()) / 1000
			sum += v[j]
		}
		sort.Float64s(v)
		parts[i] = fmt.Sprintf("%s %.1f/%.1f", name, v[len(v)/2], sum/float64(len(v)))
	}
	fmt.Fprintf(w, "cuda host per step (%s=1, %d steps, median/mean µs): %s\n", TraceEnv, len(h.steps), strings.Join(parts, ", "))
}

// traceRec is one record: when block 0 passed pdl_wait, where, which grid.
type traceRec struct {
	t      uint64 // ns
	site   uint64 // UPG_SRC·100000 + line
	gx, gy uint64
}

func (r traceRec) key() string {
	return fmt.Sprintf("%s:%d grid %dx%d", traceFiles[r.site/100000], r.site%100000, r.gx, r.gy)
}

// read copies the records back, in time order, with the count the kernels
// reached (more than traceCap when records were dropped).
func (tr *tracer) read(d *Device) ([]traceRec, uint64, error) {
	var hdr [2]uint64
	if err := d.dtoh(unsafe.Pointer(&hdr[0]), tr.global, 16); err != nil {
		return nil, 0, err
	}
	count := hdr[1] >> 32
	raw := make([]uint64, 2*min(int(count), traceCap))
	if len(raw) > 0 {
		if err := d.dtoh(unsafe.Pointer(&raw[0]), tr.buf, 8*len(raw)); err != nil {
			return nil, 0, err
		}
	}
	return decodeTrace(raw), count, nil
}

// decodeTrace unpacks the device's records (two words each) and sorts them
// by time.
func decodeTrace(raw []uint64) []traceRec {
	recs := make([]traceRec, 0, len(raw)/2)
	for i := range len(raw) / 2 {
		if raw[2*i] == 0 {
			continue // a phase build's reserved slot that no mark took (TRACE_MARKS)
		}
		m := raw[2*i+1]
		recs = append(recs, traceRec{t: raw[2*i], site: m & 0xFFFFFF, gx: m >> 24 & 0xFFFFF, gy: m >> 44 & 0xFFFFF})
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].t < recs[j].t })
	return recs
}

// report writes the trace table (writeTrace), turns the trace off in the
// module (upg_trace.buf = null) and frees the buffer.
func (tr *tracer) report(d *Device, w io.Writer) error {
	recs, count, err := tr.read(d)
	var off [2]uint64
	if e := d.htod(tr.global, unsafe.Pointer(&off[0]), 16); e == nil {
		d.free(tr.buf)
		d.trace = nil
	} else if err == nil {
		err = e
	}
	if err != nil {
		return err
	}
	writeTrace(w, recs, count, 60, tr.names)
	return nil
}

// writeTrace writes, per call site and grid, the count and the mean,
// median and total time to the next record (gaps over 1 ms, between steps,
// are left out) and the kernels launched so (names, when not nil), then the
// last `last` records with their gaps.
func writeTrace(w io.Writer, recs []traceRec, count uint64, last int, names func(traceRec) []string) {
	type stat struct {
		gaps []float64
		sum  float64
	}
	stats := map[string]*stat{}
	label := func(r traceRec) string {
		if names != nil {
			if n := names(r); len(n) > 0 {
				return r.key() + " " + strings.Join(n, "|")
			}
		}
		return r.key()
	}
	var total float64
	for i := 0; i+1 < len(recs); i++ {
		g := float64(recs[i+1].t-recs[i].t) / 1000
		if g > 1000 {
			continue
		}
		k := label(recs[i])
		s := stats[k]
		if s == nil {
			s = &stat{}
			stats[k] = s
		}
		s.gaps = append(s.gaps, g)
		s.sum += g
		total += g
	}
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if a, b := stats[keys[i]].sum, stats[keys[j]].sum; a != b {
			return a > b
		}
		return keys[i] < keys[j]
	})
	fmt.Fprintf(w, "cuda step trace (%s=1): %d records (cap %d); time to the next record, by call site and grid\n", TraceEnv, count, traceCap)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	for _, k := range keys {
		s := stats[k]
		sort.Float64s(s.gaps)
		fmt.Fprintf(tw, "  %s\t%d\tmean %.2f µs\tmedian %.2f µs\ttotal %.3f ms\t%.1f%%\t\n", k, len(s.gaps),
			s.sum/float64(len(s.gaps)), s.gaps[len(s.gaps)/2], s.sum/1000, 100*s.sum/max(total, 1e-9))
	}
	tw.Flush()
	fmt.Fprintf(w, "last records (µs to the next):\n")
	for i := max(0, len(recs)-last); i < len(recs); i++ {
		g := 0.0
		if i+1 < len(recs) {
			g = float64(recs[i+1].t-recs[i].t) / 1000
		}
		fmt.Fprintf(w, "  %s\t%.2f\n", label(recs[i]), g)
	}
}
