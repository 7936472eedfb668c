// Package compress turns a checkpoint into a .upg file at a target number of
// bits per weight (all bytes of the file counted). It streams: one layer's
// weights are decoded, calibrated, encoded and written at a time, so memory
// does not grow with the number of layers.
//
// The pipeline:
//  1. Calibration tokens run through the original model once, recording the
//     per-column activation energy (diag of H = E[x xᵀ]) at every projection
//     input.
//  2. A planner estimates, for every 2-D tensor and every candidate encoding,
//     the relative error on a sample of rows — for the tensors GPTQ will
//     encode, after GPTQ's error feedback on the original model's Hessian of
//     the tensor's input, in the output metric tr(ΔW H ΔWᵀ); elsewhere of
//     round to nearest, energy-weighted — scales it by the KL divergence a
//     probe measures per unit of error, and allocates bytes across tensors
//     (greedy on error reduction per byte) to meet the budget exactly.
//  3. Layer by layer, on hidden states that already went through the
//     compressed earlier layers, each projection's full Hessian is collected
//     and the tensor is encoded with GPTQ-style error compensation (with
//     Options.OutputTargets, towards the original model's outputs instead
//     of the projection's own weights: see outputTarget). With
//     Options.TokenWeights the rows of the embedding and the head (tokens)
//     are weighted by the original model's mean token probability on the
//     calibration text (tokenRowWeights).
package compress

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
	"github.com/upg-ai/upg/upgfile"
)

// Version is the compressor version recorded in provenance.
const Version = "0.1.0"

// Options configure a compression run.
type Options struct {
	TargetBPW   float64 // all-in bits per weight of the output file
	TargetBytes int64   // if positive: the largest file size in bytes, all-in, instead of TargetBPW
	CalibText   string  // calibration text (not the evaluation text!); empty = no calibration
	CalibTokens int     // calibration tokens to use (default 4096)
	CalibCtx    int     // tokens per calibration sequence (default 512)
	Family      Family  // codec family for 2-D weights (default "auto")
	NoGPTQ      bool    // plain round-to-nearest even with calibration
	// OutputTargets makes each projection approximate the original
	// model's output from the compressed model's inputs (outputTarget)
	// instead of its own weights, with each stage's Hessian collected
	// through the layer as compressed so far (calibrated runs only). Off
	// by default: it helped TinyStories-656K and hurt miniphi-29m
	// (docs/benchmarks.md).
	OutputTargets bool
	// TokenWeights weights the rows of the token embedding and the output
	// head (one row per token) by the token's mean probability under the
	// original model on the calibration text, so that the trellis search
	// spends each tile's freedom on frequent tokens (tokenRowWeights).
	TokenWeights bool
	// Residual is the residual stream's form in the output: the
	// checkpoint's (ResidualPlain, the zero value), or the model rewritten
	// into its equivalent with a rotated residual stream before it is
	// compressed (residual.go: the norms lose their gains, and the matrices
	// that read them need no input rotation at run time) — always
	// (ResidualRotated, an error for a model that cannot take it) or where
	// the model can take it (ResidualAuto, upg compress's default).
	Residual ResidualForm
	Threads  int
	// Progress reports work done in parameters (for a progress bar with ETA).
	Progress func(done, total int64, stage string)
}

// TensorReport describes how one tensor was stored.
type TensorReport struct {
	Name     string       `json:"name"`
	Shape    []int        `json:"shape"`
	Encoding string       `json:"encoding"`
	Params   codec.Params `json:"params"`
	Bytes    int64        `json:"bytes"`
	BPW      float64      `json:"bpw"`
	RelErr   float64      `json:"rel_output_error,omitempty"` // tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) on calibration data
}

// Report summarises a run.
type Report struct {
	Source       string         `json:"source"`
	Output       string         `json:"output"`
	Parameters   int64          `json:"parameters"`
	FileBytes    int64          `json:"file_bytes"`
	BPW          float64        `json:"bpw"`
	RatioFP32    float64        `json:"ratio_fp32"`
	RatioSource  float64        `json:"ratio_source"`
	SourceBytes  int64          `json:"source_bytes"`
	Elapsed      time.Duration  `json:"elapsed_ns"`
	ParamsPerSec float64        `json:"params_per_sec"`
	CalibTokens  int            `json:"calib_tokens"`
	PeakRSS      int64          `json:"peak_rss_bytes"`    // of the whole process (VmHWM), 0 where unknown
	Quality      *Quality       `json:"quality,omitempty"` // measured on held-out calibration text, when there was some
	Tensors      []TensorReport `json:"tensors"`

	// ResidualStream is "rotated" or "plain" (Options.Residual); PlainWhy
	// says why ResidualAuto kept a model's stream plain.
	ResidualStream string `json:"residual_stream"`
	PlainWhy       string `json:"residual_plain_why,omitempty"`
}

// Run compresses the checkpoint at src into out.
func Run(src, out string, opts Options) (*Report, error) {
	start := time.Now()
	if opts.TargetBytes < 0 || (opts.TargetBytes == 0 && (opts.TargetBPW <= 0 || opts.TargetBPW > 32)) {
		return nil, fmt.Errorf("target bits per weight %.3g must be in (0, 32] (or give a target size in bytes)", opts.TargetBPW)
	}
	if opts.CalibTokens <= 0 {
		opts.CalibTokens = 4096
	}
	if opts.CalibCtx <= 0 {
		opts.CalibCtx = 512
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.Progress == nil {
		opts.Progress = func(int64, int64, string) {}
	}
	if os.Getenv("GOGC") == "" {
		// The heap is a few huge pointer-free matrices (Hessians, factors,
		// float copies of weights), cheap to mark: collect at 10% growth,
		// not at Go's default 100%, which would keep as much garbage
		// resident as there is live data (gigabytes at Phi-4's widths; a
		// Phi-4-wide layer peaked at 13.3 GB with 100%, 11.1 with 25%,
		// 10.1 with 10%, no slower: docs/benchmarks.md).
		defer debug.SetGCPercent(debug.SetGCPercent(10))
	}
	ck, err := checkpoint.Open(src)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if ck.Format == "upg" {
		return nil, fmt.Errorf("%s is already compressed; compress the original checkpoint", src)
	}
	cfg := ck.Config
	var roles *residualRoles
	plainWhy := "" // why ResidualAuto kept the stream plain
	if opts.Residual != ResidualPlain {
		rs, err := newRotatedSource(cfg, ck.Tensors)
		switch {
		case err == nil:
			ck.Tensors, roles = rs, rs.roles
		case opts.Residual == ResidualAuto:
			plainWhy = err.Error()
			slog.Info("residual stream kept plain", "model", src, "reason", plainWhy)
		default:
			return nil, fmt.Errorf("%s: %w", src, err)
		}
	}
	// An impossible target fails here, before calibration and planning
	// (on a 14B model, minutes to hours of work) rather than after them.
	if err := checkReachable(ck.Tensors, opts); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	// The output's temporary file now too, so that an output directory
	// that is missing or not writable fails before the work.
	w, err := upgfile.Create(out)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	tok, err := ck.Tokenizer()
	if err != nil {
		return nil, err
	}
	tokFiles, err := tokenizerFiles(ck)
	if err != nil {
		return nil, err
	}

	// The weights, still uncompressed (views into the mapped source).
	weights, err := model.LoadWeights(cfg, ck.Tensors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	be := cpu.New(opts.Threads)
	defer be.Close()
	m, err := model.New(cfg, weights, be)
	if err != nil {
		return nil, err
	}

	// Calibration sequences.
	var seqs [][]int
	var holdout []int
	if strings.TrimSpace(opts.CalibText) != "" {
		ids := tok.Encode(opts.CalibText, false, false)
		for i := 0; i+opts.CalibCtx <= len(ids) && len(seqs)*opts.CalibCtx < opts.CalibTokens; i += opts.CalibCtx {
			seqs = append(seqs, ids[i:i+opts.CalibCtx])
		}
		if len(seqs) == 0 {
			return nil, fmt.Errorf("calibration text has %d tokens, fewer than one sequence of %d (give more text or a smaller --calib-ctx)", len(ids), opts.CalibCtx)
		}
		// The next sequence, if the text has one, is held out to measure
		// the result's quality.
		if i := len(seqs) * opts.CalibCtx; i+opts.CalibCtx <= len(ids) {
			holdout = ids[i : i+opts.CalibCtx]
		}
		if used := len(seqs) * opts.CalibCtx; used < opts.CalibTokens {
			slog.Warn("the calibration text is shorter than asked: calibrating on fewer tokens", "tokens_used", used,
				"tokens_asked", opts.CalibTokens, "text_tokens", len(ids), "sequence", opts.CalibCtx)
		}
		if holdout == nil {
			slog.Warn("the calibration text has no sequence left to hold out: the file's quality will not be measured",
				"text_tokens", len(ids), "needed", (len(seqs)+1)*opts.CalibCtx)
		}
	}
	names := ck.Tensors.Names()
	sort.Strings(names)
	var totalParams, sourceBytes int64
	for _, n := range names {
		info, _ := ck.Tensors.Info(n)
		k, _ := tensor.NumElements(info.Shape)
		totalParams += int64(k)
		sourceBytes += info.Bytes
	}
	lr, err := newLayerRunner(m, 2*opts.CalibCtx, opts.CalibCtx)
	if err != nil {
		return nil, err
	}
	c := &compressor{opts: opts, ck: ck, m: m, be: be, lr: lr, seqs: seqs, totalParams: totalParams, residual: roles}
	if holdout != nil {
		c.held = &heldOut{ids: holdout, x: make([]float32, len(holdout)*cfg.Hidden)}
	}

	// 1. Activation energy with the original model.
	if len(seqs) > 0 {
		if err := c.collectDiag(); err != nil {
			return nil, err
		}
	}
	// 2. Plan.
	var plans []*tensorPlan
	var planOf = map[string]*tensorPlan{}
	vectorBytes := map[string]int64{}
	for _, n := range names {
		shape, _ := ck.Tensors.Shape(n)
		if len(shape) != 2 {
			k, _ := tensor.NumElements(shape)
			vectorBytes[n] = int64(4 * k)
			continue
		}
		p := c.prePlans[n]
		if p == nil {
			if p, err = c.planTensor(n, shape[0], shape[1], nil, nil); err != nil {
				return nil, err
			}
		}
		// The sampled rows fault in (and read ahead) pages of the mapped
		// source; drop them so the resident set does not grow with the
		// number of tensors planned.
		ck.Release()
		plans = append(plans, p)
		planOf[n] = p
	}
	if len(seqs) > 0 && totalParams <= measuredSensitivityMaxParams {
		if err := c.measureSensitivity(plans); err != nil {
			return nil, err
		}
	}
	target := targetBytes(opts, totalParams)
	// The metadata, all but the measured quality and the features the
	// chosen codecs require, is known now: the header's size is planned
	// exactly (upgfile.HeaderSize), with the widest values of what is not.
	archJSON, _ := json.Marshal(cfg)
	genJSON, _ := json.Marshal(map[string]any{"eos_token_ids": cfg.EOS, "bos_token_id": cfg.BOS})
	srcHashes, err := sourceHashes(ck)
	if err != nil {
		return nil, err
	}
	created := time.Now().UTC().Format(time.RFC3339)
	metadata := func(quality any, requires []string) upgfile.Metadata {
		prov := map[string]any{
			"compressor": "upg " + Version, "source": filepath.Base(strings.TrimRight(src, "/")), "source_files": srcHashes,
			"settings": map[string]any{"target_bpw": opts.TargetBPW, "family": opts.Family, "calib_tokens": len(seqs) * opts.CalibCtx,
				"calib_ctx": opts.CalibCtx, "gptq": !opts.NoGPTQ && len(seqs) > 0, "calib_sha256": sha(opts.CalibText)},
			"created": created, "quality": quality,
		}
		if opts.TokenWeights && len(seqs) > 0 {
			prov["settings"].(map[string]any)["token_weights"] = true
		}
		if roles != nil {
			prov["settings"].(map[string]any)["rotate_residual"] = fmt.Sprintf("%#x", ResidualSeed)
		}
		if opts.TargetBytes > 0 {
			settings := prov["settings"].(map[string]any)
			delete(settings, "target_bpw")
			settings["target_bytes"] = opts.TargetBytes
		}
		provJSON, _ := json.Marshal(prov)
		return upgfile.Metadata{Architecture: archJSON, Tokenizer: tokFiles, ChatTemplate: ck.ChatTemplate,
			Generation: genJSON, Provenance: provJSON, Requires: requires}
	}
	header, err := headerEstimate(names, ck.Tensors.Shape, planOf, target, metadata(widestQuality(c.held != nil), allRequires(plans)))
	if err != nil {
		return nil, err
	}
	// fileSize is the exact size of the file for the current choices
	// (tensor data aligned as upgfile writes it), with the header estimate.
	fileSize := func() int64 {
		size := int64(32) // the preamble, which header counts too
		for _, n := range names {
			b := vectorBytes[n]
			if p := planOf[n]; p != nil {
				b = p.sizes[p.choice]
			}
			size = alignUp(size, upgfile.Alignment) + b
		}
		return size - 32 + header
	}
	budget := target - header
	for _, b := range vectorBytes {
		budget -= b
	}
	for range 50 {
		if _, err := allocate(plans, budget); err != nil {
			if opts.TargetBytes > 0 {
				return nil, fmt.Errorf("%w: raise --target-size", err)
			}
			return nil, fmt.Errorf("%w: raise --target-bpw", err)
		}
		over := fileSize() - target
		if over <= 0 {
			break
		}
		budget -= over
	}
	if fileSize() > target {
		if opts.TargetBytes > 0 {
			return nil, fmt.Errorf("cannot fit %d bytes: the smallest encodings plus metadata need %d bytes; raise --target-size", target, fileSize())
		}
		return nil, fmt.Errorf("cannot meet %.3f bits per weight: the smallest encodings plus metadata need %d bytes; raise --target-bpw", opts.TargetBPW, fileSize())
	}
	for _, p := range plans {
		slog.Debug("planned", "tensor", p.name, "choice", describe(p.cands[p.choice]), "est_rel_err", p.errs[p.choice],
			"weight", p.weight, "est_kl", p.weight*p.errs[p.choice], "probe_kl", p.sens)
	}
	slog.Info("bit allocation done", "tensors", len(plans), "planned_bytes", fileSize(), "target_bytes", target,
		"codecs", FamilyNote(opts.Family))

	// 3. Encode layer by layer and write.
	c.w = w
	c.planOf = planOf
	if err := c.encodeAll(names); err != nil {
		return nil, err
	}

	quality := widestQuality(false)
	if c.quality != nil {
		quality = c.quality
	}
	var requires []string
	for _, r := range c.reports {
		if f := r.Params.Requires(); f != "" && !slices.Contains(requires, f) {
			requires = append(requires, f)
		}
	}
	sort.Strings(requires)
	if err := w.SetMetadata(metadata(quality, requires)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	if st.Size() > target {
		// The header was planned with the widest stand-ins for what was not
		// known then (headerEstimate), so this should not happen.
		slog.Warn("the file is larger than the target: the header estimate was too small", "bytes", st.Size(), "target_bytes", target)
	}
	rep := &Report{Source: src, Output: out, Parameters: totalParams, FileBytes: st.Size(), SourceBytes: sourceBytes,
		Tensors: c.reports, Quality: c.quality, CalibTokens: len(seqs) * opts.CalibCtx, Elapsed: time.Since(start),
		ResidualStream: "plain", PlainWhy: plainWhy}
	if roles != nil {
		rep.ResidualStream = "rotated"
	}
	rep.BPW = float64(rep.FileBytes*8) / float64(totalParams)
	rep.RatioFP32 = float64(totalParams*4) / float64(rep.FileBytes)
	rep.RatioSource = float64(sourceBytes) / float64(rep.FileBytes)
	rep.ParamsPerSec = float64(totalParams) / rep.Elapsed.Seconds()
	rep.PeakRSS = sysmem.Self().PeakRSS
	return rep, nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// headerEstimate is the size of everything in the file but the tensors'
// data and padding (upgfile.HeaderSize) for metadata meta, with a
// directory entry for each of names whose codec parameters are the widest
// of its plan's candidates and whose offset, length and checksum are as
// wide as they can be in a file of target bytes.
func headerEstimate(names []string, shape func(string) ([]int, bool), planOf map[string]*tensorPlan, target int64, meta upgfile.Metadata) (int64, error) {
	entries := make([]upgfile.TensorEntry, len(names))
	for i, n := range names {
		sh, ok := shape(n)
		if !ok {
			return 0, fmt.Errorf("internal error: no shape for %s", n)
		}
		pj, _ := json.Marshal(codec.Params{Codec: "f32"})
		if p := planOf[n]; p != nil {
			pj = nil
			for _, cp := range p.cands {
				if b, _ := json.Marshal(cp); len(b) > len(pj) {
					pj = b
				}
			}
		}
		entries[i] = upgfile.TensorEntry{Name: n, Shape: sh, Params: pj, Offset: target, Length: target, CRC32C: math.MaxUint32}
	}
	return upgfile.HeaderSize(meta, entries)
}

// widestQuality is a stand-in for the provenance's quality as wide as it
// can be written: a measurement when there is held-out text, else the
// note that there was none.
func widestQuality(measured bool) any {
	if !measured {
		return "not measured: give --calib text longer than --calib-tokens by one --calib-ctx sequence"
	}
	const f = -1.2345678901234567e-100 // the widest float64 in JSON (and math.MaxInt the widest int, 64-bit or not)
	return &Quality{HeldOutTokens: math.MaxInt, ScoredTokens: math.MaxInt, PPL: f, RefPPL: f, PPLRatio: f, KLDMean: f, Top1Agreement: f}
}

// allRequires is every feature any candidate of plans requires, sorted.
func allRequires(plans []*tensorPlan) []string {
	var out []string
	for _, p := range plans {
		for _, cp := range p.cands {
			if f := cp.Requires(); f != "" && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}

// minimumBytes is a lower bound on the size of any file Run can write from
// tensors: every matrix at the smallest encoding of its family's ladder,
// every other tensor in float32, and the 32-byte preamble; the header and
// the alignment padding are left out. It also returns the parameter count.
func minimumBytes(tensors checkpoint.Source, family Family) (minBytes, params int64, err error) {
	minBytes = 32
	for _, n := range tensors.Names() {
		shape, ok := tensors.Shape(n)
		if !ok {
			return 0, 0, fmt.Errorf("tensor %s: no shape", n)
		}
		k, ok := tensor.NumElements(shape)
		if !ok {
			return 0, 0, fmt.Errorf("tensor %s: bad shape %v", n, shape)
		}
		params += int64(k)
		if len(shape) != 2 {
			minBytes += int64(4 * k)
			continue
		}
		cands, err := Ladder(family, shape[1])
		if err != nil {
			return 0, 0, err
		}
		least := int64(-1)
		for _, cp := range cands {
			size, err := codec.EncodedSize(cp, shape[0], shape[1])
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", n, err)
			}
			if least < 0 || size < least {
				least = size
			}
		}
		minBytes += least
	}
	return minBytes, params, nil
}

// checkReachable fails when the target is below minimumBytes, naming the
// least target that could be asked for.
func checkReachable(tensors checkpoint.Source, opts Options) error {
	least, params, err := minimumBytes(tensors, opts.Family)
	if err != nil {
		return err
	}
	if params == 0 {
		return fmt.Errorf("no tensors to compress")
	}
	target := targetBytes(opts, params)
	if target >= least {
		return nil
	}
	bpw := float64(least) * 8 / float64(params)
	if opts.TargetBytes > 0 {
		return fmt.Errorf("the smallest encodings need at least %d bytes (%.3f bits per weight), over the %d-byte target: raise --target-size", least, bpw, target)
	}
	return fmt.Errorf("the smallest encodings need at least %.3f bits per weight (%d bytes), over the %.3f asked: raise --target-bpw", bpw, least, opts.TargetBPW)
}

// targetBytes is the largest size of the output file: Options.TargetBytes
// where given, else TargetBPW bits for each of the model's parameters.
func targetBytes(opts Options, params int64) int64 {
	if opts.TargetBytes > 0 {
		return opts.TargetBytes
	}
	return int64(opts.TargetBPW * float64(params) / 8)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// tokenizerFiles collects the source's tokenizer files to embed. JSON files
// are stored gzip-compressed (name + ".gz"): they are large and compress ~6x.
func tokenizerFiles(ck *checkpoint.Checkpoint) (map[string][]byte, error) {
	files := map[string][]byte{}
	if ck.Format == "gguf" {
		vocab, err := ck.GGUFVocabFile()
		if err != nil {
			return nil, err
		}
		files["vocab.gguf.gz"] = gz(vocab)
		return files, nil
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(ck.Path, name))
		if err != nil {
			if name == "tokenizer.json" {
				return nil, fmt.Errorf("%s: no tokenizer.json to embed: %w", ck.Path, err)
			}
			continue
		}
		files[name+".gz"] = gz(b)
	}
	return files, nil
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// sourceHashes returns sha256 of every file in the source directory (or the file).
func sourceHashes(ck *checkpoint.Checkpoint) (map[string]string, error) {
	paths := []string{ck.Path}
	if st, err := os.Stat(ck.Path); err == nil && st.IsDir() {
		entries, err := os.ReadDir(ck.Path)
		if err != nil {
			return nil, err
		}
		paths = paths[:0]
		for _, e := range entries {
			if !e.IsDir() {
				paths = append(paths, filepath.Join(ck.Path, e.Name()))
			}
		}
	}
	out := map[string]string{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		out[filepath.Base(p)] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// compressor holds the state of one run.
type compressor struct {
	opts        Options
	ck          *checkpoint.Checkpoint
	m           *model.Model
	be          *cpu.Backend
	lr          *layerRunner
	seqs        [][]int
	totalParams int64
	done        int64
	diag        map[string][]float64 // tap key -> per-column activation energy
	planOf      map[string]*tensorPlan
	w           *upgfile.Writer
	reports     []TensorReport
	keep        [][]byte // encoded data of the current layer (its matrices view it)
	held        *heldOut // held-out sequence for the quality measurement, or nil
	quality     *Quality
	tokenProb   []float64              // mean next-token probability of each token on the calibration text (original model), or nil
	prePlans    map[string]*tensorPlan // plans made with the original model's Hessians during collectDiag (gptqPlan)
	residual    *residualRoles         // the rotated residual stream's roles (Options.Residual), nil without
}

func tapKey(layer int, p model.TapPoint) string { return fmt.Sprintf("%d/%d", layer, p) }

// forEachSeq calls fn with each calibration sequence in turn.
func (c *compressor) forEachSeq(fn func(s int, ids []int) error) error {
	for s, ids := range c.seqs {
		if err := fn(s, ids); err != nil {
			return err
		}
	}
	return nil
}

// collectDiag records diag(E[x xᵀ]) at every projection input of the
// original model, and of the output head's input. It runs layer by layer
// over all sequences (their hidden states are kept, as encodeAll keeps them
// later) and drops the layer's mapped source pages after it, so memory does
// not grow with the number of layers.
func (c *compressor) collectDiag() error {
	cfg := &c.m.Config
	d := cfg.Hidden
	c.diag = map[string][]float64{}
	xs := make([][]float32, len(c.seqs))
	for s, ids := range c.seqs {
		xs[s] = make([]float32, len(ids)*d)
		c.m.Embed(xs[s], ids)
	}
	c.ck.Release()
	accumulate := func(key string, act []float32, n int) {
		cols := len(act) / n
		acc := c.diag[key]
		if acc == nil {
			acc = make([]float64, cols)
			c.diag[key] = acc
		}
		for t := 0; t < n; t++ {
			for j, v := range act[t*cols : (t+1)*cols] {
				acc[j] += float64(v) * float64(v)
			}
		}
	}
	if c.held != nil {
		c.m.Embed(c.held.x, c.held.ids)
	}
	// With GPTQ planning, each layer's input Hessians (the original
	// model's) go to the planner while they are at hand, and are dropped
	// after the layer: one from the first fitSeqs sequences, which the
	// planner's GPTQ fits, and one from the evalSeqs after them, on which it
	// measures the errors (planSplit).
	fitSeqs, evalSeqs := 0, 0
	if c.gptqPlan() {
		fitSeqs, evalSeqs = planSplit(len(c.seqs), c.opts.CalibCtx)
		c.prePlans = map[string]*tensorPlan{}
	}
	// role is 0 for a sequence the planner fits, 1 for one it measures
	// on, -1 for one it does not read.
	role := func(s int) int {
		switch {
		case s < fitSeqs:
			return 0
		case s < fitSeqs+evalSeqs:
			return 1
		}
		return -1
	}
	newPair := func(cols int) *[2]*hessianAcc {
		pr := &[2]*hessianAcc{newHessianAcc(cols)}
		if evalSeqs > 0 {
			pr[1] = newHessianAcc(cols)
		}
		return pr
	}
	// pairHessians returns the fitted and the measuring Hessian (the fitted
	// one again when no sequence was left to measure on).
	pairHessians := func(pr *[2]*hessianAcc) (*codec.Hessian, *codec.Hessian) {
		fit := pr[0].hessian().Memoize() // factorised once for all candidates
		if pr[1] == nil {
			return fit, fit
		}
		return fit, pr[1].hessian()
	}
	for li := 0; li < cfg.Layers; li++ {
		accs := map[model.TapPoint]*[2]*hessianAcc{}
		err := c.forEachSeq(func(s int, ids []int) error {
			return c.lr.run(li, xs[s], ids, len(ids), func(p model.TapPoint, act []float32, n int) {
				accumulate(tapKey(li, p), act, n)
				if r := role(s); r >= 0 {
					if accs[p] == nil {
						accs[p] = newPair(len(act) / n)
					}
					accs[p][r].add(act, n)
				}
			})
		})
		if err != nil {
			return err
		}
		if err := c.advanceHeldOut(li); err != nil {
			return err
		}
		for _, st := range c.layerStages(li) {
			pr := accs[st.tap]
			if pr == nil {
				continue
			}
			fit, meas := pairHessians(pr)
			delete(accs, st.tap)
			for _, suffix := range st.names {
				if err := c.prePlan(model.LayerPrefix(li)+suffix, fit, meas); err != nil {
					return err
				}
			}
			// This stage's Hessians and factors are garbage now: collect
			// them before the next stage allocates its own (at Phi-4's
			// FFN width each is 2.6 GB; left to the GC's growth target
			// they could be carried into the largest stage's peak).
			debug.FreeOSMemory()
		}
		c.ck.Release()
		c.opts.Progress(0, c.totalParams, fmt.Sprintf("calibration statistics layer %d/%d", li+1, cfg.Layers))
	}
	count := 0
	hn := make([]float32, c.opts.CalibCtx*d)
	var logits []float32
	if c.opts.TokenWeights {
		c.tokenProb = make([]float64, cfg.Vocab)
		logits = make([]float32, c.opts.CalibCtx*cfg.Vocab)
	}
	// The head is encoded with GPTQ when it is a tensor of its own besides
	// the embedding (encodeAll).
	var headAcc *[2]*hessianAcc
	if fitSeqs > 0 && c.ck.Tensors.Has("lm_head.weight") && c.ck.Tensors.Has("model.embed_tokens.weight") {
		headAcc = newPair(d)
	}
	for s, x := range xs {
		n := len(c.seqs[s])
		c.lr.ctx.FinalNorm(hn, x, n)
		accumulate("head", hn[:n*d], n)
		if r := role(s); headAcc != nil && r >= 0 {
			headAcc[r].add(hn[:n*d], n)
		}
		count += n
		if c.tokenProb != nil {
			c.be.MatMulF32(logits[:n*cfg.Vocab], hn[:n*d], c.m.Weights.Output, n)
			accumulateProbs(c.tokenProb, logits[:n*cfg.Vocab], n)
		}
	}
	if c.tokenProb != nil {
		var ent float64
		for v := range c.tokenProb {
			p := c.tokenProb[v] / float64(max(count, 1))
			c.tokenProb[v] = p
			if p > 0 {
				ent -= p * math.Log(p)
			}
		}
		slog.Debug("token weights", "vocab", len(c.tokenProb), "effective_tokens", math.Exp(ent))
	}
	for _, acc := range c.diag {
		for j := range acc {
			acc[j] /= float64(max(count, 1))
		}
	}
	if headAcc != nil {
		// After the token probabilities: the head's plan reads its row weights.
		fit, meas := pairHessians(headAcc)
		if err := c.prePlan("lm_head.weight", fit, meas); err != nil {
			return err
		}
	}
	if c.held != nil {
		c.held.reference(c)
		c.ck.Release()
	}
	return nil
}

// advanceHeldOut runs layer li over the held-out sequence, if any.
func (c *compressor) advanceHeldOut(li int) error {
	h := c.held
	if h == nil {
		return nil
	}
	return c.lr.run(li, h.x, h.ids, len(h.ids), nil)
}

// tapFor maps a tensor name to the tap point feeding it.
func tapFor(name string) (layer int, p model.TapPoint, ok bool) {
	var rest string
	if _, err := fmt.Sscanf(name, "model.layers.%d.%s", &layer, &rest); err != nil {
		return 0, 0, false
	}
	switch {
	case strings.Contains(rest, "qkv_proj") || strings.Contains(rest, "q_proj") || strings.Contains(rest, "k_proj") || strings.Contains(rest, "v_proj"):
		return layer, model.TapAttnIn, true
	case strings.Contains(rest, "o_proj"):
		return layer, model.TapOIn, true
	case strings.Contains(rest, "gate_up_proj") || strings.Contains(rest, "gate_proj") || strings.Contains(rest, "up_proj"):
		return layer, model.TapFFNIn, true
	case strings.Contains(rest, "down_proj"):
		return layer, model.TapDownIn, true
	}
	return 0, 0, false
}

// diagFor returns the activation energy of a tensor's input, or nil.
func (c *compressor) diagFor(name string) []float64 {
	if c.diag == nil {
		return nil
	}
	if name == "lm_head.weight" || (name == "model.embed_tokens.weight" && c.m.Config.TieEmbeddings) {
		return c.diag["head"]
	}
	if l, p, ok := tapFor(name); ok {
		return c.diag[tapKey(l, p)]
	}
	return nil
}

// planHessianTokens bounds the calibration tokens whose Hessians the
// planner encodes its candidates with (gptqPlan), and planMeasureTokens the
// further tokens on whose Hessians it measures their errors: the ranking
// needs fewer than the encoder, and each token costs a rank-one update per
// projection input.
const planHessianTokens, planMeasureTokens = 16384, 8192

// planSplit divides n calibration sequences of ctx tokens between the
// planner's fit and its measurement: GPTQ's error on the sequences it was
// fitted to is optimistic, the more so the wider the input (a down
// projection's 1792 columns against 512), while the encoded model meets
// other text; errors measured on sequences the fit did not see rank
// candidates by what carries over. A quarter of the sequences, at most
// planMeasureTokens, are measured on; up to planHessianTokens of the rest
// are fitted. With a single sequence the fit is measured on itself.
func planSplit(n, ctx int) (fit, measure int) {
	if n < 2 {
		return n, 0
	}
	measure = max(1, min(n/4, planMeasureTokens/ctx))
	fit = max(1, min(n-measure, planHessianTokens/ctx))
	return fit, measure
}

// gptqPlan reports whether the planner estimates candidates' errors with
// GPTQ on the original model's Hessians (planTensor): when the encoder will
// use GPTQ, for models whose sensitivities are measured (up to
// measuredSensitivityMaxParams parameters: the planner then factorises each
// input's Hessian once more, and holds one layer's Hessians at a time).
func (c *compressor) gptqPlan() bool {
	return len(c.seqs) > 0 && !c.opts.NoGPTQ && c.totalParams <= measuredSensitivityMaxParams
}

// prePlan plans the 2-D tensor name with its input's Hessians (fit: the
// one GPTQ is fitted to; meas: the one its errors are measured with),
// during the calibration statistics (Run takes the plan from c.prePlans).
func (c *compressor) prePlan(name string, fit, meas *codec.Hessian) error {
	shape, ok := c.ck.Tensors.Shape(name)
	if !ok || len(shape) != 2 {
		return nil
	}
	c.opts.Progress(0, c.totalParams, "planning "+name)
	p, err := c.planTensor(name, shape[0], shape[1], fit, meas)
	if err != nil {
		return err
	}
	c.ck.Release()
	c.prePlans[name] = p
	return nil
}

// planRows bounds the rows used to estimate each candidate's error.
const planRows = 128

// trellisPlanRows bounds them for trellis candidates.
const trellisPlanRows = 32

// planTensor estimates every candidate's relative error on a sample of rows.
//
// With h (the Hessian of the tensor's input on the original model's
// calibration activations; the compressor passes it where the tensor will be
// encoded with GPTQ), each candidate is encoded as the encoder will encode
// it, with GPTQ's error feedback on h, and its error is the relative output
// error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) (outputRelErr) with H = meas.H, the Hessian
// of other calibration sequences (planSplit; h's own where meas is nil or
// h): GPTQ lowers the errors of
// round to nearest by factors that differ between tensors and rates, so the
// allocator ranks upgrades by what the encoder delivers. The probe
// candidate's round-to-nearest error in the same metric is kept too
// (tensorPlan.probeErr): the sensitivity probe measures the KL divergence of
// a round-to-nearest encoding, and KL per unit of output error is what its
// weight must be. Without h, the errors are those of round to nearest,
// weighted by the column energies diag(H).
func (c *compressor) planTensor(name string, rows, cols int, h, meas *codec.Hessian) (*tensorPlan, error) {
	cands, err := Ladder(c.opts.Family, cols)
	if err != nil {
		return nil, err
	}
	if c.residual != nil && c.residual.readsStream(name) {
		for i := range cands {
			cands[i].Rotate = 0 // its input is the rotated stream already
		}
	}
	p := &tensorPlan{name: name, rows: rows, cols: cols, weight: 1, cands: cands}
	mat, err := c.ck.Tensors.Matrix(name)
	if err != nil {
		return nil, err
	}
	// Sample evenly spaced rows. With token row weights the errors are
	// estimated as the encoder will make them: each sampled row weighted,
	// in the search and in the error, by its token's weight; the trellis
	// estimate then takes all the sampled rows (a few frequent tokens
	// carry much of the weight, so fewer rows would make it noisy).
	allRW := c.rowWeights(name, rows)
	sr := min(rows, planRows)
	sample := make([]float32, sr*cols)
	var sampleRW []float32
	if allRW != nil {
		sampleRW = make([]float32, sr)
	}
	for i := 0; i < sr; i++ {
		r := i * rows / sr
		mat.DecodeRows(sample[i*cols:(i+1)*cols], r, r+1)
		if sampleRW != nil {
			sampleRW[i] = allRW[r]
		}
	}
	diag := c.diagFor(name)
	if name == "model.embed_tokens.weight" && !c.m.Config.TieEmbeddings {
		diag = nil // a lookup table: every column matters alike
	}
	for _, cp := range cands {
		size, err := codec.EncodedSize(cp, rows, cols)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p.sizes = append(p.sizes, size)
	}
	if h != nil && h.H != nil {
		mh := h.H
		if meas != nil && meas.H != nil {
			mh = meas.H
		}
		p.errs, p.probeErr, err = gptqPlanErrs(sample, sr, cols, cands, p.probe(), h, mh, sampleRW)
	} else {
		p.errs, err = rtnPlanErrs(sample, sr, cols, cands, diag, sampleRW)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// planSample returns the rows a candidate's error is estimated on: the
// sr-row sample, or for a trellis candidate without row weights
// trellisPlanRows evenly spaced rows of it (the search is slow).
func planSample(sample []float32, sr, cols int, cp codec.Params, rowW []float32) ([]float32, int) {
	if cp.Codec != "trellis" || sr <= trellisPlanRows || rowW != nil {
		return sample, sr
	}
	n := trellisPlanRows
	sub := make([]float32, n*cols)
	for i := 0; i < n; i++ {
		j := i * sr / n
		copy(sub[i*cols:(i+1)*cols], sample[j*cols:(j+1)*cols])
	}
	return sub, n
}

// planEncode encodes the n rows of x (cols wide) with cp as the planner
// estimates it (learned codebooks with uniform levels: they are slow to
// fit, and the ranking of tensors, which is what allocation needs, is alike)
// and returns the decoded rows.
func planEncode(x []float32, n, cols int, cp codec.Params, h *codec.Hessian) ([]float32, error) {
	if cp.Levels == "lloyd" {
		cp.Levels = ""
	}
	data, err := codec.Encode(x[:n*cols], n, cols, cp, h)
	if err != nil {
		return nil, err
	}
	qm, err := codec.Open(cp, n, cols, data)
	if err != nil {
		return nil, err
	}
	dec := make([]float32, n*cols)
	qm.DecodeRows(dec, 0, n)
	return dec, nil
}

// rtnPlanErrs estimates each candidate's diag-weighted relative error
// (relErr) of round to nearest on the sr sampled rows (row weights rowW
// applied in the encoding and the error where not nil).
func rtnPlanErrs(sample []float32, sr, cols int, cands []codec.Params, diag []float64, rowW []float32) ([]float64, error) {
	errs := make([]float64, len(cands))
	for i, cp := range cands {
		x, n, dec, err := rtnPlanEncode(sample, sr, cols, cp, rowW)
		if err != nil {
			return nil, err
		}
		errs[i] = relErr(x[:n*cols], dec, n, cols, diag, rowW)
	}
	return errs, nil
}

// rtnPlanEncode encodes candidate cp's rows of the sample (planSample)
// rounded to nearest, with the row weights rowW where not nil, and returns
// those rows, their count and their decoding.
func rtnPlanEncode(sample []float32, sr, cols int, cp codec.Params, rowW []float32) ([]float32, int, []float32, error) {
	x, n := planSample(sample, sr, cols, cp, rowW)
	var h *codec.Hessian
	if rowW != nil {
		h = &codec.Hessian{Cols: cols, RowWeights: rowW[:n]}
	}
	dec, err := planEncode(x, n, cols, cp, h)
	return x, n, dec, err
}

// gptqPlanErrs estimates each candidate's relative output error
// (codec.WeightedOutputError with wq over it without, on the Hessian meas)
// when the sr sampled rows are encoded with GPTQ on h, and the
// round-to-nearest error of candidate probe in the same metric.
// GPTQ's result for a row depends on that row and H alone, so a sample of
// rows estimates the whole tensor's. A memoised h (codec.Hessian.Memoize)
// is factorised once for all candidates.
func gptqPlanErrs(sample []float32, sr, cols int, cands []codec.Params, probe int, h *codec.Hessian, meas []float64, rowW []float32) (errs []float64, probeErr float64, err error) {
	errs = make([]float64, len(cands))
	// The sampled rows' own output energy, the denominator, once
	// for each set of rows: planSample gives one set for each row count.
	dens := map[int]float64{}
	relErr := func(x, dec []float32, n int) float64 {
		den, ok := dens[n]
		if !ok {
			den = codec.WeightedOutputError(x[:n*cols], nil, n, cols, meas, rowW)
			dens[n] = den
		}
		return relTo(codec.WeightedOutputError(x[:n*cols], dec, n, cols, meas, rowW), den)
	}
	for i, cp := range cands {
		x, n := planSample(sample, sr, cols, cp, rowW)
		hi := h
		if rowW != nil {
			hw := *h
			hw.RowWeights = rowW[:n]
			hi = &hw
		}
		dec, err := planEncode(x, n, cols, cp, hi)
		if err != nil {
			return nil, 0, err
		}
		errs[i] = relErr(x, dec, n)
	}
	x, n, dec, err := rtnPlanEncode(sample, sr, cols, cands[probe], rowW)
	if err != nil {
		return nil, 0, err
	}
	return errs, relErr(x, dec, n), nil
}

// relTo is num/den, 0 where den is 0.
func relTo(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}

// accumulateProbs adds the softmax of each of the n rows of logits to sum.
func accumulateProbs(sum []float64, logits []float32, n int) {
	V := len(sum)
	for t := 0; t < n; t++ {
		row := logits[t*V : (t+1)*V]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v - mx))
		}
		for i, v := range row {
			sum[i] += math.Exp(float64(v-mx)) / z
		}
	}
}

// tokenRowWeights turns the tokens' mean probabilities into row weights of
// mean 1 for a matrix with one row per token (the embedding, the head): an
// error in token v's embedding row costs in proportion to how often v is
// read, and an error in its head row, to first order in the KL divergence of
// the output (whose Hessian in the logits is diag(p) − ppᵀ), in proportion
// to E[p_v]. The model's probabilities, not the calibration text's counts,
// estimate the frequencies: they are smooth, so that tokens the calibration
// text happens not to contain keep a weight. A share floor of the weight is
// spread evenly over all rows, so that no row is left to the codes' whim.
func tokenRowWeights(prob []float64, floor float64) []float32 {
	var sum float64
	for _, p := range prob {
		sum += p
	}
	V := float64(len(prob))
	w := make([]float32, len(prob))
	for v, p := range prob {
		x := floor
		if sum > 0 {
			x += (1 - floor) * V * p / sum
		}
		w[v] = float32(x)
	}
	return w
}

// rowWeights returns the token row weights of the named matrix with rows
// rows, or nil where they do not apply (Options.TokenWeights off, or not
// the embedding or the head).
func (c *compressor) rowWeights(name string, rows int) []float32 {
	if c.tokenProb == nil || rows != len(c.tokenProb) || (name != "model.embed_tokens.weight" && name != "lm_head.weight") {
		return nil
	}
	return tokenRowWeights(c.tokenProb, tokenWeightFloor)
}

// tokenWeightFloor is the share of the token row weights spread evenly
// over all rows (tokenRowWeights): chosen on TinyStories-656K, where 0.1
// left rare tokens too coarse (perplexity ratio worse at 4.6 bpw) and 0.5
// gave back part of the gain; 0.3 was better than both at both rates
// (docs/benchmarks.md).
const tokenWeightFloor = 0.3
