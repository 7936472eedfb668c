//go:build linux && (amd64 || arm64)

package cuda

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rec packs a record as pdl_wait_at writes it.
func rec(t, file, line, gx, gy uint64) []uint64 {
	return []uint64{t, file*100000 + line | gx<<24 | gy<<44}
}

func TestTraceTable(t *testing.T) {
	var raw []uint64
	// two steps, out of order as the atomic counter may leave them; a gap of
	// 5 ms between the steps is left out of the table
	raw = append(raw, rec(12000, 1, 300, 240, 1)...) // gemv.cu:300, 4 µs to the next
	raw = append(raw, rec(10000, 3, 20, 5, 1)...)    // fused.cu:20, 2 µs
	raw = append(raw, rec(16000, 3, 20, 5, 1)...)    // fused.cu:20, 5 ms: dropped
	raw = append(raw, rec(5016000, 3, 20, 5, 1)...)  // 3 µs
	raw = append(raw, rec(5019000, 1, 300, 240, 1)...)
	raw = append(raw, 0, 0, 0, 0) // two slots a phase build reserved and no mark took
	recs := decodeTrace(raw)
	if len(recs) != 5 || recs[0].t != 10000 || recs[4].t != 5019000 {
		t.Fatalf("decodeTrace: %+v", recs)
	}
	if r := recs[1]; r.site != 100300 || r.gx != 240 || r.gy != 1 || r.key() != "gemv.cu:300 grid 240x1" {
		t.Fatalf("record 1 = %+v (%s)", r, r.key())
	}
	var b bytes.Buffer
	names := map[uint64][]string{100300: {"upg_gemv_k3_g1_t1"}}
	writeTrace(&b, recs, 5, 2, func(r traceRec) []string { return names[r.site] })
	out := b.String()
	for _, want := range []string{
		"5 records", "fused.cu:20 grid 5x1", "mean 2.50 µs", "total 0.005 ms", "55.6%",
		"gemv.cu:300 grid 240x1 upg_gemv_k3_g1_t1", "mean 4.00 µs", "44.4%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "fused.cu:20 grid 5x1  "), strings.Index(out, "gemv.cu:300 grid 240x1 upg_gemv_k3_g1_t1  "); i < 0 || j < 0 || i > j {
		t.Errorf("rows not ordered by total:\n%s", out)
	}
	if n := strings.Count(out[strings.Index(out, "last records"):], "\n"); n != 3 {
		t.Errorf("want the last 2 records, got %d lines:\n%s", n-1, out)
	}
}

// TestGPUStepTrace: with the trace on, every decode step leaves one record
// per waiting kernel (graphs and PDL on), and the tokens are those of an
// untraced run.
func TestGPUStepTrace(t *testing.T) {
	gpu(t)
	ck, w := openE2E(t)
	prompt := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	const steps = 8
	plain, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	want := generate(t, ck, w, plain, prompt, steps, false)
	plain.Close()
	t.Setenv(TraceEnv, "1")
	b, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.d.trace == nil {
		t.Fatal("trace not started")
	}
	got := generate(t, ck, w, b, prompt, steps, false)
	for i := range want.tokens {
		if got.tokens[i] != want.tokens[i] {
			t.Fatalf("traced tokens %v, untraced %v", got.tokens, want.tokens)
		}
	}
	var recs []traceRec
	if err := b.d.Do(func() error {
		var err error
		recs, _, err = b.d.trace.read(b.d)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gemvs := 0
	for _, r := range recs {
		if traceFiles[r.site/100000] == "" || r.site%100000 == 0 || r.gx == 0 || r.gy == 0 {
			t.Fatalf("bad record %+v", r)
		}
		if traceFiles[r.site/100000] == "gemv.cu" && r.gy == 1 {
			gemvs++
		}
	}
	// 4 GEMVs per layer and the head, per decode step, at least
	if min := steps * (4*ck.Config.Layers + 1); gemvs < min {
		t.Errorf("%d single-token GEMV records, want ≥ %d", gemvs, min)
	}
	var buf bytes.Buffer
	writeTrace(&buf, recs, uint64(len(recs)), 24, b.d.trace.names)
	t.Logf("%d records\n%s", len(recs), buf.String())
}

// TestHostTimes (CPU): the host line's medians and means per phase, from
// flush timestamps; the first flush only starts the engine's clock; a
// wait for an overlapped step's tokens between flushes is the tokens wait,
// not the engine's time.
func TestHostTimes(t *testing.T) {
	h := &hostTimes{}
	base := time.Unix(0, 0)
	at := func(us int) time.Time { return base.Add(time.Duration(us) * time.Microsecond) }
	// flushes: engine gap, then hand-off, launch, wait, hand-back of 1, 2, 3, 4 µs × k
	end := 0
	for k, gap := range []int{0, 100, 300, 200} {
		t0 := end + gap
		ts := [4]time.Time{at(t0), at(t0 + k), at(t0 + 3*k), at(t0 + 6*k)}
		end = t0 + 10*k
		if k == 2 {
			h.wait = 60 * time.Microsecond // of the 300 µs before this flush
		}
		h.add(ts, at(end))
	}
	var sb strings.Builder
	h.report(&sb)
	want := "cuda host per step (UPG_CUDA_TRACE=1, 3 steps, median/mean µs): engine 200.0/180.0, hand-off 2.0/2.0, upload+launch 4.0/4.0, GPU and results 6.0/6.0, hand-back 8.0/8.0, tokens wait 0.0/20.0\n"
	if got := sb.String(); got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	var empty strings.Builder
	(&hostTimes{}).report(&empty)
	(*hostTimes)(nil).report(&empty)
	if empty.Len() != 0 {
		t.Errorf("no steps wrote %q", empty.String())
	}
}

// TestKernelFiles (CPU): kernelFile, which names the step trace's rows,
// gives every kernel in kernels/*.cu (and experiments/pstep.cu) its own
// file, and every kernel the Go side launches (kernelSig) is defined in one
// of them.
func TestKernelFiles(t *testing.T) {
	def := regexp.MustCompile(`extern "C" __global__ void(?: __launch_bounds__\([^)]*\))?\s+(upg_\w+)\(`)
	found := map[string]bool{}
	for _, file := range traceFiles {
		src, err := os.ReadFile(filepath.Join("kernels", file))
		if errors.Is(err, fs.ErrNotExist) {
			src, err = os.ReadFile(filepath.Join("experiments", file))
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range def.FindAllSubmatch(src, -1) {
			name := string(m[1])
			found[name] = true
			if got := kernelFile(name); got != file {
				t.Errorf("kernelFile(%s) = %s, defined in %s", name, got, file)
			}
		}
	}
	if len(found) < 100 {
		t.Fatalf("found %d kernel definitions: the pattern no longer matches kernels/*.cu", len(found))
	}
	for name := range kernelSig {
		if !found[name] {
			t.Errorf("kernel %s is launched but defined in no file the trace knows (kernels/*.cu, experiments/pstep.cu)", name)
		}
	}
}
