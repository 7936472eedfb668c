package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/eval"
	"github.com/upg-ai/upg/ggufcache"
	"github.com/upg-ai/upg/model"
)

func newEvalCmd() *cobra.Command {
	var mf modelFlags
	var refPath, refDevice, textPath string
	var more []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval --model FILE --ref SRC --text TEXTFILE [--ctx 512] [--json]",
		Short: "Measure a compressed model against its reference: PPL, KL divergence, top-1 agreement",
		Long: `Score TEXTFILE with the model and with the reference as llama.cpp's perplexity
tool does: non-overlapping chunks of --ctx tokens, each scored on its second
half, no BOS added. Reports both perplexities and their ratio, the mean and
99th-percentile KL divergence of the model's next-token distribution from the
reference's, top-1 agreement, bits per weight and file size. A quantized GGUF
is scored as it is, its weights dequantized exactly (row by row at every use
when too large for memory: slow), never through the cached .upg conversion
that run, chat, bench and serve use for large ones.`,
		Example: `  upg eval --model miniphi.upg --ref ../shared/models/miniphi-29m --text ../shared/corpus/miniphi_eval_250k.txt
  upg eval --model phi4.upg --ref ./Phi-4 --text wiki.txt --ctx 512 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if textPath == "" {
				return usagef("--text TEXTFILE is required")
			}
			kv, err := parseKVCache(mf.kv)
			if err != nil {
				return err
			}
			text, err := os.ReadFile(textPath)
			if err != nil {
				return err
			}
			if err := checkThreads(mf.threads); err != nil {
				return err
			}
			if err := checkDevice(mf.device); err != nil {
				return err
			}
			device, gpuLayers, err := placement(mf.device, mf.gpu)
			if err != nil {
				return err
			}
			if refDevice != "" {
				if checkDevice(refDevice) != nil {
					return usagef("--ref-device must be auto, cpu or cuda, not %q", refDevice)
				}
			}
			path, err := modelPath(mf.path)
			if err != nil {
				return err
			}
			if path == "" {
				if path, err = demoModelPath(); err != nil {
					return err
				}
			}
			if refPath != "" {
				if refPath, err = modelPath(refPath); err != nil {
					return err
				}
			}
			for i, p := range more {
				if more[i], err = modelPath(p); err != nil {
					return err
				}
			}
			var bar *progress
			results, err := Evaluate(EvalOptions{Model: path, Ref: refPath, Compare: more, Text: string(text),
				Ctx: mf.ctx, Threads: mf.threads, Device: device, GPULayers: gpuLayers, RefDevice: refDevice, KVCache: kv.String()}, func(d, t int) {
				if bar == nil {
					bar = newProgress("evaluating", "chunks", int64(t))
				}
				bar.set(int64(d), int64(t), "")
			})
			if bar != nil {
				bar.finish(err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, r := range results {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			for _, r := range results[1:] {
				fmt.Printf("%s: PPL %.4f ratio %.4f, KLD mean %.5f p99 %.5f, top-1 %.2f%%, %d bytes, %.3f bpw\n",
					r.Model, r.PPL, r.PPLRatio, r.KLDMean, r.KLDP99, 100*r.Top1, r.FileBytes, r.BPW)
			}
			res := results[0]
			fmt.Printf("scored %d tokens in %d chunks of %d\n", res.Tokens, res.Chunks, res.Ctx)
			fmt.Printf("PPL %.4f", res.PPL)
			if refPath != "" {
				fmt.Printf("   reference PPL %.4f   ratio %.4f\n", res.RefPPL, res.PPLRatio)
				fmt.Printf("KL divergence: mean %.5f, p99 %.5f\ntop-1 agreement %.2f%%\n", res.KLDMean, res.KLDP99, 100*res.Top1)
			} else {
				fmt.Println()
			}
			fmt.Printf("%d bytes, %.3f bits/weight\n", res.FileBytes, res.BPW)
			return nil
		},
	}
	mf.register(cmd)
	// eval measures the weights: its cache is exact unless asked otherwise.
	kvFlag := cmd.Flags().Lookup("kv-cache")
	kvFlag.DefValue = "f32"
	_ = kvFlag.Value.Set("f32")
	kvFlag.Usage = "type of the scored models' cached keys and values: f32 (exact: the weights alone are measured), f16 or q8 (the cache's rounding is measured too); the reference's is f32"
	cmd.Flags().StringVar(&refPath, "ref", "", "reference model (the uncompressed checkpoint)")
	cmd.Flags().StringVar(&refDevice, "ref-device", "", "run the reference on this device (auto, cpu, cuda; default: --device), e.g. the same file on the CPU to measure the GPU's divergence")
	cmd.Flags().StringVar(&textPath, "text", "", "evaluation text file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per model")
	cmd.Flags().StringArrayVar(&more, "compare", nil, "another model to score in the same pass (repeatable; the reference runs once)")
	return cmd
}

// EvalOptions are the inputs of Evaluate (upg eval's flags).
type EvalOptions struct {
	Model   string   // the model to score
	Ref     string   // the reference model ("" = perplexity only)
	Compare []string // more models scored in the same pass
	Text    string   // the evaluation text
	Ctx     int      // tokens per chunk (0 = 512)
	Threads int      // CPU threads (0 = all cores)
	Device  string   // "auto" (default), "cpu" or "cuda"
	// GPULayers is engine.Options.GPULayers for every model loaded on the
	// GPU (the reference too when it runs there): 0 = all layers.
	GPULayers int
	// RefDevice runs the reference elsewhere ("" = Device): with the scored
	// model on the GPU and the reference on the CPU (the same file), eval
	// measures the GPU's divergence from the CPU directly.
	RefDevice string
	KVCache   string // the scored models' KV cache: "f32" (default, ""), "f16" or "q8"; the reference's is f32
}

// Evaluate loads the models and scores the text as `upg eval` does: one
// result per model (Model, then Compare) with the file's path, size and
// bits per weight filled in; these are the objects `upg eval --json`
// prints. progress (may be nil) is called after each chunk.
func Evaluate(o EvalOptions, progress eval.Progress) ([]*eval.Result, error) {
	ctx := o.Ctx
	if ctx == 0 {
		ctx = 512
	}
	kv := backend.KVF32
	if o.KVCache != "" {
		var err error
		if kv, err = backend.ParseKVType(o.KVCache); err != nil {
			return nil, err
		}
	}
	var loaded []*engine.Loaded
	defer func() {
		for _, l := range loaded {
			l.Close()
		}
	}()
	for _, p := range append([]string{o.Model}, o.Compare...) {
		// A quantized GGUF is scored as it is (its own weights, dequantized
		// exactly), never through a cached conversion: that would measure
		// the conversion, not the file.
		l, err := engine.Load(p, engine.Options{Threads: o.Threads, Device: o.Device, GPULayers: o.GPULayers, Ctx: ctx, KVCache: kv, GGUF: ggufcache.Never})
		if err != nil {
			return nil, err
		}
		loaded = append(loaded, l)
	}
	var refModel *model.Model
	if o.Ref != "" {
		dev := o.Device
		if o.RefDevice != "" {
			dev = o.RefDevice
		}
		ref, err := engine.Load(o.Ref, engine.Options{Threads: o.Threads, Device: dev, GPULayers: o.GPULayers, Ctx: ctx, GGUF: ggufcache.Never})
		if err != nil {
			return nil, err
		}
		defer ref.Close()
		refModel = ref.Model
	}
	tokens := loaded[0].Tokenizer.Encode(o.Text, false, false)
	models := make([]*model.Model, len(loaded))
	for i, l := range loaded {
		models[i] = l.Model
	}
	results, err := eval.CompareMany(models, refModel, tokens, ctx, kv, progress)
	if err != nil {
		return nil, err
	}
	for i, r := range results {
		r.Model = loaded[i].Checkpoint.Path
		r.FileBytes, r.BPW = modelSize(loaded[i])
	}
	return results, nil
}

// modelSize returns the model file's size (the sum of tensor bytes for
// directories) and its bits per weight.
func modelSize(l *engine.Loaded) (int64, float64) {
	ck := l.Checkpoint
	var bytes int64
	if st, err := os.Stat(ck.Path); err == nil && !st.IsDir() {
		bytes = st.Size()
	} else {
		for _, n := range ck.Tensors.Names() {
			ti, _ := ck.Tensors.Info(n)
			bytes += ti.Bytes
		}
	}
	return bytes, float64(bytes*8) / float64(max(ck.NumParams(), 1))
}
