package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/constrain"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tokenizer"
)

// modelFlags are shared by every command that loads a model.
type modelFlags struct {
	path    string
	threads int
	ctx     int
	kv      string
	longCtx bool
	device  string
	gpu     string // --gpu-layers, as given
	lookup  int    // --lookup (commands that generate)

	loadTime time.Duration // how long the last load took
}

func (f *modelFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.path, "model", "m", "", "model: .upg file, Hugging Face directory, .gguf, or a name in the models directory (upg list) (default: the bundled demo model)")
	cmd.Flags().IntVarP(&f.threads, "threads", "t", 0, "CPU threads (default: one per physical core)")
	cmd.Flags().IntVar(&f.ctx, "ctx", 0, "context window in tokens (default: the model's, at most 4096)")
	cmd.Flags().BoolVar(&f.longCtx, "allow-long-ctx", false, "allow a --ctx above the context the model was trained for (quality degrades past it)")
	cmd.Flags().StringVar(&f.kv, "kv-cache", "f16", kvCacheUsage)
	cmd.Flags().StringVar(&f.device, "device", "auto", "where to run: auto (an NVIDIA GPU when one is usable, else the CPU), cpu or cuda")
	cmd.Flags().StringVar(&f.gpu, "gpu-layers", "-1", gpuLayersUsage)
}

// registerLookup adds --lookup (run, chat, serve).
func (f *modelFlags) registerLookup(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.lookup, "lookup", 0, lookupUsage)
}

// lookupUsage is the --lookup flag's help.
const lookupUsage = "prompt-lookup decoding: each step may also feed up to N tokens that followed the last few tokens where they occurred before in the prompt or output, and keeps those the model picks itself (the same text, greedy or sampled with a seed); faster where the output repeats its input (code edits, extraction, quoting); how many of a draft's tokens a step feeds is chosen from the step times measured on this machine and how often the request's drafts are kept, so a large N (8-16) suits CPUs and GPUs alike (docs/benchmarks.md); 0 = off"

// lookupRange validates a --lookup value (as a usage error, before the
// model loads).
func lookupRange(n int) error {
	if n < 0 || n > engine.MaxLookup {
		return usagef("--lookup %d must be in [0, %d] (0 = off)", n, engine.MaxLookup)
	}
	return nil
}

// gpuLayersUsage is the --gpu-layers flag's help.
const gpuLayersUsage = "decoder layers on the GPU, the last ones (llama.cpp's -ngl): -1 = all, N = the last N with the embedding and the layers before them on the CPU (for a model larger than the card), 0 = none (the CPU alone), auto = as many as fit the free GPU memory with a KV cache of the context"

// placement resolves --gpu-layers against --device: the device to load on
// and engine.Options.GPULayers (0 = every layer). --gpu-layers 0 runs on
// the CPU; a positive count or auto with --device cpu is a usage error;
// with --device auto and no GPU the count is moot (the CPU runs it all).
func placement(device, gpuLayers string) (string, int, error) {
	s := strings.TrimSpace(gpuLayers)
	req := engine.GPULayersAuto
	if !strings.EqualFold(s, "auto") {
		n, err := strconv.Atoi(s)
		if err != nil || n < -1 {
			return "", 0, usagef("--gpu-layers must be a number of layers ≥ 0, -1 (all) or auto, not %q", gpuLayers)
		}
		req = n
		if n == -1 {
			req = engine.GPULayersAll
		}
	}
	dev, n, ok := engine.PlaceLayers(device, req)
	if !ok {
		return "", 0, usagef("--gpu-layers %s needs --device cuda or auto (with --device cpu every layer runs on the CPU)", strings.ToLower(s))
	}
	return dev, n, nil
}

// checkDevice validates a --device value.
func checkDevice(d string) error {
	switch strings.ToLower(d) {
	case "auto", "cpu", "cuda":
		return nil
	}
	return usagef("--device must be auto, cpu or cuda, not %q", d)
}

// kvCacheUsage is the --kv-cache flag's help.
const kvCacheUsage = "type of the cached keys and values: f16, f32 (exact) or q8 (int8 with a scale per 32 values: about half of f16's memory; CPU only)"

// parseKVCache maps the --kv-cache flag to a KV cache type.
func parseKVCache(s string) (backend.KVType, error) {
	t, err := backend.ParseKVType(s)
	if err != nil {
		return 0, usagef("--kv-cache must be %s, not %q", backend.KVTypeNames(), s)
	}
	return t, nil
}

// warnf prints a one-line warning on stderr.
func warnf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "upg: warning: "+format+"\n", a...)
}

// checkThreads validates a --threads value and warns when it asks for more
// threads than there are cores: a worker waiting for a core holds up every
// parallel step.
func checkThreads(n int) error {
	if n < 0 {
		return usagef("--threads %d must be ≥ 0 (0 = one per physical core)", n)
	}
	if c := cpu.PhysicalCores(); n > c {
		warnf("--threads %d is more than the %d physical cores this process may use; decoding is fastest with at most one thread per core", n, c)
	}
	return nil
}

func (f *modelFlags) load() (*engine.Loaded, error) {
	if f.ctx < 0 {
		return nil, usagef("--ctx %d must be ≥ 0 (0 = the model's context, at most 4096)", f.ctx)
	}
	if err := checkThreads(f.threads); err != nil {
		return nil, err
	}
	if err := checkDevice(f.device); err != nil {
		return nil, err
	}
	if err := lookupRange(f.lookup); err != nil {
		return nil, err
	}
	device, gpuLayers, err := placement(f.device, f.gpu)
	if err != nil {
		return nil, err
	}
	path, err := modelPath(f.path)
	if err != nil {
		return nil, err
	}
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
	start := time.Now()
	l, err := engine.Load(path, engine.Options{Threads: f.threads, Device: device, GPULayers: gpuLayers, Ctx: f.ctx, KVCache: kv, AllowLongCtx: f.longCtx,
		Lookup: f.lookup})
	if err != nil {
		return nil, err
	}
	if trained := l.Model.Config.MaxPositions; trained > 0 && f.ctx > trained {
		if !f.longCtx {
			l.Close()
			return nil, usagef("--ctx %d is more than the %d positions %s was trained for (its max_position_embeddings/context_length); use --ctx %d or less, or add --allow-long-ctx to go past it (the text degrades)",
				f.ctx, trained, path, trained)
		}
		warnf("--ctx %d is more than the %d positions %s was trained for; expect the text to degrade past them", f.ctx, trained, path)
	}
	f.loadTime = time.Since(start)
	return l, nil
}

// checkFits explains a prompt that does not fit the context before any
// work is done: what the limit is and what raises it.
func (f *modelFlags) checkFits(l *engine.Loaded, n int) error {
	capacity := l.Capacity()
	if n < capacity {
		return nil
	}
	trained := l.Model.Config.MaxPositions
	switch {
	case trained > 0 && capacity >= trained && !f.longCtx:
		return usagef("prompt of %d tokens does not fit the %d-token context this model was trained for; shorten it (or go past the trained length with --ctx N --allow-long-ctx; the text degrades)", n, capacity)
	case f.longCtx || trained <= 0 || capacity >= trained:
		return usagef("prompt of %d tokens does not fit the context of %d tokens; raise --ctx", n, capacity)
	}
	return usagef("prompt of %d tokens does not fit the context of %d tokens; raise --ctx (this model was trained for up to %d)", n, capacity, trained)
}

// genFlags are the sampling and length flags of run and chat.
type genFlags struct {
	maxTokens int
	opts      sample.Options
	stops     []string
	ignoreEOS bool
	format    string            // "json": the output is one JSON object (constrain.JSON); else a JSON Schema file
	schema    *constrain.Schema // the schema file's automaton (validate reads and compiles it)
	unescaped bool              // stops already unescaped (validate runs again on /set)
}

func (g *genFlags) register(cmd *cobra.Command, defaultMax int) {
	fl := cmd.Flags()
	fl.IntVarP(&g.maxTokens, "max-tokens", "n", defaultMax, "most tokens to generate (0 = until end of text or context)")
	fl.Float32Var(&g.opts.Temperature, "temperature", 0.7, "sampling temperature; 0 = greedy")
	fl.IntVar(&g.opts.TopK, "top-k", 40, "sample from the k most likely tokens (0 = off)")
	fl.Float32Var(&g.opts.TopP, "top-p", 0.95, "nucleus sampling threshold (1 = off)")
	fl.Float32Var(&g.opts.MinP, "min-p", 0.05, "drop tokens below this fraction of the top probability (0 = off)")
	fl.Float32Var(&g.opts.RepeatPenalty, "repeat-penalty", 1.0, "penalty for recently generated tokens, e.g. 1.1 (1 = off)")
	fl.Float32Var(&g.opts.FrequencyPenalty, "frequency-penalty", 0, "subtracted from a token's logit for each time it was generated (OpenAI's; -2 to 2, 0 = off)")
	fl.Float32Var(&g.opts.PresencePenalty, "presence-penalty", 0, "subtracted from a token's logit once it was generated (OpenAI's; -2 to 2, 0 = off)")
	fl.Uint64Var(&g.opts.Seed, "seed", 0, "random seed; the same seed reproduces the same text (0 = random)")
	fl.StringArrayVar(&g.stops, "stop", nil, `stop when this text is generated (repeatable; escapes such as \n and \t are understood)`)
	fl.BoolVar(&g.ignoreEOS, "ignore-eos", false, "keep generating past end-of-text tokens")
	fl.StringVar(&g.format, "format", "", `"json": constrain the output to one JSON object (tokens that cannot continue it are never sampled); a JSON Schema file: to one value it accepts, properties in its order`)
}

// validate checks the flags before any model is loaded, and unescapes the
// stop strings.
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
	case !(o.FrequencyPenalty >= -sample.PenaltyLimit && o.FrequencyPenalty <= sample.PenaltyLimit):
		return usagef("--frequency-penalty %v must be in [%d, %d]", o.FrequencyPenalty, -sample.PenaltyLimit, sample.PenaltyLimit)
	case !(o.PresencePenalty >= -sample.PenaltyLimit && o.PresencePenalty <= sample.PenaltyLimit):
		return usagef("--presence-penalty %v must be in [%d, %d]", o.PresencePenalty, -sample.PenaltyLimit, sample.PenaltyLimit)
	case g.format != "" && g.ignoreEOS:
		return usagef("--format and --ignore-eos do not go together: the value's end ends the text")
	}
	g.schema = nil
	if g.format != "" && g.format != "json" {
		b, err := os.ReadFile(g.format)
		if err != nil {
			return usagef(`--format %q: neither "json" nor a readable JSON Schema file: %v`, g.format, err)
		}
		// compiled now, before a model is loaded (the automaton does not
		// depend on the vocabulary: options gives it the model's)
		s, err := constrain.NewSchema(constrain.NewJSON(0, nil, nil, nil), b)
		if err != nil {
			return usagef("--format %s: %v", g.format, err)
		}
		g.schema = s
	}
	if g.unescaped {
		return nil
	}
	g.unescaped = true
	for i, s := range g.stops {
		u, err := unescape(s)
		if err != nil {
			return usagef("--stop %q: %v", s, err)
		}
		if u == "" {
			return usagef("--stop must not be empty")
		}
		g.stops[i] = u
	}
	return nil
}

// options are the sampling options for a request to e.
func (g *genFlags) options(e *engine.Engine) sample.Options {
	o := g.opts
	if o.Seed == 0 {
		o.Seed = randomSeed()
	}
	switch {
	case g.schema != nil:
		o.Constraint = g.schema.For(e.JSON())
	case g.format == "json":
		o.Constraint = e.JSON()
	}
	return o
}

// promptText finds run's prompt: the argument, a file (--file), or standard
// input ("-", or no argument while standard input is not a terminal).
func promptText(args []string, file string) (string, error) {
	switch {
	case file != "" && len(args) == 1:
		return "", usagef("give PROMPT or --file, not both")
	case file != "":
		return readInput(file)
	case len(args) == 1 && args[0] == "-":
		return readInput("-")
	case len(args) == 1:
		return args[0], nil
	case !isTerminal(os.Stdin):
		s, err := readInput("-")
		if err == nil && s == "" {
			return "", usagef("no prompt: give PROMPT as an argument, --file FILE, or text on standard input")
		}
		return s, err
	}
	return "", usagef("no prompt: give PROMPT as an argument, --file FILE, or - to read standard input")
}

// stripsPrefixSpace reports whether tok is a SentencePiece tokenizer that
// puts a space in front of the text it encodes and removes it again when it
// decodes: text generated right after BOS then starts with that space, which
// llama.cpp and llama2.c do not print.
func stripsPrefixSpace(tok tokenizer.Tokenizer) bool {
	ids := tok.Encode("a", false, false)
	return len(ids) > 0 && strings.HasPrefix(string(tok.TokenBytes(ids[0])), " ") &&
		!strings.HasPrefix(tok.Decode(ids[:1]), " ")
}

// interruptedError ends a command stopped by Ctrl-C (exit code 130, like a
// shell reports a process killed by SIGINT).
type interruptedError struct{}

func (interruptedError) Error() string { return "interrupted" }

// runJSON is what run --json prints.
type runJSON struct {
	Model           string   `json:"model"`
	Text            string   `json:"text"`
	PromptTokens    int      `json:"prompt_tokens"`
	GeneratedTokens int      `json:"generated_tokens"`
	StopReason      string   `json:"stop_reason"`
	LoadSeconds     float64  `json:"load_s"`
	TTFTSeconds     float64  `json:"time_to_first_token_s"`
	PrefillTokS     float64  `json:"prefill_tok_s"`
	DecodeTokS      *float64 `json:"decode_tok_s"` // null below two generated tokens
	LookupDrafted   int      `json:"lookup_drafted,omitempty"`
	LookupAccepted  int      `json:"lookup_accepted,omitempty"`
}

func newRunCmd() *cobra.Command {
	var mf modelFlags
	var gf genFlags
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run [flags] [PROMPT | -]",
		Short: "Generate a completion of PROMPT, streamed to stdout",
		Long: `Generate text that continues PROMPT. The prompt is the argument, the contents
of --file, or standard input ("-", or no argument with input piped in). Only the
generated text goes to stdout; a one-line summary (prompt and generated tokens,
load time, time to first token, prefill and decode speed) goes to stderr.
--json prints the text and the summary as one JSON object instead. Without
--model, the bundled demo model runs. Ctrl-C stops the generation (exit 130).

A quantized GGUF too large to dequantize in memory is converted once into a
cached .upg at its own bits per weight ($UPG_CACHE, default ~/.cache/upg;
UPG_GGUF_CONVERT=never runs the GGUF itself, slowly; =always converts any).`,
		Example: `  upg run "package main"
  upg run --model phi4.upg --temperature 0 --max-tokens 64 "The capital of France is"
  upg run --seed 7 --top-p 0.9 "It was a dark and stormy night"
  git diff | upg run --model phi4.upg --stop '\n\n' -
  upg run --json --file prompt.txt
  upg run --model phi4.upg --temperature 0 --lookup 2 --file edit-this-function.txt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gf.validate(); err != nil {
				return err
			}
			text, err := promptText(args, file)
			if err != nil {
				return err
			}
			l, err := mf.load()
			if err != nil {
				return err
			}
			defer l.Close()
			start := time.Now()
			prompt := l.EncodePrompt(text)
			if len(prompt) == 0 {
				return usagef("empty prompt: this tokenizer adds no BOS token, so there is nothing to start from; give some text")
			}
			if err := mf.checkFits(l, len(prompt)); err != nil {
				return err
			}
			strip := len(prompt) == 1 && prompt[0] == l.Tokenizer.BOS() && stripsPrefixSpace(l.Tokenizer)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			out := bufio.NewWriter(os.Stdout)
			var all strings.Builder
			first := true
			sampling := gf.options(l.Engine)
			st, err := l.Generate(ctx, engine.Request{
				Prompt: prompt, MaxTokens: gf.maxTokens, Sampling: sampling,
				Stop: gf.stops, IgnoreEOS: gf.ignoreEOS,
			}, func(s string) {
				if first && strip {
					s = strings.TrimPrefix(s, " ")
				}
				first = false
				if asJSON {
					all.WriteString(s)
					return
				}
				out.WriteString(s)
				out.Flush()
			})
			elapsed := time.Since(start)
			interrupted := ctx.Err() != nil
			if err != nil && !interrupted {
				return err
			}
			sum := summary{st: st, load: mf.loadTime}
			if st.GeneratedTokens > 0 || st.StopReason == "eos" {
				sum.ttft = elapsed - st.Decode // the engine times decoding from the first token
			}
			if asJSON {
				j := runJSON{Model: l.Checkpoint.Path, Text: all.String(), PromptTokens: st.PromptTokens,
					GeneratedTokens: st.GeneratedTokens, StopReason: st.StopReason, LoadSeconds: sum.load.Seconds(),
					TTFTSeconds: sum.ttft.Seconds(), PrefillTokS: st.PrefillTokS(), LookupDrafted: st.Drafted, LookupAccepted: st.Accepted}
				if st.GeneratedTokens >= 2 {
					d := st.DecodeTokS()
					j.DecodeTokS = &d
				}
				if err := json.NewEncoder(os.Stdout).Encode(j); err != nil {
					return err
				}
			} else {
				if isTerminal(os.Stdout) {
					out.WriteString("\n") // keep the shell prompt off the last line; pipes get only the text
				}
				out.Flush()
				sum.print()
			}
			if interrupted {
				return interruptedError{}
			}
			return nil
		},
	}
	mf.register(cmd)
	mf.registerLookup(cmd)
	gf.register(cmd, 128)
	cmd.Flags().StringVarP(&file, "file", "f", "", `read the prompt from this file ("-" = standard input)`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the text and the statistics as one JSON object on stdout")
	return cmd
}

// summary is the one-line report of a generation on stderr.
type summary struct {
	st         engine.Stats
	load, ttft time.Duration
}

func (s summary) print() {
	st := s.st
	var b strings.Builder
	fmt.Fprintf(&b, "[prompt %d tokens, generated %d tokens; load %s, first token %s; prefill %.1f tok/s",
		st.PromptTokens, st.GeneratedTokens, fmtDur(s.load), fmtDur(s.ttft), st.PrefillTokS())
	if st.GeneratedTokens >= 2 { // one token has no decode time to measure
		fmt.Fprintf(&b, ", decode %.1f tok/s", st.DecodeTokS())
	}
	if st.Drafted > 0 {
		fmt.Fprintf(&b, "; lookup kept %d of %d drafted tokens", st.Accepted, st.Drafted)
	}
	fmt.Fprintf(&b, "; stop: %s]\n", st.StopReason)
	os.Stderr.WriteString(b.String())
}

// fmtDur prints a duration in ms below a second, else in seconds.
func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
