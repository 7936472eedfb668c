// Package bench measures how fast a model runs on this machine and how
// close decoding comes to the memory-bandwidth roofline: decoding one token
// reads every weight once, so tokens/s × bytes read per token can at best
// equal the machine's streaming read bandwidth.
package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/sample"
)

// decodeWarmSteps is how many decode steps run untimed before the timed
// ones (Run).
const decodeWarmSteps = 2

// bwBytes is the buffer ReadBandwidth streams: far larger than any last-level cache.
const bwBytes = 1 << 30

// ReadBandwidth measures the multi-threaded streaming read bandwidth in
// GB/s (1e9 bytes/s): threads goroutines (0 = all CPUs) each read their own
// contiguous part of a 1 GiB buffer with vector loads; the best of several
// passes counts.
func ReadBandwidth(threads int) float64 {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	buf := make([]byte, bwBytes)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i >> 12) // fault every page in before timing
	}
	var sink uint64
	var mu sync.Mutex
	best := 0.0
	for pass := 0; pass < 5; pass++ {
		var wg sync.WaitGroup
		start := time.Now()
		for t := 0; t < threads; t++ {
			lo, hi := len(buf)*t/threads, len(buf)*(t+1)/threads
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := readBytes(buf[lo:hi])
				mu.Lock()
				sink ^= s
				mu.Unlock()
			}()
		}
		wg.Wait()
		if gbs := float64(len(buf)) / time.Since(start).Seconds() / 1e9; gbs > best {
			best = gbs
		}
	}
	runtime.KeepAlive(sink)
	runtime.KeepAlive(buf)
	buf = nil
	debug.FreeOSMemory() // give the 1 GiB back before a model is loaded
	return best
}

func readGo(b []byte) uint64 {
	var s uint64
	for _, v := range b {
		s += uint64(v)
	}
	return s
}

// MemAvailable returns /proc/meminfo's MemAvailable in bytes (memory that
// can be used without swapping, page cache included), or 0 if unknown.
func MemAvailable() int64 { return sysmem.Available() }

// Options configure Run.
type Options struct {
	Threads      int     // CPU threads; 0 = all cores
	Device       string  // backend: cpu (""), cuda or auto (engine.Options.Device)
	GPULayers    int     // engine.Options.GPULayers: 0 = every layer on the GPU
	PromptTokens int     // prefill length (default 512)
	GenTokens    int     // decoded tokens (default 128)
	Bandwidth    float64 // measured read bandwidth in GB/s; 0 = measure it
	Seed         uint64  // random prompt seed
	// Force runs even when the model file is larger than the available
	// memory (it would then be paged from disk on every token).
	Force bool
	// KVCache is the KV cache type (backend.KVF16 when unset, as in the engine).
	KVCache backend.KVType
	// DecodeProfile, when set, receives a CPU profile (pprof) of the
	// decode phase.
	DecodeProfile io.Writer
	// Batch is the number of sequences decoded together (default 1). They
	// share the prompt's first tokens (forked KV blocks) and differ from
	// its last token on, unless DistinctPrompts.
	Batch int
	// DistinctPrompts gives each of a batch's sequences a random prompt of
	// its own (prefilled one after another, not timed) instead of forking
	// the first one's: no KV blocks shared, as a server's unrelated requests
	// are.
	DistinctPrompts bool
	// Sampling draws each next token through the backend's Sample (the
	// zero value, greedy, is an argmax there: on a GPU, on the device);
	// sequence k's seed is Sampling.Seed + k.
	Sampling sample.Options
	// NoOverlap reads each decoding step's tokens back before queueing the
	// next step, as a backend that does not pipeline does; by default a
	// backend that pipelines (model.Context.Pipelines: the GPU) queues step
	// N+1 on the tokens it sampled before N's reach the host, as the engine
	// does (engine/overlap.go).
	NoOverlap bool
}

// Result is what Run measured.
type Result struct {
	Model   string `json:"model"`
	Kernel  string `json:"kernel"`
	KVCache string `json:"kv_cache"`
	Threads int    `json:"threads"`
	Layers  int    `json:"layers"`
	// GPULayers is the number of layers (the last ones) on the GPU: all of
	// them, fewer with --gpu-layers (the rest on the CPU), 0 on the CPU.
	GPULayers     int     `json:"gpu_layers"`
	ModelBytes    int64   `json:"model_bytes"`
	BytesPerToken int64   `json:"bytes_per_token"` // weight bytes read per decoded token
	PromptTokens  int     `json:"prompt_tokens"`
	GenTokens     int     `json:"gen_tokens"`
	ReadBandwidth float64 `json:"read_bandwidth_gbs"`
	// DeviceBandwidth is, for a model split over the CPU and a GPU
	// (GPULayers < Layers), the GPU's copy bandwidth; the roofline is then
	// the CPU layers' bytes at ReadBandwidth plus the rest at this.
	DeviceBandwidth float64 `json:"device_bandwidth_gbs,omitempty"`
	PrefillTokS     float64 `json:"prefill_tok_s"`
	DecodeTokS      float64 `json:"decode_tok_s"` // per sequence
	Batch           int     `json:"batch"`
	SharedPrompt    bool    `json:"shared_prompt"`          // a batch's sequences forked from one prompt
	AggregateTokS   float64 `json:"aggregate_decode_tok_s"` // all sequences together
	MsPerLayer      float64 `json:"ms_per_layer"`
	Sampling        string  `json:"sampling"` // "greedy", or the sampling options

	// DecodeCPUMsPerStep is the process's CPU time (all threads, spin-waits
	// included) per decode step: on a shared machine, with --threads 1, a
	// measure of the work that other processes disturb less than tok/s.
	DecodeCPUMsPerStep float64 `json:"decode_cpu_ms_per_step,omitempty"`
	EffectiveGBs       float64 `json:"effective_gbs"`
	RooflinePct        float64 `json:"roofline_pct"`
	LoadSeconds        float64 `json:"load_s"`
	// Device memory after the run (GPU backends): the process's use as the
	// driver reports it, UPG's own allocations, and the KV cache's share.
	DeviceMemoryBytes    int64 `json:"device_memory_bytes,omitempty"`
	DeviceAllocatedBytes int64 `json:"device_allocated_bytes,omitempty"`
	KVCacheBytes         int64 `json:"kv_cache_bytes"`
	// KVBlocksUsed is the KV pool's blocks held after decoding (a forked
	// batch shares its prompt's).
	KVBlocksUsed int `json:"kv_blocks_used"`
	// Graphs is how a GPU backend ran its steps (graphs captured and
	// replayed), over the whole run.
	Graphs *cuda.GraphStats `json:"graphs,omitempty"`
	// Overlapped says the decode steps were queued on the device's tokens
	// before the previous step's were read back (Options.NoOverlap).
	Overlapped bool `json:"overlapped"`
}

// CheckMemory returns an error naming the sizes when the file at path is
// larger than the memory available to hold it.
func CheckMemory(path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	if err := sysmem.Check(path); err != nil {
		return fmt.Errorf("%w; pass --force to measure anyway", err)
	}
	return nil
}

// Run loads the model at path and measures prefill of a random prompt
// (in blocks of engine.PrefillBlock tokens, as the engine does) and
// decoding of one token at a time.
func Run(path string, opts Options) (Result, error) {
	if opts.PromptTokens <= 0 {
		opts.PromptTokens = 512
	}
	if opts.GenTokens <= 0 {
		opts.GenTokens = 128
	}
	if !opts.Force {
		if err := CheckMemory(path); err != nil {
			return Result{}, err
		}
	}
	res := Result{Model: path, PromptTokens: opts.PromptTokens, GenTokens: opts.GenTokens, ReadBandwidth: opts.Bandwidth}
	start := time.Now()
	if opts.Batch <= 0 {
		opts.Batch = 1
	}
	res.Batch = opts.Batch
	res.Sampling = samplingName(opts.Sampling)
	l, err := engine.Load(path, engine.Options{Threads: opts.Threads, Device: opts.Device, GPULayers: opts.GPULayers, Ctx: opts.PromptTokens + decodeWarmSteps + opts.GenTokens + 1, KVCache: opts.KVCache,
		MaxSeqs: opts.Batch, StepTokens: max(engine.PrefillBlock, opts.Batch)})
	if err != nil {
		return res, err
	}
	defer l.Close()
	res.LoadSeconds = time.Since(start).Seconds()
	m := l.Model
	c := m.Config
	res.Kernel = engine.BackendName(m)
	res.KVCache = opts.KVCache.String()
	res.Threads = opts.Threads
	res.GPULayers = l.GPULayers
	for _, be := range l.Backends() {
		if t, ok := be.(interface{ Threads() int }); ok {
			res.Threads = t.Threads()
		}
	}
	// A GPU backend's roofline is its device memory's copy bandwidth. A
	// split's is the time to read the CPU layers' bytes at the host's
	// bandwidth plus the rest at the device's.
	stages := m.Stages()
	split := len(stages) > 1
	copyBW := func(be backend.Backend) (float64, bool, error) {
		g, ok := be.(interface{ CopyBandwidth() (float64, error) })
		if !ok {
			return 0, false, nil
		}
		bw, err := g.CopyBandwidth()
		return bw, true, err
	}
	if res.ReadBandwidth == 0 {
		bw, ok, err := copyBW(m.Backend())
		if err != nil {
			return res, err
		}
		if ok && !split {
			res.ReadBandwidth = bw
		} else {
			res.ReadBandwidth = ReadBandwidth(opts.Threads)
		}
	}
	res.Layers = c.Layers
	res.ModelBytes, res.BytesPerToken = modelBytes(l, path)
	var hostBytes int64 // a split's bytes per token on its first (CPU) stage
	if split {
		bw, _, err := copyBW(stages[len(stages)-1].Backend)
		if err != nil {
			return res, err
		}
		res.DeviceBandwidth = bw
		hostBytes = layerBytes(l, stages[0].End)
	}

	rng := rand.New(rand.NewPCG(opts.Seed, 1))
	prompt := make([]int, opts.PromptTokens)
	for i := range prompt {
		prompt[i] = rng.IntN(c.Vocab)
	}
	r := &runner{pool: l.Pool, ctx: l.Context(), hist: make([][]int, opts.Batch), tok: make([]int, opts.Batch)}
	for k := range opts.Batch {
		o := opts.Sampling
		o.Seed += uint64(k)
		s, err := sample.New(o)
		if err != nil {
			return res, err
		}
		r.samplers = append(r.samplers, s)
	}
	// Warm-up: one token pages every weight in.
	if err := r.feed([]int{0}, [][]int{prompt[:1]}); err != nil {
		return res, err
	}
	r.pool.Truncate(0, 0)

	start = time.Now()
	if err := r.prefill(0, prompt); err != nil {
		return res, err
	}
	res.PrefillTokS = float64(len(prompt)) / time.Since(start).Seconds()

	// The other sequences share all but the prompt's last position, and
	// feed a token of their own there; or each prefills its own prompt.
	seqs := make([]int, opts.Batch)
	next := make([][]int, opts.Batch)
	next[0] = []int{r.tok[0]}
	res.SharedPrompt = opts.Batch > 1 && !opts.DistinctPrompts
	for k := 1; k < opts.Batch; k++ {
		seqs[k] = k
		if opts.DistinctPrompts {
			for i := range prompt {
				prompt[i] = rng.IntN(c.Vocab)
			}
			if err := r.prefill(k, prompt); err != nil {
				return res, err
			}
			next[k] = []int{r.tok[0]}
			continue
		}
		if err := r.pool.Fork(k, 0, len(prompt)-1); err != nil {
			return res, err
		}
		next[k] = []int{rng.IntN(c.Vocab)}
	}
	if res.SharedPrompt {
		if err := r.feed(seqs[1:], next[1:]); err != nil {
			return res, err
		}
		for k := 1; k < opts.Batch; k++ {
			next[k][0] = r.tok[k-1]
		}
	}
	// Untimed decode steps first: a GPU backend runs a step's queue op by op
	// the first time and captures it as a graph the second (together
	// several steps' time for Phi-4); a server pays that once per step size,
	// so the timed steps are the steady state.
	for range decodeWarmSteps {
		if err := r.feed(seqs, next); err != nil {
			return res, err
		}
		for k := range seqs {
			next[k][0] = r.tok[k]
		}
	}
	if opts.DecodeProfile != nil {
		if err := pprof.StartCPUProfile(opts.DecodeProfile); err != nil {
			return res, err
		}
	}
	cpu0 := processCPU()
	start = time.Now()
	if r.overlaps(opts) {
		if err := r.decodeOverlapped(seqs, next, opts.GenTokens); err != nil {
			return res, err
		}
		res.Overlapped = true
	} else {
		for i := 0; i < opts.GenTokens; i++ {
			if err := r.feed(seqs, next); err != nil {
				return res, err
			}
			for k := range seqs {
				next[k][0] = r.tok[k]
			}
		}
	}
	el := time.Since(start).Seconds()
	res.DecodeCPUMsPerStep = (processCPU() - cpu0) * 1000 / float64(opts.GenTokens)
	if opts.DecodeProfile != nil {
		pprof.StopCPUProfile()
	}
	res.KVCacheBytes = r.pool.Bytes()
	res.KVBlocksUsed = r.pool.Blocks() - r.pool.FreeBlocks()
	if g, ok := m.Backend().(interface {
		DeviceMemory() (process, allocated int64, err error)
	}); ok {
		if res.DeviceMemoryBytes, res.DeviceAllocatedBytes, err = g.DeviceMemory(); err != nil {
			return res, err
		}
	}
	if g, ok := m.Backend().(cuda.GraphReporter); ok {
		st := g.GraphStats()
		res.Graphs = &st
	}
	res.DecodeTokS = float64(opts.GenTokens) / el
	res.AggregateTokS = res.DecodeTokS * float64(opts.Batch)
	res.MsPerLayer = el / float64(opts.GenTokens) / float64(c.Layers) * 1000
	res.EffectiveGBs = float64(res.BytesPerToken) * res.DecodeTokS / 1e9
	switch {
	case split && res.ReadBandwidth > 0 && res.DeviceBandwidth > 0:
		roof := float64(hostBytes)/res.ReadBandwidth + float64(res.BytesPerToken-hostBytes)/res.DeviceBandwidth // ns
		res.RooflinePct = 100 * roof * res.DecodeTokS / 1e9
	case res.ReadBandwidth > 0:
		res.RooflinePct = 100 * res.EffectiveGBs / res.ReadBandwidth
	}
	return res, nil
}

// runner feeds tokens of several sequences through the engine's context
// and KV pool, one forward pass per call, as the engine's Step does, and
// draws each sequence's next token with the backend's Sample, with no text.
type runner struct {
	pool     *kvcache.Pool
	ctx      *model.Context
	step     backend.Step
	samplers []*sample.Sampler // per sequence id
	hist     [][]int           // per sequence id: its tokens so far
	reqs     []backend.SampleRequest
	res      []backend.SampleResult
	tok      []int  // the next token of the k-th sequence of the last feed
	one      [1]int // the placeholder a PrevTokens step feeds (0)
}

// feed runs toks[k] after the stored positions of sequence seqs[k], for
// every k, in one step, and samples each sequence's next token.
func (r *runner) feed(seqs []int, toks [][]int) error {
	if err := r.forward(seqs, toks); err != nil {
		return err
	}
	r.res = slices.Grow(r.res[:0], len(seqs))[:len(seqs)]
	if err := r.ctx.Sample(r.reqs, r.res); err != nil {
		return err
	}
	for k := range seqs {
		r.tok[k] = r.res[k].Token
	}
	return nil
}

// forward runs one step — toks[k] after the stored positions of sequence
// seqs[k], or, with toks nil, one token each: the ones the last SampleAsync
// sampled (backend.Step.PrevTokens; a placeholder in the history until
// they are read) — with the logits of each sequence's last token, and
// leaves their sample requests in r.reqs.
func (r *runner) forward(seqs []int, toks [][]int) error {
	st := &r.step
	st.Reset()
	r.reqs = r.reqs[:0]
	for k, id := range seqs {
		feed := r.one[:] // a placeholder: the device has the token
		if toks != nil {
			feed = toks[k]
		}
		if err := r.pool.Reserve(id, len(feed)); err != nil {
			return err
		}
		r.pool.AppendStep(st, id, feed)
		st.Out = append(st.Out, int32(len(st.Tokens)-1))
		r.hist[id] = append(r.hist[id], feed...)
		r.reqs = append(r.reqs, backend.SampleRequest{Sampler: r.samplers[id], History: r.hist[id], TopLogprobs: -1})
	}
	st.PrevTokens = toks == nil
	if err := r.ctx.Forward(st, r.pool.KV()); err != nil {
		return err
	}
	for k, id := range seqs {
		n := 1
		if toks != nil {
			n = len(toks[k])
		}
		r.pool.Commit(id, n)
	}
	return nil
}

// overlaps reports whether decoding steps can be queued on the tokens
// the backend sampled before they are read back (Options.NoOverlap).
func (r *runner) overlaps(opts Options) bool {
	return !opts.NoOverlap && !opts.Sampling.ReadsHistory() && r.ctx.Pipelines()
}

// decodeOverlapped decodes steps tokens for each of seqs, the first being
// next[k], queueing each step on the device's tokens before reading the
// previous step's back (engine/overlap.go does the same for a server's
// batches); r.tok then holds the tokens of the last step.
func (r *runner) decodeOverlapped(seqs []int, next [][]int, steps int) error {
	wait, err := r.launch(seqs, next)
	if err != nil {
		return err
	}
	for i := range steps {
		var after backend.SampleWait
		if i+1 < steps {
			if after, err = r.launch(seqs, nil); err != nil {
				return err
			}
		}
		r.res = slices.Grow(r.res[:0], len(seqs))[:len(seqs)]
		if err := wait(r.res); err != nil {
			return err
		}
		for k, id := range seqs {
			r.tok[k] = r.res[k].Token
			if after != nil { // the token the next step fed, in its history
				r.hist[id][len(r.hist[id])-1] = r.tok[k]
			}
		}
		wait = after
	}
	return nil
}

// launch queues one decoding step of seqs — token toks[k][0] each, or,
// with toks nil, the tokens the last launch sampled — and samples it
// without waiting.
func (r *runner) launch(seqs []int, toks [][]int) (backend.SampleWait, error) {
	if err := r.forward(seqs, toks); err != nil {
		return nil, err
	}
	return r.ctx.SampleAsync(r.reqs)
}

// prefill feeds prompt to sequence seq in blocks of engine.PrefillBlock
// tokens, as the engine does; r.tok[0] is then its next token.
func (r *runner) prefill(seq int, prompt []int) error {
	for i := 0; i < len(prompt); i += engine.PrefillBlock {
		if err := r.feed([]int{seq}, [][]int{prompt[i:min(i+engine.PrefillBlock, len(prompt))]}); err != nil {
			return err
		}
	}
	return nil
}

// modelBytes returns the total tensor bytes and the bytes one decoded token
// reads: everything except the embedding table (of which one row is read),
// unless the embedding doubles as the output head.
func modelBytes(l *engine.Loaded, path string) (total, perToken int64) {
	f := l.Checkpoint.Upgfile()
	if f == nil {
		total = sysmem.PathSize(path)
		return total, total
	}
	var embed int64
	hasHead := false
	for _, t := range f.Tensors {
		total += t.Length
		switch t.Name {
		case "model.embed_tokens.weight":
			embed = t.Length
		case "lm_head.weight":
			hasHead = true
		}
	}
	perToken = total
	if hasHead && !l.Model.Config.TieEmbeddings {
		perToken -= embed
	}
	return total, perToken
}

// layerBytes is the tensor bytes of layers 0..n-1 (what the first stage of
// a split reads per token, but for one embedding row).
func layerBytes(l *engine.Loaded, n int) int64 {
	f := l.Checkpoint.Upgfile()
	if f == nil {
		return 0
	}
	var b int64
	for _, t := range f.Tensors {
		var li int
		if _, err := fmt.Sscanf(t.Name, "model.layers.%d.", &li); err == nil && li < n {
			b += t.Length
		}
	}
	return b
}

// samplingName describes sampling options for the result.
func samplingName(o sample.Options) string {
	if o.Argmax() {
		return "greedy"
	}
	return fmt.Sprintf("temperature %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g", o.Temperature, o.TopK, o.TopP, o.MinP, o.RepeatPenalty)
}
