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
	Lookup              int  // see Config.Lookup
	LookupWhole         bool // see Config.LookupWhole
	NoOverlap           bool // see Config.NoOverlap
	// GPULayers is how many decoder layers run on the GPU when Device
	// picks one (llama.cpp's --n-gpu-layers), counted from the last: 0 (the
	// default) = every layer; n > 0 = the last min(n, layers), with the
	// embedding and the layers before them on the CPU (model.NewSplit: the
	// final norm, the output head and sampling stay on the GPU);
	// GPULayersAuto = as many as fit the free device memory with a KV cache
	// of Ctx positions (none: the CPU). No layer on the GPU is Device "cpu";
	// on the CPU the value is ignored.
	GPULayers int
	// GGUF says what to do with a block-quantized GGUF (package ggufcache):
	// the zero value follows $UPG_GGUF_CONVERT (default: convert one too
	// large to dequantize in memory once into a cached .upg and run that);
	// ggufcache.Never runs the file's own weights exactly.
	GGUF ggufcache.Mode
}

// GPULayersAuto asks Load to put as many layers on the GPU as fit.
const GPULayersAuto = -1

// GPULayersAll, in a request to PlaceLayers, asks for every layer on the
// GPU (Options.GPULayers 0).
const GPULayersAll = -2

// PlaceLayers resolves a front end's request for GPU layers (GPULayersAll,
// GPULayersAuto, or n ≥ 0, where 0 is none: the CPU, whatever the device)
// into Options' Device and GPULayers, as upg run's --device and
// --gpu-layers and the C ABI's device and gpu_layers mean them. ok is false
// for layers asked of device "cpu", which the caller words as its own
// options' error.
func PlaceLayers(device string, req int) (dev string, gpuLayers int, ok bool) {
	switch {
	case req == GPULayersAll:
		return device, 0, true
	case req == 0:
		return "cpu", 0, true
	case strings.EqualFold(device, "cpu"):
		return "", 0, false
	}
	return device, req, true
}

// Loaded is an engine together with the files it maps.
type Loaded struct {
	*Engine
	Checkpoint *checkpoint.Checkpoint
	// KVBudgetWhy says how the KV pool's size was chosen.
	KVBudgetWhy string
	// GPULayers is the number of layers on a device backend (the last
	// ones): every layer, fewer in a split, 0 when the model runs on the CPU.
	GPULayers int
	backends  []backend.Backend
}

// newBackend is NewBackend; tests put a fake device backend here.
var newBackend = NewBackend

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
	if opts.GPULayers < GPULayersAuto {
		return fail(fmt.Errorf("GPULayers %d: want ≥ 0 or GPULayersAuto", opts.GPULayers))
	}
	c := ck.Config
	ctx := opts.Ctx
	if ctx <= 0 {
		ctx = min(4096, max(c.MaxPositions, 512))
	}
	if c.MaxPositions > 0 && ctx > c.MaxPositions && !opts.AllowLongCtx {
		ctx = c.MaxPositions
	}
	bs := opts.BlockSize
	if bs <= 0 {
		bs = kvcache.DefaultBlockSize
	}
	po := kvcache.Options{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: opts.KVCache, BlockSize: bs}
	device := opts.Device
	if opts.KVCache == backend.KVQ8 && strings.EqualFold(device, "auto") {
		slog.Info("running on the CPU", "reason", "the q8 KV cache is implemented on the CPU only")
		device = "cpu"
	}
	be, err := newBackend(device, opts.Threads)
	if err != nil {
		return fail(deviceError{err})
	}
	// One context's KV cache per layer: what --gpu-layers auto and the
	// "fits" hint leave room for.
	lo := po
	lo.Layers = 1
	plan, err := planDevice(be, w, opts.GPULayers, be.FreeMemory(), kvcache.BudgetFor(lo, ctx, 1), ctx)
	if err != nil {
		be.Close()
		if !strings.EqualFold(device, "auto") {
			return fail(fmt.Errorf("%s: %w", path, deviceError{err}))
		}
		slog.Warn("running on the CPU", "reason", err.Error())
		be, plan = cpu.New(opts.Threads), gpuPlan{layers: c.Layers}
	}
	if plan.why != "" {
		slog.Info("GPU layers", "gpu_layers", plan.layers, "reason", plan.why)
	}
	backends := []backend.Backend{be}
	gpuLayers := 0
	var m *model.Model
	switch {
	case !isDevice(be):
		if cpuOverlap() {
			m, err = model.New(c, w, backend.SyncPipeline(be))
			break
		}
		m, err = model.New(c, w, be)
	case plan.layers == 0: // not one layer on the GPU: the CPU alone
		be.Close()
		be = cpu.New(opts.Threads)
		backends = []backend.Backend{be}
		m, err = model.New(c, w, be)
	case plan.layers < c.Layers:
		host := cpu.New(opts.Threads)
		backends = []backend.Backend{host, be}
		gpuLayers = plan.layers
		m, err = model.NewSplit(c, w, host, be, plan.layers)
	default:
		gpuLayers = c.Layers
		m, err = model.New(c, w, be)
	}
	closeAll := func() {
		for i := len(backends) - 1; i >= 0; i-- {
			backends[i].Close()
		}
	}
	if err != nil {
		closeAll()
		return fail(err)
	}
	budget, why := opts.KVBudget, "--kv-budget"
	if budget == 0 {
		why = "every sequence's full context"
	}
	if budget < 0 {
		free, where := kvFree(m, path)
		budget, why = kvcache.DefaultBudget(po, ctx, max(opts.MaxSeqs, 1), free)
		why += " (" + where + ")"
	}
	e, err := New(m, tok, ck.Template(tok), Config{Ctx: ctx, StepTokens: opts.StepTokens, MaxSeqs: opts.MaxSeqs,
		KVCache: opts.KVCache, KVBudget: budget, BlockSize: opts.BlockSize, PrefixCache: opts.PrefixCache,
		Lookup: opts.Lookup, LookupWhole: opts.LookupWhole, NoOverlap: opts.NoOverlap})
	if err != nil {
		closeAll()
		return fail(err)
	}
	slog.Debug("model loaded", "path", path, "format", ck.Format, "arch", c.Arch,
		"layers", c.Layers, "backend", BackendName(m), "gpu_layers", gpuLayers, "template", e.Template.Name, "elapsed", time.Since(start))
	return &Loaded{Engine: e, Checkpoint: ck, backends: backends, KVBudgetWhy: why, GPULayers: gpuLayers}, nil
}

// kvFree is the memory a KV budget may take (kvcache.DefaultBudget's
// free), and where it is, for the log: the device's free memory when the
// model runs there, the host's available memory less the model file on the
// CPU. A split model's pool holds each block's layers on their own backend,
// so the budget is the smallest of each backend's free memory scaled by
// all layers over its layers: no backend is given more than its share.
func kvFree(m *model.Model, path string) (int64, string) {
	host := int64(0)
	if avail := sysmem.Available(); avail > 0 {
		host = avail - sysmem.PathSize(path) // ≤ 0: DefaultBudget treats it as unknown
	}
	st := m.Stages()
	if len(st) == 1 {
		if free := st[0].Backend.FreeMemory(); free > 0 {
			return free, "device memory"
		}
		return host, "host memory"
	}
	L := int64(m.Config.Layers)
	free, where := int64(0), ""
	for _, s := range st {
		n := int64(s.End - s.First)
		f, w := s.Backend.FreeMemory(), fmt.Sprintf("device memory for the %d GPU layers' share", n)
		if f <= 0 {
			f, w = host, fmt.Sprintf("host memory for the %d CPU layers' share", n)
		}
		if f <= 0 {
			continue
		}
		if f = f / n * L; free == 0 || f < free {
			free, where = f, w
		}
	}
	if free == 0 {
		where = "free memory unknown"
	}
	return free, where
}

// BackendName names the backends a model runs on: the backend's name, or
// a split's "cpu/avx2 (layers 0-19) + cuda/NVIDIA H200 (layers 20-39)".
func BackendName(m *model.Model) string {
	st := m.Stages()
	if len(st) == 1 {
		return st[0].Backend.Name()
	}
	var b strings.Builder
	for i, s := range st {
		if i > 0 {
			b.WriteString(" + ")
		}
		fmt.Fprintf(&b, "%s (layers %d-%d)", s.Backend.Name(), s.First, s.End-1)
	}
	return b.String()
}

// Backends are the backends the model runs on, the head's last.
func (l *Loaded) Backends() []backend.Backend { return l.backends }

// Close stops the backends and unmaps the model.
func (l *Loaded) Close() error {
	for i := len(l.backends) - 1; i >= 0; i-- {
		l.backends[i].Close()
	}
	return l.Checkpoint.Close()
}
