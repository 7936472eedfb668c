package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/model"
)

// loadOptions are upg_model_load's options (JSON).
type loadOptions struct {
	Device  string `json:"device"`   // "auto" (the GPU when one is usable, else the CPU), "cpu" or "cuda" ("" = auto)
	Ctx     int    `json:"ctx"`      // 0 = the model's, at most 4096
	Threads int    `json:"threads"`  // 0 = all cores
	KVCache string `json:"kv_cache"` // "f16" (default), "f32" or "q8"
	Lookup  int    `json:"lookup"`   // prompt-lookup draft tokens per step (0 = off)
	// MaxBatch is the most sequences a batch generation steps together
	// (upg serve --max-batch; 0 = 1). Above 1 the KV cache is sized as
	// upg serve sizes it: half the memory left after the weights, at most
	// MaxBatch full contexts.
	MaxBatch int `json:"max_batch"`
	// GPULayers is how many decoder layers run on the GPU, the last ones
	// (upg run --gpu-layers): null or absent = every layer, N ≥ 0 = the last
	// N (0: none, the CPU alone), "auto" = as many as fit the free device
	// memory with a KV cache of the context.
	GPULayers json.RawMessage `json:"gpu_layers"`
}

// maxBatchLimit bounds load's max_batch (upg serve's --max-batch has no
// bound; 256 sequences is past where a batch step gains anything).
const maxBatchLimit = 256

// placement resolves the device and the engine's GPU layer count from o.
func (o loadOptions) placement() (device string, gpuLayers int, err error) {
	device = strings.ToLower(o.Device)
	switch device {
	case "":
		device = "auto"
	case "auto", "cpu", "cuda":
	default:
		return "", 0, argErrorf("device must be \"auto\", \"cpu\" or \"cuda\", not %q", o.Device)
	}
	raw := strings.TrimSpace(string(o.GPULayers))
	req := engine.GPULayersAll
	switch {
	case raw == "" || raw == "null":
	case raw == `"auto"`:
		req = engine.GPULayersAuto
	default:
		if err := json.Unmarshal(o.GPULayers, &req); err != nil || req < 0 {
			return "", 0, argErrorf("gpu_layers must be None (every layer), a number of layers ≥ 0 or \"auto\", not %s", raw)
		}
	}
	dev, n, ok := engine.PlaceLayers(device, req)
	if !ok {
		return "", 0, argErrorf("gpu_layers %s needs device \"cuda\" or \"auto\" (with device \"cpu\" every layer runs on the CPU)", raw)
	}
	return dev, n, nil
}

// modelObj is a loaded model behind a handle. Every call holds life for
// reading (closing waits for them and unmaps the file). The engine's
// conversation belongs to one generation at a time, from its first poll to
// its end (gen, a semaphore, so that a waiting poll can time out): two
// generations on one model take turns, while generations on two models run
// at once. run is held while a forward pass (a generation's step, logits)
// uses the model's backend.
type modelObj struct {
	life   sync.RWMutex
	closed bool // under life
	gen    chan struct{}
	run    sync.Mutex
	l      *engine.Loaded

	single *model.Single // logits for research use, float32 cache; sized on demand

	gensMu  sync.Mutex
	gens    map[*genObj]bool // started and not yet finished
	batches map[*jobObj]bool // batch generations running
	closing bool             // under gensMu: no new generations
}

func loadModel(path string, o loadOptions) (*modelObj, error) {
	device, gpuLayers, err := o.placement()
	if err != nil {
		return nil, err
	}
	if o.Ctx < 0 {
		return nil, argErrorf("ctx %d must be ≥ 0 (0 = the model's context, at most 4096)", o.Ctx)
	}
	if o.Threads < 0 {
		return nil, argErrorf("threads %d must be ≥ 0 (0 = all cores)", o.Threads)
	}
	if o.MaxBatch < 0 || o.MaxBatch > maxBatchLimit {
		return nil, argErrorf("max_batch %d must be in [1, %d] (0 = 1)", o.MaxBatch, maxBatchLimit)
	}
	if o.Lookup < 0 || o.Lookup > engine.MaxLookup {
		return nil, argErrorf("lookup %d must be in [0, %d] (0 = off)", o.Lookup, engine.MaxLookup)
	}
	var kv backend.KVType // "" = f16
	if o.KVCache != "" {
		var err error
		if kv, err = backend.ParseKVType(o.KVCache); err != nil {
			return nil, argErrorf("kv_cache must be %s, not %q", backend.KVTypeNames(), o.KVCache)
		}
	}
	if path == "" {
		return nil, argErrorf("no model path given")
	}
	opts := engine.Options{Threads: o.Threads, Device: device, GPULayers: gpuLayers, Ctx: o.Ctx, KVCache: kv, Lookup: o.Lookup}
	if o.MaxBatch > 1 {
		opts.MaxSeqs, opts.KVBudget = o.MaxBatch, -1
	}
	l, err := engine.Load(path, opts)
	if err != nil {
		return nil, abiError{err} // engine.ErrDevice: codeDevice (classify)
	}
	return &modelObj{l: l, gen: make(chan struct{}, 1), gens: map[*genObj]bool{}, batches: map[*jobObj]bool{}}, nil
}

// close ends the model's generations and batch generations (waiting for
// polls and steps in progress) and unmaps the model.
func (m *modelObj) close() error {
	m.gensMu.Lock()
	m.closing = true
	var gens []*genObj
	for g := range m.gens {
		gens = append(gens, g)
	}
	for j := range m.batches { // they stop after their step; life.Lock below waits for them
		j.cancel.Store(true)
	}
	m.gensMu.Unlock()
	for _, g := range gens {
		g.release()
	}
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.single = nil
	return m.l.Close()
}

// modelInfo is upg_model_info's JSON.
type modelInfo struct {
	Path      string `json:"path"`
	Format    string `json:"format"`
	Device    string `json:"device"`     // the backends it runs on: "cpu/avx2", "cuda/NVIDIA H100 80GB HBM3", or a split's stages
	GPULayers int    `json:"gpu_layers"` // decoder layers on the GPU (0: the CPU alone)
	Arch      string `json:"architecture"`
	Vocab     int    `json:"vocab_size"` // logits per position
	TokVocab  int    `json:"tokenizer_vocab_size"`
	Ctx       int    `json:"ctx"`
	Threads   int    `json:"threads"`
	KVCache   string `json:"kv_cache"`
	Lookup    int    `json:"lookup"`
	MaxBatch  int    `json:"max_batch"`    // sequences a batch generation steps together
	KVTokens  int    `json:"kv_positions"` // positions the KV cache holds, over all sequences
	Template  string `json:"chat_template"`
	BOS       int    `json:"bos_token_id"`
	EOS       []int  `json:"eos_token_ids"`
	Params    int64  `json:"parameters"`
	Layers    int    `json:"layers"`
	Hidden    int    `json:"hidden_size"`
	MaxPos    int    `json:"max_position_embeddings"`
	StepLimit int    `json:"step_tokens"`
}

// use holds the model open (release with m.life.RUnlock).
func (m *modelObj) use() error {
	m.life.RLock()
	if m.closed {
		m.life.RUnlock()
		return errClosed
	}
	return nil
}

func (m *modelObj) info() (modelInfo, error) {
	if err := m.use(); err != nil {
		return modelInfo{}, err
	}
	defer m.life.RUnlock()
	l := m.l
	c := l.Model.Config
	kv := l.Config().KVCache.String()
	threads := 0
	if t, ok := l.Model.Backend().(interface{ Threads() int }); ok {
		threads = t.Threads()
	}
	return modelInfo{Path: l.Checkpoint.Path, Format: l.Checkpoint.Format, Device: engine.BackendName(l.Model), GPULayers: l.GPULayers, Arch: c.HFArchitecture, Vocab: c.Vocab,
		TokVocab: l.Tokenizer.VocabSize(), Ctx: l.Capacity(), Threads: threads, KVCache: kv, Lookup: l.Config().Lookup,
		MaxBatch: l.Config().MaxSeqs, KVTokens: l.Pool.Blocks() * l.Pool.BlockSize(),
		Template: l.Template.Name, BOS: l.Tokenizer.BOS(), EOS: l.Tokenizer.EOS(), Params: l.Checkpoint.NumParams(),
		Layers: c.Layers, Hidden: c.Hidden, MaxPos: c.MaxPositions, StepLimit: l.Config().StepTokens}, nil
}

func (m *modelObj) tokenize(text string, addSpecial, parseSpecial bool) ([]int, error) {
	if err := m.use(); err != nil {
		return nil, err
	}
	defer m.life.RUnlock()
	return m.l.Tokenizer.Encode(text, addSpecial, parseSpecial), nil
}

func (m *modelObj) detokenize(ids []int32) (string, error) {
	if err := m.use(); err != nil {
		return "", err
	}
	defer m.life.RUnlock()
	n := m.l.Tokenizer.VocabSize()
	v := make([]int, len(ids))
	for i, id := range ids {
		if id < 0 || int(id) >= n {
			return "", argErrorf("token id %d at index %d is out of range [0, %d)", id, i, n)
		}
		v[i] = int(id)
	}
	return m.l.Tokenizer.Decode(v), nil
}

// logits runs ids from an empty cache (float32 keys and values, exact)
// and writes the logits of the last position, or of every position when
// all, into out (len(ids) or 1 rows of the model's vocabulary).
func (m *modelObj) logits(ids []int32, all bool, out []float32) error {
	if err := m.use(); err != nil {
		return err
	}
	defer m.life.RUnlock()
	V := m.l.Model.Config.Vocab
	n := len(ids)
	rows := 1
	if all {
		rows = n
	}
	switch {
	case n == 0:
		return argErrorf("logits of an empty token list")
	case n > m.l.Capacity():
		return argErrorf("%d tokens do not fit the context of %d tokens (load the model with a larger ctx)", n, m.l.Capacity())
	case len(out) < rows*V:
		return argErrorf("output buffer holds %d floats, %d needed", len(out), rows*V)
	}
	toks := make([]int, n)
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			return argErrorf("token id %d at index %d is out of range [0, %d)", id, i, V)
		}
		toks[i] = int(id)
	}
	m.run.Lock()
	defer m.run.Unlock()
	// One forward pass of all tokens: size the context to the request
	// (rounded up so that similar lengths reuse it), not to the model's
	// whole context, whose logits buffer would hold ctx × vocab floats.
	if m.single == nil || m.single.Ctx.Options().Positions < n {
		size := 64
		for size < n {
			size *= 2
		}
		size = min(size, m.l.Capacity())
		m.single = nil
		s, err := m.l.Model.NewSingle(size, backend.KVF32)
		if err != nil {
			return err
		}
		m.single = s
	}
	m.single.Reset()
	from := n - rows
	res, err := m.single.Forward(toks, from)
	if err != nil {
		return fmt.Errorf("logits: %w", err)
	}
	copy(out, res[:rows*V])
	return nil
}
