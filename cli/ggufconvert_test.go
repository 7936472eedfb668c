package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

// TestQuantizedGGUFConvertedOnce: `upg run` on a quantized GGUF that is to
// be converted (UPG_GGUF_CONVERT=always stands in for a file too large to
// dequantize in memory) converts it once through the real compressor into
// $UPG_CACHE, saying where, at what rate and what it costs, with progress;
// the next run loads the cached .upg and says so; both print what the
// cached .upg prints when run directly, which starts as the GGUF's own
// greedy text does. `upg eval` scores the GGUF itself, never the conversion.
func TestQuantizedGGUFConvertedOnce(t *testing.T) {
	testutil.NeedData(t, q4kmGGUF, miniphi)
	cache := t.TempDir()
	env := []string{"UPG_CACHE=" + cache, "UPG_GGUF_CONVERT=always", "UPG_PROGRESS_EVERY=1s"}
	args := []string{"run", "--model", q4kmGGUF, "--temperature", "0", "-n", "16", "package main"}

	first := upgEnv(t, env, args...)
	wantOK(t, first, -1)
	for _, s := range []string{"converting the quantized GGUF once into a cached .upg", "cache=" + filepath.Join(cache, "gguf"),
		`target_bpw="5.09 (the GGUF's own`, `disk="about 18.4 MB"`, "time=\"roughly ", "converting: started", "converting: 28842496/28842496 parameters (100%)",
		"conversion done"} {
		if !strings.Contains(first.stderr, s) {
			t.Errorf("first run's stderr lacks %q\n%s", s, first.stderr)
		}
	}
	cached, _ := filepath.Glob(filepath.Join(cache, "gguf", "*"))
	if len(cached) != 1 || !strings.HasSuffix(cached[0], ".upg") {
		t.Fatalf("cache holds %v, want one .upg", cached)
	}

	second := upgEnv(t, env, args...)
	wantOK(t, second, -1)
	if !strings.Contains(second.stderr, "running the cached .upg conversion of this quantized GGUF") || strings.Contains(second.stderr, "converting") {
		t.Errorf("second run should load the cached .upg without converting\n%s", second.stderr)
	}
	direct := upg(t, "run", "--model", cached[0], "--temperature", "0", "-n", "16", "package main")
	wantOK(t, direct, -1)
	if first.stdout != direct.stdout || second.stdout != direct.stdout {
		t.Errorf("greedy text: first run %q, second %q, the cached .upg run directly %q", first.stdout, second.stdout, direct.stdout)
	}
	exact := upgEnv(t, []string{"UPG_CACHE=" + cache, "UPG_GGUF_CONVERT=never"}, args...)
	wantOK(t, exact, -1)
	if n := len(commonPrefix(exact.stdout, direct.stdout)); n < 8 {
		t.Errorf("converted model's greedy text %q shares only %d bytes with the GGUF's own %q", direct.stdout, n, exact.stdout)
	}

	text := filepath.Join(t.TempDir(), "text.txt")
	b, err := os.ReadFile(filepath.Join(miniphi, "..", "..", "corpus", "miniphi_eval.txt"))
	if err != nil {
		b = []byte(strings.Repeat(direct.stdout+" package main\n", 40))
	}
	if err := os.WriteFile(text, b[:min(len(b), 3000)], 0o644); err != nil {
		t.Fatal(err)
	}
	ev := upgEnv(t, []string{"UPG_CACHE=" + t.TempDir(), "UPG_GGUF_CONVERT=always"}, "eval", "--model", q4kmGGUF, "--ref", miniphi, "--text", text, "--ctx", "128")
	wantOK(t, ev, -1)
	if st, err := os.Stat(q4kmGGUF); err != nil || strings.Contains(ev.stderr, "convert") || !strings.Contains(ev.stdout, strconv.FormatInt(st.Size(), 10)+" bytes") {
		t.Errorf("eval should score the GGUF itself\n%s", ev)
	}
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}
