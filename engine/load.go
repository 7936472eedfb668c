package engine

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/ggufcache"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
)

// Options configure Load.
type Options struct {
	Threads int // CPU worker threads; 0 = all cores
	// Device picks the backend: "cpu" (also ""), "cuda" (the first NVIDIA
	// GPU; an error when there is none), or "auto" (the GPU when one is
	// usable, else the CPU with one log line).
	Device string
	Ctx    int // context window in tokens; 0 = the model's maximum (capped at 4096)
	// KVCache is the type of the cached keys and values: backend.KVF16
	// (half the memory and attention bandwidth of float32; the zero value,
	// the default, as in llama.cpp), backend.KVF32 (exact) or backend.KVQ8
	// (int8 with a scale per 32 values: about half of f16's bytes; CPU
	// only, so Device "auto" runs on the CPU with it).
	KVCache backend.KVType
	// AllowLongCtx lets Ctx exceed the positions the model was trained
	// for (the text degrades past them); otherwise Ctx is capped there.
	AllowLongCtx bool
	// MaxSeqs, StepTokens, KVBudget and BlockSize: see Config (0 = defaults).
	// KVBudget < 0 sizes the cache from the memory left once the weights
	// are loaded (kvcache.DefaultBudget): the device's free memory on a
	// GPU, the host's available memory less the model file on the CPU.
	MaxSeqs, StepTokens int
	KVBudget            int64
	BlockSize           int
	PrefixCache         bool // see Config.PrefixCache
	// GGUF says what to do with a block-quantized GGUF (package ggufcache):
	// the zero value follows $UPG_GGUF_CONVERT (default: convert one too
	// large to dequantize in memory once into a cached .upg and run that);
	// ggufcache.Never runs the file's own weights exactly.
	GGUF ggufcache.Mode
}

// Loaded is an engine together with the files it maps.
type Loaded struct {
	*Engine
	Checkpoint *checkpoint.Checkpoint
	// KVBudgetWhy says how the KV pool's size was chosen.
	KVBudgetWhy string
	backend     interface{ Close() }
}

// Load opens a model of any supported format and prepares it to generate.
func Load(path string, opts Options) (*Loaded, error) {
	start := time.Now()
	ck, err := ggufcache.Open(path, ggufcache.Options{Mode: opts.GGUF, Threads: opts.Threads})
	if err != nil {
		return nil, err
	}
	path = ck.Path // a quantized GGUF's cached conversion, or path itself
	if err := sysmem.Check(path); err != nil {
		// mmap'd weights cannot be OOM-killed, but paging makes every token slow: say so first.
		slog.Warn("model larger than available memory", "problem", err.Error())
	}
	fail := func(err error) (*Loaded, error) {
		ck.Close()
		return nil, err
	}
	tok, err := ck.Tokenizer()
	if err != nil {
		return fail(err)
	}
	if tok.VocabSize() > ck.Config.Vocab {
		return fail(fmt.Errorf("%s: tokenizer has %d tokens but the model only %d", path, tok.VocabSize(), ck.Config.Vocab))
	}
	w, err := model.LoadWeights(ck.Config, ck.Tensors)
	if err != nil {
		if !strings.Contains(err.Error(), path) {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return fail(err)
	}
	device := opts.Device
	if opts.KVCache == backend.KVQ8 && strings.EqualFold(device, "auto") {
		slog.Info("running on the CPU", "reason", "the q8 KV cache is implemented on the CPU only")
		device = "cpu"
	}
	be, err := NewBackend(device, opts.Threads)
	if err != nil {
		return fail(err)
	}
	if err := checkFitsDevice(be, w); err != nil {
		be.Close()
		if !strings.EqualFold(device, "auto") {
			return fail(fmt.Errorf("%s: %w", path, err))
		}
		slog.Warn("running on the CPU", "reason", err.Error())
		be = cpu.New(opts.Threads)
	}
	m, err := model.New(ck.Config, w, be)
	if err != nil {
		be.Close()
		return fail(err)
	}
	ctx := opts.Ctx
	if ctx <= 0 {
		ctx = min(4096, max(ck.Config.MaxPositions, 512))
	}
	if ck.Config.MaxPositions > 0 && ctx > ck.Config.MaxPositions && !opts.AllowLongCtx {
		ctx = ck.Config.MaxPositions
	}
	budget, why := opts.KVBudget, "--kv-budget"
	if budget == 0 {
		why = "every sequence's full context"
	}
	if budget < 0 {
		free, where := be.FreeMemory(), "device"
		if free <= 0 {
			where = "host"
			if avail := sysmem.Available(); avail > 0 {
				free = avail - sysmem.PathSize(path) // ≤ 0: DefaultBudget treats it as unknown
			}
		}
		bs := opts.BlockSize
		if bs <= 0 {
			bs = kvcache.DefaultBlockSize
		}
		po := kvcache.Options{Layers: ck.Config.Layers, KVHeads: ck.Config.KVHeads, HeadDim: ck.Config.HeadDim, Type: opts.KVCache, BlockSize: bs}
		budget, why = kvcache.DefaultBudget(po, ctx, max(opts.MaxSeqs, 1), free)
		why += " (" + where + " memory)"
	}
	e, err := New(m, tok, ck.Template(tok), Config{Ctx: ctx, StepTokens: opts.StepTokens, MaxSeqs: opts.MaxSeqs,
		KVCache: opts.KVCache, KVBudget: budget, BlockSize: opts.BlockSize, PrefixCache: opts.PrefixCache})
	if err != nil {
		be.Close()
		return fail(err)
	}
	slog.Debug("model loaded", "path", path, "format", ck.Format, "arch", ck.Config.Arch,
		"layers", ck.Config.Layers, "backend", be.Name(), "template", e.Template.Name, "elapsed", time.Since(start))
	return &Loaded{Engine: e, Checkpoint: ck, backend: be, KVBudgetWhy: why}, nil
}

// Close stops the backend and unmaps the model.
func (l *Loaded) Close() error {
	l.backend.Close()
	return l.Checkpoint.Close()
}
