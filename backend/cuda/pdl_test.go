//go:build linux && (amd64 || arm64)

package cuda

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unsafe"
)

// TestLaunchConfigLayout pins the Go mirrors of CUlaunchConfig and
// CUlaunchAttribute to the driver's 64-bit layout (cuda.h): a wrong offset
// would hand cuLaunchKernelEx garbage.
func TestLaunchConfigLayout(t *testing.T) {
	var c launchConfig
	var a launchAttribute
	for _, x := range []struct {
		what      string
		got, want uintptr
	}{
		{"sizeof(CUlaunchConfig)", unsafe.Sizeof(c), 56},
		{"offsetof(sharedMemBytes)", unsafe.Offsetof(c.smem), 24},
		{"offsetof(hStream)", unsafe.Offsetof(c.stream), 32},
		{"offsetof(attrs)", unsafe.Offsetof(c.attrs), 40},
		{"offsetof(numAttrs)", unsafe.Offsetof(c.numAttrs), 48},
		{"sizeof(CUlaunchAttribute)", unsafe.Sizeof(a), 72},
		{"offsetof(value)", unsafe.Offsetof(a.value), 8},
	} {
		if x.got != x.want {
			t.Errorf("%s = %d, want %d", x.what, x.got, x.want)
		}
	}
}

// TestPDLKernels checks which kernels take programmatic dependent launch:
// each must begin with pdl_wait() (kernels/*.cu), so a new kernel whose name
// happens to match must be looked at and added here.
func TestPDLKernels(t *testing.T) {
	var got []string
	for name := range kernelSig {
		if pdlKernel(name) {
			got = append(got, name)
		}
	}
	sort.Strings(got)
	gemv, gemm, other := 0, 0, []string{}
	for _, n := range got {
		switch {
		case strings.HasPrefix(n, "upg_gemv_k"):
			gemv++
		case strings.HasPrefix(n, "upg_gemm"):
			gemm++
		default:
			other = append(other, n)
		}
	}
	want := "upg_argmax upg_attn_cascade_gqa2_h128 upg_attn_cascade_gqa2_h64 upg_attn_cascade_gqa4_h128 upg_attn_cascade_gqa4_h64 upg_attn_cascade_gqa8_h128 upg_attn_cascade_gqa8_h64 upg_attn_cluster_rotq_f16_h128 upg_attn_cluster_rotq_f16_h64 upg_attn_cluster_rotq_f32_h128 upg_attn_cluster_rotq_f32_h64 upg_attn_f16 upg_attn_f32 upg_attn_gqa2_f16 upg_attn_gqa2_f32 upg_attn_gqa2_tc upg_attn_gqa4_f16 upg_attn_gqa4_f32 upg_attn_gqa4_tc upg_attn_gqa8_f16 upg_attn_gqa8_f32 upg_attn_gqa8_tc upg_attn_prefill_f16 upg_attn_prefill_f32 upg_attn_prefill_tc128 upg_attn_prefill_tc64 upg_attn_rotq_f16 upg_attn_rotq_f32 upg_combine_rotq upg_rms_rotq upg_rope_kv_f16 upg_rope_kv_f32 upg_rotq upg_splitk_rope_kv_f16 upg_splitk_rope_kv_f32 upg_splitk_sum upg_swiglu_rotq"
	// 36 row-group GEMVs (k2, k3, k4, k4l, k8, k8l × 3 group widths × t1, t8),
	// 5 two-token ones and 5 with the rope epilogue (k2 × 3, k3 g1 and g2), 2 of those
	// quantizing their own input (k2 g1, k3 g1: _t1q) and 12 stream-K ones (k2, k3,
	// k4, k4l × 3); 45 tensor-core GEMMs (k2,
	// k3, k4, k4l × 3 group widths × 64-, 32- and 16-token tiles, and the
	// trellis codec's k2, k3, k4 in tf32, bf16 64-token and bf16 128-token
	// blocks)
	if strings.Join(other, " ") != want || gemv != 60 || gemm != 45 {
		t.Errorf("PDL kernels: %d dense GEMVs (want 60), %d GEMMs (want 45) and %v (want %s)", gemv, gemm, other, want)
	}
}

// TestPDLKernelsWait is TestPDLKernels the other way round: every kernel
// whose body, or a device function it calls (transitively), waits with
// pdl_wait() must be launched with programmatic dependent launch, or its
// wait is a no-op and it starts only after the kernel before it has ended
// (upg_splitk_rope_kv_* was written so and launched without it); and every
// kernel pdlKernel names must wait.
func TestPDLKernelsWait(t *testing.T) {
	files, _ := filepath.Glob("kernels/*.cu")
	if len(files) == 0 {
		t.Fatal("no kernels/*.cu")
	}
	bodies := map[string]string{} // device functions and kernels by name
	kernels := map[string]bool{}
	bounds := regexp.MustCompile(`__launch_bounds__\([^)]*\)`)
	defRE := regexp.MustCompile(`extern "C" __global__|\bDEVI\b|__device__`)
	ident := regexp.MustCompile(`(\w+)\s*$`)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := bounds.ReplaceAllStringFunc(string(src), func(m string) string { return strings.Repeat(" ", len(m)) })
		for _, m := range defRE.FindAllStringIndex(s, -1) {
			if strings.HasPrefix(s[max(0, m[0]-8):m[0]], "#define ") {
				continue
			}
			paren := strings.IndexByte(s[m[1]:], '(')
			if paren < 0 {
				continue
			}
			paren += m[1]
			id := ident.FindStringSubmatch(s[m[1]:paren])
			if id == nil || strings.ContainsAny(s[m[1]:paren], ";{}") {
				continue
			}
			// the parameter list, then a body or a declaration's ';'
			i, depth := paren, 0
			for ; i < len(s); i++ {
				if s[i] == '(' {
					depth++
				} else if s[i] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			rest := strings.TrimLeft(s[i+1:], " \t\n")
			if !strings.HasPrefix(rest, "{") {
				continue
			}
			open := len(s) - len(rest)
			depth = 0
			for j := open; j < len(s); j++ {
				if s[j] == '{' {
					depth++
				} else if s[j] == '}' {
					if depth--; depth == 0 {
						bodies[id[1]] += s[open : j+1]
						break
					}
				}
			}
			if strings.HasPrefix(s[m[0]:m[1]], "extern") {
				kernels[id[1]] = true
			}
		}
	}
	waits := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name, body := range bodies {
			if waits[name] {
				continue
			}
			w := strings.Contains(body, "pdl_wait()")
			for callee := range waits {
				if !w && callee != name && regexp.MustCompile(`\b`+callee+`\s*[(<]`).MatchString(body) {
					w = true
				}
			}
			if w && name != "pdl_wait" {
				waits[name], changed = true, true
			}
		}
	}
	checked := 0
	for name := range kernelSig {
		if experimentKernels[name] {
			continue
		}
		if !kernels[name] {
			t.Errorf("kernel %s has a signature but no definition in kernels/*.cu", name)
			continue
		}
		checked++
		if waits[name] != pdlKernel(name) {
			t.Errorf("kernel %s: waits with pdl_wait %v, launched with PDL %v", name, waits[name], pdlKernel(name))
		}
	}
	if checked < 100 {
		t.Errorf("checked %d kernels: the definitions were not found", checked)
	}
}

// TestPDLOnlyHopper: programmatic dependent launch is on for sm_90 alone.
// Ampere and Ada have no griddepcontrol; a Blackwell GPU (sm_100, sm_120)
// JIT-compiles the fatbin's compute_80 PTX, whose kernels never wait, so
// early dependents there would read their inputs before they are written.
func TestPDLOnlyHopper(t *testing.T) {
	for _, c := range []struct {
		major int
		ex    bool
		env   string
		want  bool
	}{
		{8, true, "", false}, {9, true, "", true}, {9, true, "1", true}, {9, true, "0", false},
		{9, false, "", false}, {10, true, "", false}, {12, true, "", false},
	} {
		if got := pdlOn(c.major, c.ex, c.env); got != c.want {
			t.Errorf("pdlOn(%d, %v, %q) = %v, want %v", c.major, c.ex, c.env, got, c.want)
		}
	}
}

// TestAblateList: UPG_CUDA_ABLATE's prefixes, and which launches they leave out.
func TestAblateList(t *testing.T) {
	if l := prefixList(""); l != nil {
		t.Errorf("prefixList(\"\") = %q, want nil", l)
	}
	l := prefixList(" upg_rms_rotq, ,upg_attn,")
	if want := []string{"upg_rms_rotq", "upg_attn"}; !slices.Equal(l, want) {
		t.Fatalf("prefixList = %q, want %q", l, want)
	}
	d := &Device{ablate: l}
	for name, want := range map[string]bool{"upg_rms_rotq": true, "upg_attn_rotq_f16": true, "upg_swiglu_rotq": false, "upg_gemv_k3_g1_t1": false} {
		if got := d.ablated(name); got != want {
			t.Errorf("ablated(%s) = %v, want %v", name, got, want)
		}
	}
	// a kernel's rotation only: the kernel itself is still launched, with
	// no signs and Hadamard blocks of 1 in its rotq_tail arguments
	d = &Device{ablate: prefixList("upg_swiglu_rotq:rotation")}
	if d.ablated("upg_swiglu_rotq") || d.rotates("upg_swiglu_rotq") || !d.rotates("upg_rms_rotq") || !(&Device{}).rotates("upg_swiglu_rotq") {
		t.Errorf("rotation switch: ablated %v, rotates swiglu %v, rms %v, without the switch %v; want false, false, true, true",
			d.ablated("upg_swiglu_rotq"), d.rotates("upg_swiglu_rotq"), d.rotates("upg_rms_rotq"), (&Device{}).rotates("upg_swiglu_rotq"))
	}
	g := &DenseGPU{signs: 0x1000, plan: quantPlan{rb: 1024, gs: 128, seg: 1024}}
	for _, rotate := range []bool{true, false} {
		a := g.rotqTail(&Scratch{}, rotate)
		wantSigns, wantRB := Ptr(0x1000), I32(1024)
		if !rotate {
			wantSigns, wantRB = Ptr(0), I32(1)
		}
		if a[0] != wantSigns || a[1] != wantRB || a[2] != I32(128) || a[3] != I32(1024) {
			t.Errorf("rotqTail(rotate %v) = %v, want signs %v, rb %v, then gs 128 and seg 1024", rotate, a[:4], wantSigns, wantRB)
		}
		// the cluster kernel's tail: the same arguments without seg, in its signature's kinds
		c := g.clusterTail(&Scratch{}, rotate)
		want := append(append([]Arg{}, a[:3]...), a[4:]...)
		if !slices.Equal(c, want) {
			t.Errorf("clusterTail(rotate %v) = %v, want rotqTail without seg %v", rotate, c, want)
		}
		sig := strings.Fields(kernelSig["upg_attn_cluster_rotq_f16_h128"])
		sig = sig[len(sig)-len(c):]
		for i, f := range sig {
			if f[len(f)-1] != c[i].kind || !strings.HasPrefix(f, []string{"signs", "rb", "gs", "C", "G", "alpha", "beta", "xr", "xq", "ldq", "fac"}[i]+":") {
				t.Errorf("clusterTail argument %d has kind %c, the kernel's is %s", i, c[i].kind, f)
			}
		}
	}
}

// TestAttnClusterMaxOf: UPG_CUDA_ATTN_CLUSTER's parsing, and the cluster
// launch attribute only for the cluster kernels.
func TestAttnClusterMaxOf(t *testing.T) {
	for env, want := range map[string]int{"": attnClusterDefault, "x": attnClusterDefault, "-1": attnClusterDefault,
		"0": 0, "512": 512, "2048": attnClusterLimit, "100000": attnClusterLimit} {
		if got := attnClusterMaxOf(env); got != want {
			t.Errorf("attnClusterMaxOf(%q) = %d, want %d", env, got, want)
		}
	}
	for name, want := range map[string]uint32{"upg_attn_cluster_rotq_f16_h128": attnClusterSize, "upg_attn_rotq_f16": 1, "upg_gemv_k3_g1_t1": 1} {
		if got := clusterOf(name); got != want {
			t.Errorf("clusterOf(%q) = %d, want %d", name, got, want)
		}
	}
}
