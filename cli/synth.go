package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/synth"
)

func newSynthCmd() *cobra.Command {
	var (
		arch  string
		out   string
		opts  synth.Options
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "synth --arch phi4 --out FILE",
		Short: "Write a synthetic model with real shapes and random weights (for benchmarks)",
		Long: `synth writes a .upg model with a real architecture's shapes (Phi-4: 40 layers,
hidden 5120, FFN 17920, 40/10 heads, vocab 100352) and random Gaussian weights
encoded with the dense codec at the target bits per weight, tensor by tensor
(bounded memory). It embeds the cl100k_base tokenizer from --tokenizer, or from
the project's shared data where that exists; elsewhere a byte-level tokenizer
(256 byte tokens), so that run, chat, serve and bench open the file on any
machine. The weights are random: the text is noise with either.`,
		Example: `  upg synth --arch phi4 --target-bpw 3.2 --out /tmp/phi4-synth.upg
  upg synth --arch phi4 --layers 4 --out /tmp/phi4-4l.upg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if arch != "phi4" {
				return fmt.Errorf("unknown --arch %q (known: phi4)", arch)
			}
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if !(opts.TargetBPW > 0) {
				return usagef("--target-bpw %v must be positive (10x smaller than fp32 is 3.2)", opts.TargetBPW)
			}
			if opts.Layers < 0 {
				return usagef("--layers %d must be ≥ 0 (0 = the architecture's)", opts.Layers)
			}
			defer removePartialOnSignal()()
			start := time.Now()
			var bar *progress
			if !quiet {
				bar = newProgress("writing "+out, "weights", 100)
				opts.Progress = bar.set
			}
			err := synth.Write(out, opts)
			if bar != nil {
				bar.finish(err)
			}
			if err != nil {
				return err
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s: %.2f GB in %s\n", out, float64(st.Size())/1e9, time.Since(start).Round(time.Second))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&arch, "arch", "phi4", "architecture shapes (phi4)")
	f.StringVarP(&out, "out", "o", "", "output .upg file")
	f.IntVar(&opts.Layers, "layers", 0, "number of layers (default: the architecture's)")
	f.Float64Var(&opts.TargetBPW, "target-bpw", 3.2, "largest bits per weight of the file's tensors")
	f.Uint64Var(&opts.Seed, "seed", 1, "random seed")
	f.StringVar(&opts.Codec, "codec", "dense", "weight codec: dense (scalar Lloyd codes) or trellis (trellis codes)")
	f.BoolVar(&opts.RotateResidual, "rotate-residual", true, "write the file as upg compress does by default for a model with a head of its own (Phi-4): a rotated residual stream, the matrices that read the norms without an input rotation, every norm gain 1 (--rotate-residual=false: the plain stream)")
	f.StringVar(&opts.TokenizerPath, "tokenizer", "", "tiktoken rank file to embed, e.g. cl100k_base.tiktoken (default: "+synth.DefaultTokenizer+" where it exists, else a byte-level tokenizer)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}
