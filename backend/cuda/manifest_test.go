package cuda

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const rebuild = "run scripts/build-cuda.sh on a machine with nvcc 13 and commit kernels.fatbin and kernels.manifest.json"

// TestManifestSources fails when a kernel source or the build script changed
// without the fatbin being rebuilt.
func TestManifestSources(t *testing.T) {
	m, err := LoadManifest()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("kernels/*.cu*")
	if len(files) == 0 {
		t.Fatal("no kernel sources")
	}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		seen[name] = true
		if got, want := sha256Hex(b), m.Sources[name]; got != want {
			t.Errorf("%s changed since the kernels were built (sha256 %s, manifest %q): %s", f, got, want, rebuild)
		}
	}
	for name := range m.Sources {
		if !seen[name] {
			t.Errorf("manifest lists kernels/%s, which is gone: %s", name, rebuild)
		}
	}
	script, err := os.ReadFile("../../scripts/build-cuda.sh")
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256Hex(script); got != m.ScriptSHA256 {
		t.Errorf("scripts/build-cuda.sh changed since the kernels were built: %s", rebuild)
	}
	if !strings.Contains(m.NVCC, "13.") || !strings.Contains(m.Flags, "sm_80") || !strings.Contains(m.Flags, "sm_90") || !strings.Contains(m.Flags, "code=compute_80") {
		t.Errorf("manifest nvcc %q flags %q: want nvcc 13, sm_80..sm_90 machine code and compute_80 PTX", m.NVCC, m.Flags)
	}
}

// TestManifestOutputs checks the embedded fatbin against the manifest.
func TestManifestOutputs(t *testing.T) {
	m, err := LoadManifest()
	if err != nil {
		t.Fatal(err)
	}
	o, ok := m.Outputs["kernels.fatbin"]
	if !ok {
		t.Fatal("manifest has no kernels.fatbin entry")
	}
	if len(fatbin) != o.Bytes || sha256Hex(fatbin) != o.SHA256 {
		t.Fatalf("embedded kernels.fatbin (%d bytes, sha256 %s) does not match the manifest (%d bytes, %s): %s",
			len(fatbin), sha256Hex(fatbin), o.Bytes, o.SHA256, rebuild)
	}
	for name := range kernelSig {
		if experimentKernels[name] {
			if _, ok := m.Kernels[name]; ok {
				t.Errorf("%s is in the committed fatbin's manifest: drop it from experimentKernels", name)
			}
			continue
		}
		arches := m.Kernels[name]
		for _, a := range []string{"sm_80", "sm_86", "sm_89", "sm_90"} {
			r, ok := arches[a]
			if !ok {
				t.Errorf("manifest has no %s build of %s", a, name)
				continue
			}
			if r.SpillStores > 0 || r.SpillLoads > 0 {
				t.Logf("note: %s spills on %s (%d/%d bytes)", name, a, r.SpillStores, r.SpillLoads)
			}
		}
	}
}

var (
	defineRE = regexp.MustCompile(`(?m)^#define\s+(\w+)\s+((?:.*\\\n)*.*)$`)
	kernelRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(([^)]*)\)`)
)

// parseKernels returns each extern "C" kernel's parameters as "name:kind".
// Macros are shared across the files (upg.cu includes them all into one
// translation unit).
func parseKernels(t *testing.T) map[string]string {
	files, _ := filepath.Glob("kernels/*.cu*")
	// the persistent step's kernel, not yet in the committed fatbin (pstep.go)
	files = append(files, "experiments/pstep.cu")
	out := map[string]string{}
	macros := map[string]string{}
	var srcs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, string(b))
		for _, m := range defineRE.FindAllStringSubmatch(string(b), -1) {
			macros[m[1]] = strings.ReplaceAll(m[2], "\\\n", " ")
		}
	}
	for _, src := range srcs {
		for _, m := range kernelRE.FindAllStringSubmatch(src, -1) {
			var sig []string
			for _, p := range expandParams(strings.TrimSpace(m[2]), macros) {
				p = strings.TrimSpace(strings.ReplaceAll(p, "__restrict__", ""))
				if p == "" || p == "void" {
					continue
				}
				i := strings.LastIndexAny(p, " *&")
				name, typ := p[i+1:], strings.TrimSpace(p[:i+1])
				sig = append(sig, name+":"+string(cKind(t, typ)))
			}
			out[m[1]] = strings.Join(sig, " ")
		}
	}
	return out
}

// expandParams splits a kernel's parameter list at its commas, replacing
// a parameter that is a macro's name (GEMV_ARGS) by the macro's parameters,
// which may name macros in turn (GEMV1_ARGS).
func expandParams(params string, macros map[string]string) []string {
	var out []string
	for _, p := range strings.Split(params, ",") {
		if v, ok := macros[strings.TrimSpace(p)]; ok {
			out = append(out, expandParams(v, macros)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func cKind(t *testing.T, typ string) byte {
	typ = strings.Join(strings.Fields(strings.ReplaceAll(typ, "const", "")), " ")
	switch {
	case strings.HasSuffix(typ, "*"):
		return 'p'
	case typ == "int" || typ == "int32_t":
		return 'i'
	case typ == "unsigned" || typ == "unsigned int" || typ == "uint32_t":
		return 'u'
	case typ == "float":
		return 'f'
	case typ == "long long" || typ == "int64_t" || typ == "size_t":
		return 'l'
	}
	t.Fatalf("kernel parameter type %q has no Go argument kind", typ)
	return 0
}

// TestKernelSignatures checks every kernel's parameter list against the
// Go launch wrappers' table (names, order and kinds), both ways.
func TestKernelSignatures(t *testing.T) {
	src := parseKernels(t)
	var names []string
	for n := range src {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		want, ok := kernelSig[n]
		if !ok {
			t.Errorf("kernel %s has no Go launch wrapper signature", n)
			continue
		}
		if src[n] != want {
			t.Errorf("kernel %s parameters differ:\n  .cu: %s\n  Go:  %s", n, src[n], want)
		}
	}
	for n := range kernelSig {
		if _, ok := src[n]; !ok {
			t.Errorf("Go signature for %s, which no kernel source declares", n)
		}
	}
	if len(names) < 4 {
		t.Fatalf("found only %d kernels: parser broken?", len(names))
	}
}
