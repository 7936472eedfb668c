package cli

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tensor"
)

// modelFlags are shared by every command that loads a model.
type modelFlags struct {
	path    string
	threads int
	ctx     int
	kv      string
}

func (f *modelFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.path, "model", "m", "", "model: .upg file, Hugging Face directory or .gguf (default: the bundled demo model)")
	cmd.Flags().IntVarP(&f.threads, "threads", "t", 0, "CPU threads (default: all cores)")
	cmd.Flags().IntVar(&f.ctx, "ctx", 0, "context window in tokens (default: the model's, at most 4096)")
	cmd.Flags().StringVar(&f.kv, "kv-cache", "f16", "type of the cached keys and values: f16 or f32")
}

// parseKVCache maps the --kv-cache flag to a tensor type.
func parseKVCache(s string) (tensor.DType, error) {
	switch strings.ToLower(s) {
	case "f16":
		return tensor.F16, nil
	case "f32":
		return tensor.F32, nil
	}
	return tensor.Invalid, usagef("--kv-cache must be f16 or f32, not %q", s)
}

func (f *modelFlags) load() (*engine.Loaded, error) {
	path := f.path
	if path == "" {
		p, err := demoModelPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	kv, err := parseKVCache(f.kv)
	if err != nil {
		return nil, err
	}
	return engine.Load(path, engine.Options{Threads: f.threads, Ctx: f.ctx, KVCache: kv})
}

// genFlags are the sampling and length flags of run and chat.
type genFlags struct {
	maxTokens int
	opts      sample.Options
	stops     []string
	ignoreEOS bool
}

func (g *genFlags) register(cmd *cobra.Command, defaultMax int) {
	fl := cmd.Flags()
	fl.IntVarP(&g.maxTokens, "max-tokens", "n", defaultMax, "most tokens to generate (0 = until end of text or context)")
	fl.Float32Var(&g.opts.Temperature, "temperature", 0.7, "sampling temperature; 0 = greedy")
	fl.IntVar(&g.opts.TopK, "top-k", 40, "sample from the k most likely tokens (0 = off)")
	fl.Float32Var(&g.opts.TopP, "top-p", 0.95, "nucleus sampling threshold (1 = off)")
	fl.Float32Var(&g.opts.MinP, "min-p", 0.05, "drop tokens below this fraction of the top probability (0 = off)")
	fl.Float32Var(&g.opts.RepeatPenalty, "repeat-penalty", 1.0, "penalty for recently generated tokens, e.g. 1.1 (1 = off)")
	fl.Uint64Var(&g.opts.Seed, "seed", 0, "random seed; the same seed reproduces the same text (0 = random)")
	fl.StringArrayVar(&g.stops, "stop", nil, "stop when this text is generated (repeatable)")
	fl.BoolVar(&g.ignoreEOS, "ignore-eos", false, "keep generating past end-of-text tokens")
}

// validate checks the flags before any model is loaded.
func (g *genFlags) validate() error {
	o := g.opts
	switch {
	case g.maxTokens < 0:
		return usagef("--max-tokens %d must be ≥ 0", g.maxTokens)
	case !(o.Temperature >= 0) || math.IsInf(float64(o.Temperature), 0):
		return usagef("--temperature %v must be a finite number ≥ 0", o.Temperature)
	case o.TopK < 0:
		return usagef("--top-k %d must be ≥ 0", o.TopK)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return usagef("--top-p %v must be in [0, 1]", o.TopP)
	case !(o.MinP >= 0 && o.MinP <= 1):
		return usagef("--min-p %v must be in [0, 1]", o.MinP)
	case !(o.RepeatPenalty > 0) || math.IsInf(float64(o.RepeatPenalty), 0):
		return usagef("--repeat-penalty %v must be a finite number > 0", o.RepeatPenalty)
	}
	return nil
}

func (g *genFlags) options() sample.Options {
	o := g.opts
	if o.Seed == 0 {
		o.Seed = randomSeed()
	}
	return o
}

func newRunCmd() *cobra.Command {
	var mf modelFlags
	var gf genFlags
	cmd := &cobra.Command{
		Use:   "run [flags] PROMPT",
		Short: "Generate a completion of PROMPT, streamed to stdout",
		Long: `Generate text that continues PROMPT. Only the generated text goes to stdout;
a one-line summary (prompt tokens, generated tokens, prefill and decode speed)
goes to stderr. Without --model, the bundled demo model runs.`,
		Example: `  upg run "package main"
  upg run --model phi4.upg --temperature 0 --max-tokens 64 "The capital of France is"
  upg run --seed 7 --top-p 0.9 "It was a dark and stormy night"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gf.validate(); err != nil {
				return err
			}
			l, err := mf.load()
			if err != nil {
				return err
			}
			defer l.Close()
			prompt := l.EncodePrompt(args[0])
			if len(prompt) == 0 {
				return usagef("empty prompt: this tokenizer adds no BOS token, so there is nothing to start from; give some text")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			out := bufio.NewWriter(os.Stdout)
			st, err := l.Generate(ctx, engine.Request{
				Prompt: prompt, MaxTokens: gf.maxTokens, Sampling: gf.options(),
				Stop: gf.stops, IgnoreEOS: gf.ignoreEOS,
			}, func(s string) { out.WriteString(s); out.Flush() })
			if isTerminal(os.Stdout) {
				out.WriteString("\n") // keep the shell prompt off the last line; pipes get only the text
			}
			out.Flush()
			if err != nil && ctx.Err() == nil {
				return err
			}
			printStats(st)
			return nil
		},
	}
	mf.register(cmd)
	gf.register(cmd, 128)
	return cmd
}

func printStats(st engine.Stats) {
	fmt.Fprintf(os.Stderr, "[prompt %d tokens, generated %d tokens; prefill %.1f tok/s, decode %.1f tok/s; stop: %s]\n",
		st.PromptTokens, st.GeneratedTokens, st.PrefillTokS(), st.DecodeTokS(), st.StopReason)
}
