package compress_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/eval"
	"github.com/upg-ai/upg/internal/testutil"
)

const miniphi = "../../shared/models/miniphi-29m"

// need skips a test whose shared data is absent, and fails it under CI=true.
func need(t *testing.T, path string) {
	t.Helper()
	testutil.NeedData(t, path)
}

// TestCompressEvalMiniphi is the end-to-end check of issue 3: compress the
// real model at 4 bits per weight with calibration, reload the file, and
// compare it with the original on held-out text.
func TestCompressEvalMiniphi(t *testing.T) {
	need(t, miniphi)
	if testing.Short() {
		t.Skip("compresses a 29M-parameter model (a few minutes on 2 cores)")
	}
	calib, err := os.ReadFile("../models/calib/miniphi-calib.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m.upg")
	rep, err := compress.Run(miniphi, out, compress.Options{TargetBPW: 4, CalibText: string(calib), CalibTokens: 1024, CalibCtx: 512})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	bpw := float64(st.Size()*8) / float64(rep.Parameters)
	t.Logf("%d bytes, %.3f bpw all-in", st.Size(), bpw)
	if bpw > 4 || rep.FileBytes != st.Size() {
		t.Errorf("file is %.4f bpw (report says %d bytes, file has %d), want ≤ 4", bpw, rep.FileBytes, st.Size())
	}

	m, err := engine.Load(out, engine.Options{Ctx: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Checkpoint.Upgfile().Verify(); err != nil {
		t.Fatal(err)
	}
	ref, err := engine.Load(miniphi, engine.Options{Ctx: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	text, err := os.ReadFile("../../shared/corpus/miniphi_eval_250k.txt")
	if err != nil {
		t.Fatal(err)
	}
	toks := ref.Tokenizer.Encode(string(text[:24000]), false, false)
	res, err := eval.Compare(m.Model, ref.Model, toks, 256, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PPL %.3f (ref %.3f), KLD %.4f, top-1 %.2f%% over %d tokens", res.PPL, res.RefPPL, res.KLDMean, 100*res.Top1, res.Tokens)
	if res.Top1 < 0.90 {
		t.Errorf("top-1 agreement %.2f%% < 90%%", 100*res.Top1)
	}
	if res.PPLRatio > 1.05 || res.PPLRatio < 0.95 {
		t.Errorf("PPL ratio %.4f is far from 1 at 4 bits per weight", res.PPLRatio)
	}
	// The compressor's own quality measurement (recorded in the file) is on
	// the calibration text's next 512 tokens; upg eval's scoring of the
	// same tokens, through the written file, must agree.
	q := rep.Quality
	if q == nil {
		t.Fatal("the report has no quality measurement although the calibration text has a held-out sequence")
	}
	held := ref.Tokenizer.Encode(string(calib), false, false)[1024:1536]
	hr, err := eval.Compare(m.Model, ref.Model, held, 512, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out: compressor KLD %.5f top-1 %.4f PPL ratio %.5f; eval KLD %.5f top-1 %.4f PPL ratio %.5f",
		q.KLDMean, q.Top1Agreement, q.PPLRatio, hr.KLDMean, hr.Top1, hr.PPLRatio)
	if q.ScoredTokens != hr.Tokens || math.Abs(q.KLDMean-hr.KLDMean) > 1e-3+0.02*hr.KLDMean ||
		math.Abs(q.Top1Agreement-hr.Top1) > 0.01 || math.Abs(q.PPLRatio-hr.PPLRatio) > 1e-3 {
		t.Errorf("compressor's quality (%d tokens, KLD %.5f, top-1 %.4f, PPL ratio %.5f) differs from eval's (%d tokens, %.5f, %.4f, %.5f)",
			q.ScoredTokens, q.KLDMean, q.Top1Agreement, q.PPLRatio, hr.Tokens, hr.KLDMean, hr.Top1, hr.PPLRatio)
	}
}

// TestCompressFailureLeavesNoFile: a target below what the smallest
// encodings need fails before any work (no progress reported), names the
// least rate that could be asked for, leaves no output file and keeps an
// existing one intact. (TestLateFailureKeepsOutput fails a run after its
// planning.)
func TestCompressFailureLeavesNoFile(t *testing.T) {
	need(t, miniphi)
	dir := t.TempDir()
	out := filepath.Join(dir, "m.upg")
	worked := false
	opts := compress.Options{TargetBPW: 0.5, Progress: func(int64, int64, string) { worked = true }}
	_, err := compress.Run(miniphi, out, opts)
	if err == nil {
		t.Fatal("compressing to 0.5 bits per weight succeeded")
	}
	// miniphi's smallest encodings (2-bit Lloyd codes in groups of 256)
	// with its float32 norms: 7,461,312 bytes, 2.070 bits per weight
	if want := "need at least 2.070 bits per weight (7461312 bytes), over the 0.500 asked: raise --target-bpw"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if worked {
		t.Error("the run reported progress before refusing its target")
	}
	if _, statErr := os.Stat(out); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("a failed run left %s behind (%v)", out, statErr)
	}
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := compress.Run(miniphi, out, compress.Options{TargetBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "over the 1048576-byte target: raise --target-size") {
		t.Errorf("a 1 MiB target: %v", err)
	}
	compress.KeptOutput(t, dir, out)
}

// TestCompressMissingDirFailsFirst: an output directory that does not exist
// fails before any work (no progress reported), naming the output.
func TestCompressMissingDirFailsFirst(t *testing.T) {
	need(t, miniphi)
	out := filepath.Join(t.TempDir(), "missing", "m.upg")
	worked := false
	_, err := compress.Run(miniphi, out, compress.Options{TargetBPW: 3.2, Progress: func(int64, int64, string) { worked = true }})
	if err == nil || !strings.Contains(err.Error(), out) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("compressing into a missing directory: %v", err)
	}
	if worked {
		t.Error("the run reported progress before finding its output directory missing")
	}
}
