package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/internal/units"
)

func newCompressCmd() *cobra.Command {
	var opts compress.Options
	var out, calib, family, size, profile string
	var asJSON, quiet, rotate bool
	cmd := &cobra.Command{
		Use:   "compress SRC --out FILE (--target-bpw B | --target-size BYTES) [--calib TEXTFILE]",
		Short: "Compress a Hugging Face checkpoint (or F16/F32 GGUF) into a .upg file",
		Long: `Compress SRC to FILE at B bits per weight, counting every byte of the file
(tensors, scales, indices, tokenizer and metadata), or to at most BYTES
with --target-size (e.g. 9.4MB, 9400000, 8MiB). With --calib, the model
runs on the calibration text layer by layer: the planner gives more bits to
the tensors whose errors cost most, and every projection is encoded with
GPTQ-style error compensation against the already-compressed earlier layers.
The output is written to a temporary file and renamed at the end, so an
interrupted run never leaves a partial FILE.`,
		Example: `  upg compress ../shared/models/miniphi-29m --out miniphi.upg --target-bpw 3.2 --calib calib.txt
  upg compress ./Phi-4 --out phi4.upg --target-bpw 3.2 --calib calib.txt --calib-tokens 4096
  upg compress stories.gguf --out stories.upg --target-bpw 4
  upg compress ../shared/models/miniphi-29m --out miniphi.upg --target-size 9.4MB --calib calib.txt --codec trellis`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out FILE is required")
			}
			if opts.TargetBPW <= 0 {
				return usagef("--target-bpw must be positive (10x smaller than fp32 is 3.2)")
			}
			if size != "" {
				if cmd.Flags().Changed("target-bpw") {
					return usagef("give --target-bpw or --target-size, not both")
				}
				n, err := units.ParseSize(size)
				if err != nil || n <= 0 {
					return usagef("--target-size %q: want a positive size in bytes, e.g. 9.4MB or 9400000", size)
				}
				opts.TargetBytes = n
			}
			if calib != "" {
				b, err := os.ReadFile(calib)
				if err != nil {
					return err
				}
				opts.CalibText = string(b)
			}
			if err := checkThreads(opts.Threads); err != nil {
				return err
			}
			if opts.Threads > 0 {
				// the encoders' algebra (codec, linalg) runs on GOMAXPROCS
				// goroutines; this process does nothing else
				runtime.GOMAXPROCS(opts.Threads)
			}
			opts.Family = compress.Family(family)
			var asked *bool // not given: rotated where the model can take it
			if cmd.Flags().Changed("rotate-residual") {
				asked = &rotate
			}
			opts.Residual = compress.ResidualFor(asked)
			var bar *progress
			if !quiet {
				bar = newProgress("compressing", "parameters", 100)
				opts.Progress = bar.set
			}
			defer removePartialOnSignal()()
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := compress.Run(args[0], out, opts)
			if bar != nil {
				bar.finish(err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printCompressReport(rep)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&out, "out", "o", "", "output .upg file")
	fl.Float64Var(&opts.TargetBPW, "target-bpw", 3.2, "all-in bits per weight of the output file")
	fl.StringVar(&size, "target-size", "", "largest size of the output file, all-in, instead of --target-bpw: bytes, or with a unit (9.4MB = 9,400,000 bytes; 9MiB)")
	fl.StringVar(&calib, "calib", "", "calibration text file (use text unlike your evaluation text)")
	fl.IntVar(&opts.CalibTokens, "calib-tokens", 4096, "calibration tokens to use")
	fl.IntVar(&opts.CalibCtx, "calib-ctx", 512, "tokens per calibration sequence")
	fl.StringVar(&family, "codec", "auto", "codec family for weight matrices: auto, dense, trellis, dense-uniform, sparse, overlay")
	fl.BoolVar(&opts.NoGPTQ, "no-gptq", false, "round to nearest instead of GPTQ error compensation")
	fl.BoolVar(&opts.TokenWeights, "token-weights", false, "with calibration, weight the rows of the embedding and the output head by the original model's mean probability of their token on the calibration text (trellis codes)")
	fl.BoolVar(&opts.OutputTargets, "output-targets", false, "with calibration, fit each projection to the original model's output from the compressed model's inputs instead of to its own weights (experimental: helped TinyStories-656K, hurt miniphi-29m)")
	fl.BoolVar(&rotate, "rotate-residual", true, "rewrite the model with a rotated residual stream first (norm gains folded into the matrices that read them, which then need no input rotation at run time). Default: where the model can take it (a head not tied to the embedding), else kept plain with a log line; --rotate-residual alone makes a tied model an error, --rotate-residual=false keeps every model plain")
	fl.IntVarP(&opts.Threads, "threads", "t", 0, "CPU threads (default: all cores)")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	fl.StringVar(&profile, "cpuprofile", "", "write a CPU profile (pprof) of the whole compression to this file")
	return cmd
}

func printCompressReport(r *compress.Report) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "tensor\tshape\tencoding\tbytes\tbits/weight\trel. output error")
	for _, t := range r.Tensors {
		rel := ""
		if t.RelErr > 0 {
			rel = fmt.Sprintf("%.4f", t.RelErr)
		}
		fmt.Fprintf(w, "%s\t%v\t%s\t%d\t%.3f\t%s\n", t.Name, t.Shape, t.Encoding, t.Bytes, t.BPW, rel)
	}
	w.Flush()
	fmt.Printf("\n%s: %d bytes, %.3f bits/weight all-in, %.2fx smaller than fp32, %.2fx smaller than the source (%d bytes)\n",
		r.Output, r.FileBytes, r.BPW, r.RatioFP32, r.RatioSource, r.SourceBytes)
	fmt.Printf("%d parameters in %s (%.0f parameters/s; calibration tokens: %d; peak RSS %.2f GiB)\n",
		r.Parameters, r.Elapsed.Round(time.Millisecond), r.ParamsPerSec, r.CalibTokens, float64(r.PeakRSS)/(1<<30))
	switch {
	case r.ResidualStream == "rotated":
		fmt.Println("residual stream: rotated (the norms need no rotation at run time; --rotate-residual=false keeps it plain)")
	case r.PlainWhy != "":
		fmt.Printf("residual stream: plain (%s)\n", r.PlainWhy)
	default:
		fmt.Println("residual stream: plain")
	}
	if q := r.Quality; q != nil {
		fmt.Printf("quality on %d held-out calibration tokens (%d scored): PPL %.4f vs %.4f (ratio %.4f), mean KLD %.5f, top-1 agreement %.2f%% (recorded in the file's provenance)\n",
			q.HeldOutTokens, q.ScoredTokens, q.PPL, q.RefPPL, q.PPLRatio, q.KLDMean, 100*q.Top1Agreement)
	}
}
