package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/bench"
	"github.com/upg-ai/upg/sample"
)

func newBenchCmd() *cobra.Command {
	var (
		path    string
		opts    bench.Options
		asJSON  bool
		profile string
		kvType  string
		gpu     string
	)
	cmd := &cobra.Command{
		Use:   "bench [--model FILE]",
		Short: "Measure memory bandwidth, prefill and decode speed of a model",
		Long: `bench first measures this machine's streaming read bandwidth, then loads the
model, prefills a random prompt and decodes tokens one at a time. Decoding
reads every weight once per token, so the effective GB/s (weight bytes per
token × tokens/s) against the read bandwidth shows how close the kernels come
to the memory roofline. Without --model, the bundled demo model runs.`,
		Example: `  upg bench --model /tmp/phi4-synth.upg
  upg bench --model model.upg --threads 2 --json
  upg bench --model model.upg --prompt-tokens 256 --gen-tokens 64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkThreads(opts.Threads); err != nil {
				return err
			}
			if err := checkDevice(opts.Device); err != nil {
				return err
			}
			for _, c := range []struct {
				name string
				v    int
			}{{"--prompt-tokens", opts.PromptTokens}, {"--gen-tokens", opts.GenTokens}, {"--batch", opts.Batch}} {
				if c.v < 1 {
					return usagef("%s %d must be ≥ 1", c.name, c.v)
				}
			}
			var err error
			if opts.Device, opts.GPULayers, err = placement(opts.Device, gpu); err != nil {
				return err
			}
			if path, err = modelPath(path); err != nil {
				return err
			}
			if path == "" {
				if path, err = demoModelPath(); err != nil {
					return err
				}
			}
			if _, err := sample.New(opts.Sampling); err != nil {
				return usagef("%v", err)
			}
			kv, err := parseKVCache(kvType)
			if err != nil {
				return err
			}
			opts.KVCache = kv
			if !opts.Force {
				if err := bench.CheckMemory(path); err != nil {
					return err
				}
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				opts.DecodeProfile = f
			}
			if strings.ToLower(opts.Device) == "cpu" {
				opts.Bandwidth = bench.ReadBandwidth(opts.Threads)
				if !asJSON {
					fmt.Fprintf(os.Stderr, "read bandwidth: %.1f GB/s\n", opts.Bandwidth)
				}
			} // else bench.Run measures the backend's own: a GPU's copy bandwidth, or the CPU's
			res, err := bench.Run(path, opts)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				return enc.Encode(res)
			}
			w := os.Stdout
			fmt.Fprintf(w, "model            %s (%d layers, %.2f GB)\n", res.Model, res.Layers, float64(res.ModelBytes)/1e9)
			if res.Threads > 0 {
				fmt.Fprintf(w, "kernel           %s, %d threads\n", res.Kernel, res.Threads)
			} else {
				fmt.Fprintf(w, "kernel           %s\n", res.Kernel)
			}
			if res.GPULayers > 0 {
				fmt.Fprintf(w, "gpu layers       %d of %d", res.GPULayers, res.Layers)
				if res.GPULayers < res.Layers {
					fmt.Fprintf(w, " (layers %d-%d on the CPU)", 0, res.Layers-res.GPULayers-1)
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "read bandwidth   %.1f GB/s\n", res.ReadBandwidth)
			if res.DeviceBandwidth > 0 {
				fmt.Fprintf(w, "device bandwidth %.1f GB/s (the GPU layers' roofline; the CPU layers' is the read bandwidth)\n", res.DeviceBandwidth)
			}
			fmt.Fprintf(w, "prefill          %.2f tok/s (%d tokens)\n", res.PrefillTokS, res.PromptTokens)
			if res.Batch > 1 {
				prompts := "one prompt forked"
				if !res.SharedPrompt {
					prompts = "distinct prompts"
				}
				fmt.Fprintf(w, "decode           %.2f tok/s aggregate over %d sequences (%s), %.2f tok/s each (%d tokens each), %.3g ms/layer per step\n",
					res.AggregateTokS, res.Batch, prompts, res.DecodeTokS, res.GenTokens, res.MsPerLayer)
			} else {
				fmt.Fprintf(w, "decode           %.2f tok/s (%d tokens), %.3g ms/layer\n", res.DecodeTokS, res.GenTokens, res.MsPerLayer)
			}
			fmt.Fprintf(w, "sampling         %s\n", res.Sampling)
			if res.Overlapped {
				fmt.Fprintf(w, "host overlap     on: each decoding step queued on the device's tokens before the last one's are read back (--no-overlap: off)\n")
			}
			// a batch's step reads the weights once for all its sequences, so
			// the figure counts steps: at large batches a low one means the
			// step is bound by arithmetic, not a shortfall of bandwidth
			perStep := ""
			if res.Batch > 1 {
				perStep = fmt.Sprintf(" (weight bytes × steps/s: one read a step serves all %d sequences)", res.Batch)
			}
			if res.DeviceBandwidth > 0 {
				fmt.Fprintf(w, "effective        %.1f GB/s = %.0f%% of the split's roofline%s\n", res.EffectiveGBs, res.RooflinePct, perStep)
			} else {
				fmt.Fprintf(w, "effective        %.1f GB/s = %.0f%% of read bandwidth%s\n", res.EffectiveGBs, res.RooflinePct, perStep)
			}
			if res.DeviceMemoryBytes > 0 {
				fmt.Fprintf(w, "device memory    %.2f GiB in use (%.2f GiB allocated by upg: weights, KV cache %.2f GiB, workspaces)\n",
					gib(res.DeviceMemoryBytes), gib(res.DeviceAllocatedBytes), gib(res.KVCacheBytes))
			}
			if res.Graphs != nil {
				fmt.Fprintf(w, "step %s\n", res.Graphs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "model", "m", "", "model: .upg file, Hugging Face directory, .gguf, or a name in the models directory (upg list) (default: the bundled demo model)")
	f.IntVarP(&opts.Threads, "threads", "t", 0, "CPU threads (default: all cores)")
	f.StringVar(&opts.Device, "device", "auto", "where to run: auto (an NVIDIA GPU when one is usable, else the CPU), cpu or cuda; on a GPU the roofline is its copy bandwidth")
	f.IntVar(&opts.PromptTokens, "prompt-tokens", 512, "prefill prompt length")
	f.IntVar(&opts.GenTokens, "gen-tokens", 128, "tokens to decode and time (per sequence), after two untimed decode steps")
	f.IntVar(&opts.Batch, "batch", 1, "sequences decoded together (they share the prompt but its last token)")
	f.BoolVar(&opts.NoOverlap, "no-overlap", false, "read each decoding step's tokens back before queueing the next (by default a GPU queues step N+1 on the tokens it sampled before N's reach the host)")
	f.BoolVar(&opts.DistinctPrompts, "distinct-prompts", false, "with --batch: give each sequence a random prompt of its own (no KV blocks shared) instead of forking one")
	f.Float32Var(&opts.Sampling.Temperature, "temperature", 0, "sample each token at this temperature (0 = greedy argmax); on a GPU the sampling runs on the device")
	f.IntVar(&opts.Sampling.TopK, "top-k", 0, "with --temperature: sample from the k most likely tokens (0 = off)")
	f.Float32Var(&opts.Sampling.TopP, "top-p", 1, "with --temperature: nucleus sampling threshold (1 = off)")
	f.Float32Var(&opts.Sampling.MinP, "min-p", 0, "with --temperature: drop tokens below this fraction of the top probability (0 = off)")
	f.Float32Var(&opts.Sampling.RepeatPenalty, "repeat-penalty", 1, "penalty for the sequence's recent tokens (1 = off)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile (pprof) of the decode phase to this file")
	f.StringVar(&kvType, "kv-cache", "f16", kvCacheUsage)
	f.StringVar(&gpu, "gpu-layers", "-1", gpuLayersUsage)
	f.BoolVar(&opts.Force, "force", false, "run even if the model is larger than the available memory")
	return cmd
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }
