package compress_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/internal/testutil"
)

// TestOutputTargetsTinyStories runs the opt-in path (per-stage Hessians and
// output targets) end to end on TinyStories-656K, calibrated on two
// sequences of 256 tokens of the five shared TinyStories, and compares the
// compressor's held-out measurement with the default path's. With so few
// tokens for inputs of 128 and 384 columns the fitted maps overfit: the
// held-out KLD is worse (measured 0.1540 without, 0.3529 with; 0.1738 and
// 0.3254 before the planner estimated errors after GPTQ; 0.2040 and
// 0.3366 before the header was planned to the byte, with 8 KB fewer bytes;
// with 8192 tokens of calibration the same model improves,
// docs/benchmarks.md). The overfit maps follow the CPU kernels' rounding
// of the calibration passes: on an AVX2-only AMD EPYC the same run gives
// 0.1638 and 0.2539 (UPG_KERNEL=generic: 0.1591 and 0.3082), so the test
// asks for the overfitting (at least 1.4 times the default's KLD), not for
// one machine's value.
func TestOutputTargetsTinyStories(t *testing.T) {
	run := func(ot bool) *compress.Report {
		rep, _ := tinyStoriesRun(t, compress.Options{TargetBPW: 4.6, OutputTargets: ot})
		return rep
	}
	def, ot := run(false), run(true)
	t.Logf("held-out KLD: default %.4f (top-1 %.3f), output targets %.4f (top-1 %.3f); bytes %d, %d",
		def.Quality.KLDMean, def.Quality.Top1Agreement, ot.Quality.KLDMean, ot.Quality.Top1Agreement, def.FileBytes, ot.FileBytes)
	// The same plan: the two files differ only in the encoded values.
	if d := def.FileBytes - ot.FileBytes; d < -64 || d > 64 {
		t.Errorf("file sizes %d and %d differ by more than the header's slack", def.FileBytes, ot.FileBytes)
	}
	if k := def.Quality.KLDMean; k < 0.13 || k > 0.18 {
		t.Errorf("default path: held-out KLD %.4f, measured 0.1540", k)
	}
	if k := ot.Quality.KLDMean; k < 1.4*def.Quality.KLDMean || k > 0.45 {
		t.Errorf("output targets: held-out KLD %.4f, want at least 1.4x the default's %.4f and at most 0.45 (measured 0.2539-0.3529 by kernel path: overfitting)", k, def.Quality.KLDMean)
	}
}

// tinyStoriesRun compresses TinyStories-656K with the trellis codec,
// calibrated on two sequences of 256 tokens of the five shared TinyStories
// (the rest of the text is the compressor's held-out measurement), with
// opts' rate and switches, and returns the report and the file.
func tinyStoriesRun(t *testing.T, opts compress.Options) (*compress.Report, string) {
	t.Helper()
	text := tinyStoriesText(t)
	opts.CalibText, opts.CalibTokens, opts.CalibCtx, opts.Family, opts.Threads = string(text), 512, 256, "trellis", 2
	out := filepath.Join(t.TempDir(), "ts.upg")
	rep, err := compress.Run(tinyStories, out, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Quality == nil {
		t.Fatal("no held-out measurement")
	}
	return rep, out
}

// tinyStories is TinyStories-656K; tinyStoriesText returns the five shared
// TinyStories its compression tests calibrate on (both required).
const tinyStories = "../../shared/models/TinyStories-656K"

func tinyStoriesText(t *testing.T) string {
	t.Helper()
	const path = "../../shared/corpus/cs336_tinystories_sample.txt"
	testutil.NeedData(t, tinyStories, path)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}
