package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/eval"
	"github.com/upg-ai/upg/model"
)

func newEvalCmd() *cobra.Command {
	var mf modelFlags
	var refPath, textPath string
	var more []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval --model FILE --ref SRC --text TEXTFILE [--ctx 512] [--json]",
		Short: "Measure a compressed model against its reference: PPL, KL divergence, top-1 agreement",
		Long: `Score TEXTFILE with the model and with the reference as llama.cpp's perplexity
tool does: non-overlapping chunks of --ctx tokens, each scored on its second
half, no BOS added. Reports both perplexities and their ratio, the mean and
99th-percentile KL divergence of the model's next-token distribution from the
reference's, top-1 agreement, bits per weight and file size.`,
		Example: `  upg eval --model miniphi.upg --ref ../shared/models/miniphi-29m --text ../shared/corpus/miniphi_eval_250k.txt
  upg eval --model phi4.upg --ref ./Phi-4 --text wiki.txt --ctx 512 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if textPath == "" {
				return usagef("--text TEXTFILE is required")
			}
			text, err := os.ReadFile(textPath)
			if err != nil {
				return err
			}
			ctx := mf.ctx
			if ctx == 0 {
				ctx = 512
			}
			mf.ctx = ctx
			l, err := mf.load()
			if err != nil {
				return err
			}
			defer l.Close()
			var ref *engine.Loaded
			if refPath != "" {
				if refPath, err = modelPath(refPath); err != nil {
					return err
				}
				if ref, err = engine.Load(refPath, engine.Options{Threads: mf.threads, Device: mf.device, Ctx: ctx}); err != nil {
					return err
				}
				defer ref.Close()
			}
			tokens := l.Tokenizer.Encode(string(text), false, false)
			bar := newProgress("evaluating", "chunks", int64(len(tokens)/ctx))
			var refModel *model.Model
			if ref != nil {
				refModel = ref.Model
			}
			loaded := []*engine.Loaded{l}
			for _, p := range more {
				p, err := modelPath(p)
				if err != nil {
					return err
				}
				o, err := engine.Load(p, engine.Options{Threads: mf.threads, Device: mf.device, Ctx: ctx})
				if err != nil {
					return err
				}
				defer o.Close()
				loaded = append(loaded, o)
			}
			models := make([]*model.Model, len(loaded))
			for i, o := range loaded {
				models[i] = o.Model
			}
			results, err := eval.CompareMany(models, refModel, tokens, ctx, func(d, t int) { bar.set(int64(d), int64(t), "") })
			bar.finish()
			if err != nil {
				return err
			}
			for i, r := range results {
				r.Model = loaded[i].Checkpoint.Path
				r.FileBytes, r.BPW = modelSize(loaded[i])
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
			if ref != nil {
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
	cmd.Flags().StringVar(&refPath, "ref", "", "reference model (the uncompressed checkpoint)")
	cmd.Flags().StringVar(&textPath, "text", "", "evaluation text file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per model")
	cmd.Flags().StringArrayVar(&more, "compare", nil, "another model to score in the same pass (repeatable; the reference runs once)")
	return cmd
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
