package compress_test

import (
	"testing"

	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/upgfile"
)

// TestTokenWeightsTinyStories runs --token-weights end to end on
// TinyStories-656K (tied embedding and head, 2048 tokens) at 4.0 bpw,
// calibrated on two sequences of 256 tokens of the five shared TinyStories
// (all the text allows with a held-out sequence), and compares the
// compressor's held-out measurement with the run without: the same plan
// (file sizes alike), the provenance says so, and on this one held-out
// sequence of 256 tokens the KLDs are alike (measured 0.3482 without, 0.3472
// with; top-1 0.622 and 0.512; 0.3608 and 0.3917 before the planner
// estimated errors after GPTQ; before the header was planned to the byte,
// with about 12 KB (4%) fewer bytes: 0.5778 and 0.5958): token frequencies estimated from
// 512 tokens carry little; with 8192 tokens of calibration the weights lower
// the KLD on 29,835 held-out tokens, docs/benchmarks.md).
func TestTokenWeightsTinyStories(t *testing.T) {
	run := func(tw bool) (*compress.Report, string) {
		return tinyStoriesRun(t, compress.Options{TargetBPW: 4.0, TokenWeights: tw})
	}
	def, _ := run(false)
	tw, path := run(true)
	t.Logf("held-out KLD: without %.4f (top-1 %.3f), with token weights %.4f (top-1 %.3f); bytes %d, %d",
		def.Quality.KLDMean, def.Quality.Top1Agreement, tw.Quality.KLDMean, tw.Quality.Top1Agreement, def.FileBytes, tw.FileBytes)
	if d := def.FileBytes - tw.FileBytes; d < -64 || d > 64 {
		t.Errorf("file sizes %d and %d differ by more than the header's slack", def.FileBytes, tw.FileBytes)
	}
	if k := def.Quality.KLDMean; k < 0.33 || k > 0.37 {
		t.Errorf("without token weights: held-out KLD %.4f, measured 0.3482", k)
	}
	if k := tw.Quality.KLDMean; k < 0.33 || k > 0.37 {
		t.Errorf("token weights: held-out KLD %.4f, measured 0.3472", k)
	}
	r, err := upgfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if s := provenanceSettings(t, r); s["token_weights"] != true {
		t.Errorf("provenance settings %v lack token_weights", s)
	}
}
