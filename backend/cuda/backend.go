//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// Backend is backend.Backend on one NVIDIA GPU. Ops are queued as they are
// called and run, all in one visit to the owner thread, when a result is
// needed (Read, Sample, Write, SetStep). A queue whose ops and arguments
// were seen before (a decode step of the same shape) is captured as a CUDA
// graph the second time and replayed from then on: the step's changing
// data (tokens, positions, slots, block tables, output rows) lives in the
// StepBuf's device memory, so the same graph serves every such step.
//
// Every method is atomic (one mutex); several contexts may share it.
type Backend struct {
	mu sync.Mutex
	d  *Device

	err error // first failure of a queued op; reported by Sample, Read panics

	// queued ops and the hash of their kinds and arguments; made keeps
	// each op (its closure and the fusion it left open) by the key after
	// it, so a step that repeats the calls of one before reuses them and
	// allocates nothing (queue.go)
	ops       []*queued
	key       uint64
	noCapture bool
	made      map[uint64]*queued
	// upload copies the last SetStep's host arrays to the device at the
	// start of the next flush, in the same visit to the owner thread as the
	// step's graph (a decode step costs one Do: upload, graph, token back)
	upload func() error

	graphsOn bool
	profTag  string     // the last step's size, for the kernel profile (ProfileEnv)
	host     *hostTimes // where a step's host time goes (TraceEnv), nil when not tracing
	graphs   *graphCache

	// fuse enables the peephole fusions of step ops (fuse.go): set unless
	// UPG_CUDA_FUSE=0 or the loaded kernels lack the fused ones. last is the
	// last queued op when the next one may fuse with it.
	fuse bool
	last *pend
	// resOp is the last queued GEMV with a residual epilogue, resOut its
	// residual (an RMSNorm right after it may leave its work to its reader)
	resOp  *queued
	resOut DevPtr

	// workspaces, grown on demand (growing drops the captured graphs)
	sc       *Scratch
	part     DevPtr
	partSize int64
	attnCnt  DevPtr // attn_split_rotq's per-segment counters (zero between launches)
	cntSize  int64
	ids      DevPtr // argmax: the token ids of idsN rows, then upg_argmax's workspace for them (argmaxTokens)
	idsN     int
	idsSize  int64
	smp      DevPtr // sampling rows, penalized tokens and outputs (sample.go)
	smpSize  int64
	smpHost  []byte
	smpOut   []byte // tokens (and log-probabilities) read back
	smpHist  []int32
	smpHc    int // room for penalized tokens in smp
	maxCols  int
	weights  []*weight

	// host overlap (pipeline.go): the last SampleAsync's tokens, the
	// page-locked ring its tokens come back through (and earlier, smaller
	// ones, freed at Close), and the steps whose metadata goes up through
	// page-locked halves of their own
	prev     prevTokens
	results  *pinned
	smpStage *pinned // SampleAsync's sampling rows go up from here
	oldRings []*pinned
	steps    []*stepBuf
}

// New opens GPU ordinal, loads the kernels and returns the backend.
func New(ordinal int) (*Backend, error) {
	if _, err := memCapFromEnv(); err != nil { // a bad value is reported even without a GPU
		return nil, err
	}
	maxGraphs, err := graphCacheSize()
	if err != nil {
		return nil, err
	}
	if err := Probe(); err != nil {
		return nil, err
	}
	d, err := Open(ordinal)
	if err != nil {
		return nil, err
	}
	if err := d.LoadKernels(); err != nil {
		d.Close()
		return nil, err
	}
	if profiling() {
		d.prof = newProfiler()
	}
	if tracing() {
		if err := d.Do(d.startTrace); err != nil {
			d.Close()
			return nil, err
		}
	}
	b := &Backend{d: d, graphsOn: os.Getenv("UPG_CUDA_GRAPHS") != "0" && d.prof == nil, graphs: newGraphCache(maxGraphs), made: map[uint64]*queued{},
		key: fnvOffset, fuse: os.Getenv(FuseEnv) != "0" && d.hasFusedKernels()}
	d.clusterOK = d.hasClusterKernels()
	if d.trace != nil {
		b.host = &hostTimes{}
	}
	return b, nil
}

// NewBackend is New as a backend.Backend (the constructor every platform
// has; elsewhere it reports that there is no CUDA backend).
func NewBackend(ordinal int) (backend.Backend, error) {
	b, err := New(ordinal)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// CopyBandwidth measures the device-to-device copy bandwidth in GB/s,
// bytes read plus bytes written (1 GiB copied 10 times, median) — the
// roofline `upg bench` compares decode with.
func (b *Backend) CopyBandwidth() (float64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	const n = 1 << 30
	src, err := b.d.Alloc(n, "a bandwidth test")
	if err != nil {
		return 0, err
	}
	defer b.d.Free(src)
	dst, err := b.d.Alloc(n, "a bandwidth test")
	if err != nil {
		return 0, err
	}
	defer b.d.Free(dst)
	var times []float64
	err = b.d.Do(func() error {
		e0, err := b.d.eventCreate()
		if err != nil {
			return err
		}
		defer b.d.eventDestroy(e0)
		e1, err := b.d.eventCreate()
		if err != nil {
			return err
		}
		defer b.d.eventDestroy(e1)
		for i := 0; i < 12; i++ {
			if err := b.d.eventRecord(e0); err != nil {
				return err
			}
			if err := call("cuMemcpyDtoDAsync", sym.cuMemcpyDtoDAsync, uintptr(dst), uintptr(src), n, b.d.stream); err != nil {
				return err
			}
			if err := b.d.eventRecord(e1); err != nil {
				return err
			}
			ms, err := b.d.eventElapsed(e0, e1)
			if err != nil {
				return err
			}
			if i >= 2 {
				times = append(times, float64(ms))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Float64s(times)
	return 2 * n / (times[len(times)/2] * 1e-3) / 1e9, nil
}

// Device is the GPU the backend runs on.
func (b *Backend) Device() *Device { return b.d }

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cuda/" + b.d.Name }

// DeviceMemory reports the device memory in use: by the whole process as
// the driver counts it (total − free, the context's own memory included)
// and by UPG's allocations (weights, KV cache, workspaces).
func (b *Backend) DeviceMemory() (process, allocated int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	err = b.d.Do(func() error {
		free, total, err := driverMemInfo()
		if err != nil {
			return err
		}
		process, allocated = int64(total-free), int64(b.d.used)
		return nil
	})
	return
}

// FreeMemory is the device's free memory (0 if the driver cannot say).
func (b *Backend) FreeMemory() int64 {
	free, _, err := b.d.MemInfo()
	if err != nil {
		return 0
	}
	return int64(free)
}

// Close implements backend.Backend.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	b.dropGraphs()
	if p := b.d.prof; p != nil {
		_ = b.d.Do(func() error { p.collect(b.d); return nil })
		p.report(os.Stderr)
	}
	if b.d.trace != nil {
		b.host.report(os.Stderr)
		_ = b.d.Do(func() error { return b.d.trace.report(b.d, os.Stderr) })
	}
	for _, w := range b.weights {
		w.free(b.d)
	}
	_ = b.d.Do(func() error {
		for _, s := range b.steps {
			b.d.freePinned(s.stage)
		}
		for _, p := range append(b.oldRings, b.results, b.smpStage) {
			b.d.freePinned(p)
		}
		return nil
	})
	b.d.Close()
}

// buffer is float32 device memory.
type buffer struct {
	p DevPtr
	n int
}

func (x *buffer) Len() int { return x.n }

func bufOf(x backend.Buffer) *buffer {
	p, ok := x.(*buffer)
	if !ok {
		panic(fmt.Sprintf("cuda: buffer %T does not belong to the CUDA backend", x))
	}
	return p
}

func viewPtr(v backend.View) DevPtr { return bufOf(v.Buf).p + DevPtr(4*v.Off) }

// weight is an uploaded matrix or vector.
type weight struct {
	rows, cols int
	g          *DenseGPU     // matrix
	vec        DevPtr        // vector
	ones       bool          // a vector of ones (an RMSNorm gain folded into its readers: selfQuant)
	host       tensor.Matrix // the source, for host fallbacks (overlay embeddings)
}

func (w *weight) Rows() int { return w.rows }
func (w *weight) Cols() int { return w.cols }

func (w *weight) free(d *Device) {
	if w.g != nil {
		w.g.Free(d)
	}
	if w.vec != 0 {
		d.Free(w.vec)
	}
}

func weightOf(x backend.Weight) *weight {
	w, ok := x.(*weight)
	if !ok {
		panic(fmt.Sprintf("cuda: weight %T does not belong to the CUDA backend", x))
	}
	return w
}

// NewBuffer implements backend.Backend.
func (b *Backend) NewBuffer(n int) (backend.Buffer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.d.Alloc(int64(4*max(n, 1)), "activations")
	if err != nil {
		return nil, err
	}
	return &buffer{p: p, n: n}, nil
}

// LoadMatrix implements backend.Backend: dense and overlay matrices are
// repacked for the fused kernels; other encodings are decoded to fp16.
func (b *Backend) LoadMatrix(m tensor.Matrix) (backend.Weight, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.d.UploadMatrix(m)
	if err != nil {
		return nil, err
	}
	w := &weight{rows: m.Rows(), cols: m.Cols(), g: g, host: m}
	b.weights = append(b.weights, w)
	b.maxCols = max(b.maxCols, m.Cols())
	return w, nil
}

// LoadVector implements backend.Backend.
func (b *Backend) LoadVector(v []float32) (backend.Weight, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.d.Alloc(int64(4*max(1, len(v))), "weights")
	if err != nil {
		return nil, err
	}
	if err := b.d.UploadF32(p, v); err != nil {
		return nil, err
	}
	w := &weight{rows: 1, cols: len(v), vec: p, ones: allOnes(v)}
	b.weights = append(b.weights, w)
	return w, nil
}

// kvStore is paged KV storage: per layer, keys then values, each block
// ((block·H + head)·bs + offset)·hd.
type kvStore struct {
	spec     backend.KVSpec
	k, v     DevPtr
	perLayer int64 // bytes of one layer's keys (or values)
}

func (s *kvStore) Spec() backend.KVSpec { return s.spec }

func kvOf(x backend.KV) *kvStore {
	s, ok := x.(*kvStore)
	if !ok {
		panic(fmt.Sprintf("cuda: KV storage %T does not belong to the CUDA backend", x))
	}
	return s
}

// NewKV implements backend.Backend.
func (b *Backend) NewKV(spec backend.KVSpec) (backend.KV, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Type != backend.KVF16 && spec.Type != backend.KVF32 {
		return nil, fmt.Errorf("cuda: the %v KV cache is not implemented on the CUDA backend (it is on the CPU): use --kv-cache f16 or f32, or --device cpu", spec.Type)
	}
	if err := attnHeadDim(spec.HeadDim, spec.Type == backend.KVF16); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	per := int64(spec.Blocks) * int64(spec.KVHeads) * int64(spec.BlockSize) * spec.Type.RowBytes(spec.HeadDim)
	s := &kvStore{spec: spec, perLayer: per}
	var err error
	if s.k, err = b.d.Alloc(per*int64(spec.Layers), "the KV cache (keys)"); err != nil {
		return nil, err
	}
	if s.v, err = b.d.Alloc(per*int64(spec.Layers), "the KV cache (values)"); err != nil {
		b.d.Free(s.k)
		return nil, err
	}
	return s, nil
}

// rope is a rotary embedding's tables on the device.
type rope struct {
	spec     backend.RopeSpec
	cos, sin DevPtr
}

// NewRope implements backend.Backend.
func (b *Backend) NewRope(spec backend.RopeSpec) (backend.Rope, error) {
	if spec.Dim <= 0 || spec.Dim%2 != 0 || len(spec.InvFreq) < spec.Dim/2 || spec.Positions <= 0 {
		return nil, fmt.Errorf("cuda: invalid rotary embedding (dim %d, %d frequencies, %d positions)", spec.Dim, len(spec.InvFreq), spec.Positions)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cos, sin := spec.Tables()
	r := &rope{spec: spec}
	var err error
	if r.cos, err = b.d.Alloc(int64(4*len(cos)), "rotary tables"); err != nil {
		return nil, err
	}
	if r.sin, err = b.d.Alloc(int64(4*len(sin)), "rotary tables"); err != nil {
		return nil, err
	}
	if err := b.d.UploadF32(r.cos, cos); err != nil {
		return nil, err
	}
	return r, b.d.UploadF32(r.sin, sin)
}

// stepBuf holds a step's metadata in one device allocation: tokens, pos,
// slot, seq, out (lim.Tokens int32 each), then the block tables (lim.Seqs ×
// lim.BlocksPerSeq int32).
type stepBuf struct {
	lim                         backend.StepLimits
	dev                         DevPtr
	tokens, pos, slot, seq, out DevPtr
	tables                      DevPtr
	shared                      DevPtr // sharedWords words: sharedPrefix's blocks and least position + 1
	host                        []int32
	n, nOut                     int
	hostTokens                  []int32
	stage                       *pinned // the page-locked halves the metadata goes up from (uploadStep)
	splits                      int     // attention splits covering BlocksPerSeq blocks
	oneSeq                      bool    // every token of the step belongs to one sequence
	maxPos                      int     // the step's furthest position (attnGrouped)
}

func boolKey(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (s *stepBuf) N() int { return s.n }

// prefixWords is the step's shared words as SetStep wrote them into host
// (sharedPrefix): the blocks every token's table holds in common and the
// least position + 1.
func (s *stepBuf) prefixWords() (blocks, minPos1 int) {
	T := s.lim.Tokens
	return int(s.host[5*T]), int(s.host[5*T+1])
}

// sharedWords is the step metadata's words for sharedPrefix (4: the block
// tables after them stay 16-byte aligned).
const sharedWords = 4

// sharesSplit reports whether a step whose shared words are blocks and
// minPos1 (sharedPrefix) has a split of chunk positions that every token
// holds in the same blocks (bs positions each): the positions below both
// words, at least one whole split of them.
func sharesSplit(blocks, minPos1, bs, chunk int) bool {
	return chunk > 0 && min(blocks*bs, minPos1) >= chunk
}

// sharedPrefix returns how many blocks at the front of the tables of the
// step's tokens' sequences are the same blocks in every one, and the
// step's least position + 1: the positions below both hold the same keys
// and values for every token, and every token attends to all of them
// (the tensor-core attention reads them once per group of tokens, attn_tc).
// A step of one token or none shares nothing.
func sharedPrefix(st *backend.Step) (blocks, minPos1 int32) {
	if len(st.Tokens) < 2 || len(st.Seq) < len(st.Tokens) || len(st.Pos) < len(st.Tokens) {
		return 0, 0
	}
	first := int(st.Seq[0])
	if first < 0 || first >= len(st.Tables) {
		return 0, 0
	}
	ref := st.Tables[first]
	blocks, minPos1 = int32(len(ref)), st.Pos[0]+1
	for i := range st.Tokens {
		minPos1 = min(minPos1, st.Pos[i]+1)
		q := int(st.Seq[i])
		if q < 0 || q >= len(st.Tables) {
			return 0, 0
		}
		if q == first || st.Seq[i-1] == st.Seq[i] || blocks == 0 {
			continue
		}
		t := st.Tables[q]
		k := int32(0)
		for k < blocks && int(k) < len(t) && t[k] == ref[k] {
			k++
		}
		blocks = k
	}
	return blocks, max(minPos1, 0)
}

func stepOf(x backend.StepBuf) *stepBuf {
	s, ok := x.(*stepBuf)
	if !ok {
		panic(fmt.Sprintf("cuda: step %T does not belong to the CUDA backend", x))
	}
	return s
}

// NewStep implements backend.Backend.
func (b *Backend) NewStep(lim backend.StepLimits) (backend.StepBuf, error) {
	if lim.Tokens <= 0 || lim.Seqs <= 0 || lim.BlocksPerSeq <= 0 {
		return nil, fmt.Errorf("cuda: invalid step limits %+v", lim)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	words := 5*lim.Tokens + sharedWords + lim.Seqs*lim.BlocksPerSeq
	p, err := b.d.Alloc(int64(4*words), "step metadata")
	if err != nil {
		return nil, err
	}
	s := &stepBuf{lim: lim, dev: p, host: make([]int32, words)}
	b.steps = append(b.steps, s)
	T := DevPtr(4 * lim.Tokens)
	s.tokens, s.pos, s.slot, s.seq, s.out, s.shared = p, p+T, p+2*T, p+3*T, p+4*T, p+5*T
	s.tables = s.shared + 4*sharedWords
	if err := b.grow(lim.Tokens, b.maxCols); err != nil {
		return nil, err
	}
	return s, nil
}

// grow makes the GEMV workspace hold tokens × cols; growing frees the old
// one after the GPU is idle and drops captured graphs.
func (b *Backend) grow(tokens, cols int) error {
	if cols == 0 || b.sc != nil && b.sc.Tokens >= tokens && b.sc.Cols >= cols {
		return nil
	}
	if b.sc != nil {
		tokens, cols = max(tokens, b.sc.Tokens), max(cols, b.sc.Cols)
	}
	b.flush()
	b.dropGraphs()
	if b.sc != nil {
		_ = b.d.Do(b.d.sync)
		b.sc.Free(b.d)
	}
	sc, err := b.d.NewScratch(tokens, cols)
	if err != nil {
		return err
	}
	b.sc = sc
	return nil
}

// ensureZeroed is ensure for counters: a new allocation is zeroed (the
// kernels that count in it leave it at zero).
func (b *Backend) ensureZeroed(p *DevPtr, size *int64, n int64, what string) error {
	if *size >= n {
		return nil
	}
	if err := b.ensure(p, size, n, what); err != nil {
		return err
	}
	return b.d.Fill32(*p, 0, int(n/4))
}

// ensure grows *p to at least n bytes (idle GPU, graphs dropped).
func (b *Backend) ensure(p *DevPtr, size *int64, n int64, what string) error {
	if *size >= n {
		return nil
	}
	b.flush()
	b.dropGraphs()
	if *p != 0 {
		_ = b.d.Do(b.d.sync)
		b.d.Free(*p)
	}
	q, err := b.d.Alloc(n, what)
	if err != nil {
		*p, *size = 0, 0
		return err
	}
	*p, *size = q, n
	return nil
}

// SetStep implements backend.Backend.
func (b *Backend) SetStep(dst backend.StepBuf, st *backend.Step) error {
	s := stepOf(dst)
	n := len(st.Tokens)
	if n > s.lim.Tokens || len(st.Tables) > s.lim.Seqs || len(st.Out) > s.lim.Tokens {
		return fmt.Errorf("cuda: step of %d tokens in %d sequences exceeds the context's limits (%d tokens, %d sequences)", n, len(st.Tables), s.lim.Tokens, s.lim.Seqs)
	}
	for _, t := range st.Tables {
		if len(t) > s.lim.BlocksPerSeq {
			return fmt.Errorf("cuda: block table of %d blocks exceeds the context's limit of %d", len(t), s.lim.BlocksPerSeq)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	if b.d.prof != nil {
		b.profTag = fmt.Sprintf("%4d tokens", n)
	}
	h, T := s.host, s.lim.Tokens
	clear(h)
	copy(h[0:], st.Tokens)
	copy(h[T:], st.Pos)
	copy(h[2*T:], st.Slot)
	copy(h[3*T:], st.Seq)
	copy(h[4*T:], st.Out)
	h[5*T], h[5*T+1] = sharedPrefix(st)
	for i, t := range st.Tables {
		copy(h[5*T+sharedWords+i*s.lim.BlocksPerSeq:], t)
	}
	s.n, s.nOut = n, len(st.Out)
	s.maxPos = 0
	for _, p := range st.Pos {
		s.maxPos = max(s.maxPos, int(p))
	}
	s.oneSeq = n > 0
	for _, q := range st.Seq {
		if q != st.Seq[0] {
			s.oneSeq = false
			break
		}
	}
	var prevIDs DevPtr
	if st.PrevTokens {
		// the tokens the last SampleAsync sampled: from the host when it
		// had them there, else copied on the device after the upload
		if b.prev.n < n {
			return fmt.Errorf("cuda: step of %d tokens on the previous sample's %d", n, b.prev.n)
		}
		if b.prev.host != nil {
			copy(h[0:], b.prev.host[:n])
		} else {
			prevIDs = b.prev.ids
		}
	}
	s.hostTokens = append(s.hostTokens[:0], h[:n]...)
	words := 5*T + sharedWords + len(st.Tables)*s.lim.BlocksPerSeq
	// h stays as it is until the next flush, which SetStep itself runs
	// first; the copy is queued in stream order (no wait for the GPU)
	b.upload = func() error { return b.d.uploadStep(s, words, prevIDs, n) }
	return nil
}

// flush runs the pending step upload and the queued ops: replaying a graph
// captured for the same queue, capturing one when the queue repeats, or
// running them one by one.
func (b *Backend) flush() { b.flushThen(nil) }

// flushThen is flush followed by then (when not nil), on the owner thread
// in the same Do: one hand-off to it instead of two.
func (b *Backend) flushThen(then func() error) {
	up := b.upload
	b.upload = nil
	if len(b.ops) == 0 && up == nil && then == nil {
		return
	}
	ops, key := b.ops, b.key^uint64(len(b.ops))
	capture := b.graphsOn && !b.noCapture
	b.ops, b.key, b.noCapture, b.last = b.ops[:0], fnvOffset, false, nil
	d := b.d
	// the host timestamps of a flush that ends a step with its results,
	// when tracing (hostTimes)
	var t *[4]time.Time
	if b.host != nil && then != nil {
		t = &[4]time.Time{time.Now()}
	}
	err := d.Do(func() error {
		if t != nil {
			t[1] = time.Now()
		}
		if up != nil {
			if err := up(); err != nil {
				return err
			}
		}
		if len(ops) > 0 {
			if err := b.run(ops, key, capture); err != nil {
				return err
			}
		}
		if then == nil {
			return nil
		}
		if t != nil {
			t[2] = time.Now()
		}
		err := then()
		if t != nil {
			t[3] = time.Now()
		}
		return err
	})
	if t != nil {
		b.host.add(*t, time.Now())
	}
	clear(ops)
	if err != nil && b.err == nil {
		b.err = err
	}
}

// run runs a flushed queue (owner thread).
func (b *Backend) run(ops []*queued, key uint64, capture bool) error {
	d := b.d
	if capture {
		if g, ok := b.graphs.get(key); ok {
			return d.graphLaunch(g)
		}
		if b.graphs.second(key) {
			if err := d.beginCapture(); err != nil {
				return err
			}
			for _, q := range ops {
				if err := q.run(); err != nil {
					d.endCapture()
					return err
				}
			}
			g, err := d.endCapture()
			if err != nil {
				return err
			}
			if old := b.graphs.put(key, g); old != 0 {
				// the evicted graph may still run on the stream
				if err := d.sync(); err != nil {
					return err
				}
				d.graphDestroy(old)
			}
			return d.graphLaunch(g)
		}
	} else {
		b.graphs.stats.Eager++
	}
	for _, q := range ops {
		if err := q.run(); err != nil {
			return err
		}
	}
	if d.prof != nil {
		d.prof.tag = b.profTag
		d.prof.collect(d)
	}
	return nil
}

func (b *Backend) dropGraphs() {
	clear(b.made) // their closures may hold what is being freed
	gs := b.graphs.drop()
	if len(gs) == 0 {
		return
	}
	_ = b.d.Do(func() error {
		for _, g := range gs {
			b.d.graphDestroy(g)
		}
		return nil
	})
}

// GraphCount reports how many step graphs the backend holds (tests).
func (b *Backend) GraphCount() int { return b.GraphStats().Held }

// GraphStats reports how the backend has run its step queues: as graphs
// replayed, captured, or op by op.
func (b *Backend) GraphStats() GraphStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.graphs.snapshot()
}

// Write implements backend.Backend.
func (b *Backend) Write(dst backend.Buffer, off int, src []float32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	if err := b.d.UploadF32(bufOf(dst).p+DevPtr(4*off), src); err != nil && b.err == nil {
		b.err = err
	}
}

// Read implements backend.Backend. A failed op before it panics: the
// values would be garbage.
func (b *Backend) Read(dst []float32, src backend.Buffer, off int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	if b.err == nil {
		b.err = b.d.DownloadF32(dst, bufOf(src).p+DevPtr(4*off))
	}
	if b.err != nil {
		panic(b.err)
	}
}

// Op codes for the queue's key.
const (
	opEmbed = iota + 1
	opRMS
	opRMSOut
	opMatMul
	opBias
	opAdd
	opRope
	opStoreKV
	opAttn
	opSwiGLU
	opArgmax
	opSample
	opPstep
)

// Embed implements backend.Backend.
func (b *Backend) Embed(dst backend.Buffer, table backend.Weight, s backend.StepBuf) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w, st, out := weightOf(table), stepOf(s), bufOf(dst).p
	n := st.n
	if w.g.ovK > 0 { // overlay: decode on the host
		b.noCapture = true
		row := make([]float32, n*w.cols)
		for i, t := range st.hostTokens {
			w.host.DecodeRows(row[i*w.cols:(i+1)*w.cols], int(t), int(t)+1)
		}
		// the rows are this step's: an op of its own, never reused
		b.enqueueOnce(opEmbed, func() error { return b.d.htod(out, unsafe.Pointer(&row[0]), 4*len(row)) }, uint64(out))
		return
	}
	if q := b.enqueue(opEmbed, uint64(out), uint64(w.g.codes), uint64(st.tokens), uint64(n)); q.run == nil {
		q.run = func() error { return b.d.embed(w.g, st.tokens, out, n) }
	}
}

// RMSNorm implements backend.Backend.
func (b *Backend) RMSNorm(dst, x backend.Buffer, w backend.Weight, eps float32, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, in, wv := bufOf(dst).p, bufOf(x).p, weightOf(w)
	q := b.enqueue(opRMS, uint64(o), uint64(in), uint64(wv.vec), uint64(math.Float32bits(eps)), uint64(n))
	if q.run == nil {
		q.run = func() error { return b.d.rmsnorm(o, in, wv.vec, eps, wv.cols, 0, n) }
	}
	if b.fusing(n) && o != in {
		if q.pend == nil {
			q.pend = &pend{kind: opRMS, idx: len(b.ops) - 1, out: o, n: n, cols: wv.cols,
				rotq: func(g *DenseGPU) func() error {
					return func() error { return b.d.rmsRotq(g, o, in, wv.vec, eps, n, b.sc) }
				}}
		}
		// right after the GEMV whose epilogue added to x (and left its row
		// groups' sums of squares: res_write), with a gain of ones, the
		// reader may quantize x itself (selfQuant, fuseMatMul)
		q.pend.selfq = nil
		if n == 1 && wv.ones && useSelfQuant && len(b.ops) >= 2 && b.ops[len(b.ops)-2] == b.resOp && b.resOut == in {
			if q.pend.sqMade == nil { // once for the kept op: a step queues without allocating (queue.go)
				q.pend.sqMade = &selfQuant{x: in, h: o, eps: eps}
			}
			q.pend.selfq = q.pend.sqMade
		}
		b.last = q.pend
	}
}

// RMSNormOut implements backend.Backend.
func (b *Backend) RMSNormOut(dst, x backend.Buffer, w backend.Weight, eps float32, s backend.StepBuf) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, in, wv, st := bufOf(dst).p, bufOf(x).p, weightOf(w), stepOf(s)
	n := st.nOut
	if q := b.enqueue(opRMSOut, uint64(o), uint64(in), uint64(wv.vec), uint64(math.Float32bits(eps)), uint64(st.out), uint64(n)); q.run == nil {
		q.run = func() error { return b.d.rmsnorm(o, in, wv.vec, eps, wv.cols, st.out, n) }
	}
}

// MatMul implements backend.Backend.
func (b *Backend) MatMul(dst, x backend.Buffer, w backend.Weight, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, in, g := bufOf(dst).p, bufOf(x).p, weightOf(w).g
	if err := b.grow(n, g.C); err != nil && b.err == nil {
		b.err = err
		return
	}
	if b.fuse {
		b.fuseMatMul(g, o, in, n)
		return
	}
	if q := b.enqueue(opMatMul, uint64(o), uint64(in), uint64(g.codes|g.w16), uint64(n)); q.run == nil {
		q.run = func() error { return b.d.matMul(g, o, in, g.C, n, b.sc) }
	}
}

// AddBias implements backend.Backend.
func (b *Backend) AddBias(x backend.Buffer, bias backend.Weight, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, wv := bufOf(x).p, weightOf(bias)
	if q := b.enqueue(opBias, uint64(p), uint64(wv.vec), uint64(n)); q.run == nil {
		q.run = func() error { return b.d.bias(p, wv.vec, wv.cols, n) }
	}
}

// Add implements backend.Backend.
func (b *Backend) Add(dst, src backend.Buffer, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, i := bufOf(dst).p, bufOf(src).p
	if l := b.last; l != nil && l.withRes != nil && l.out == i && o != i && l.n*l.cols == n && n > 0 {
		q := b.enqueueAt(l.idx, opAdd|fusedOp, uint64(o), uint64(i), uint64(n))
		if q.run == nil {
			q.run = l.withRes(o)
		}
		b.resOp, b.resOut = q, o
		return
	}
	if q := b.enqueue(opAdd, uint64(o), uint64(i), uint64(n)); q.run == nil {
		q.run = func() error { return b.d.add(o, i, n) }
	}
}

// Rope implements backend.Backend.
func (b *Backend) Rope(x backend.View, heads, headDim int, r backend.Rope, s backend.StepBuf) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rp, ok := r.(*rope)
	if !ok {
		panic(fmt.Sprintf("cuda: rope %T does not belong to the CUDA backend", r))
	}
	st, p, stride := stepOf(s), viewPtr(x), x.Stride
	n := st.n
	prev := b.last
	q := b.enqueue(opRope, uint64(p), uint64(stride), uint64(heads), uint64(headDim), uint64(rp.cos), uint64(st.pos), uint64(n))
	if q.run == nil {
		q.run = func() error {
			return b.d.rope(p, stride, heads, headDim, rp.spec.Dim, rp.spec.Interleave, rp.cos, rp.sin, st.pos, n)
		}
	}
	if b.fusing(n) {
		if q.pend == nil {
			q.pend = &pend{kind: opRope, idx: len(b.ops) - 1, rope: &ropeOp{v: x, heads: heads, hd: headDim, r: rp, st: st}}
			if prev != nil && prev.kind == opRope && prev.idx == len(b.ops)-2 {
				q.pend.prev = prev
			} else if prev != nil && prev.kind == opMatMul && prev.withRope != nil && prev.idx == len(b.ops)-2 {
				q.pend.mm = prev
			}
		}
		b.last = q.pend
	}
}

// StoreKV implements backend.Backend.
func (b *Backend) StoreKV(kv backend.KV, layer int, k, v backend.View, s backend.StepBuf) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, st := kvOf(kv), stepOf(s)
	sp := c.spec
	kc, vc := c.k+DevPtr(int64(layer)*c.perLayer), c.v+DevPtr(int64(layer)*c.perLayer)
	kp, vp, ks, vs, n := viewPtr(k), viewPtr(v), k.Stride, v.Stride, st.n
	f16 := sp.Type == backend.KVF16
	if b.fuseRopeKV(kc, vc, f16, k, v, sp, st) {
		return
	}
	if q := b.enqueue(opStoreKV, uint64(kc), uint64(kp), uint64(ks), uint64(vp), uint64(vs), uint64(st.slot), uint64(n)); q.run == nil {
		q.run = func() error {
			return b.d.storeKV(kc, vc, f16, kp, ks, vp, vs, st.slot, sp.KVHeads, sp.HeadDim, sp.BlockSize, n)
		}
	}
}

// Attention implements backend.Backend.
func (b *Backend) Attention(dst backend.Buffer, q backend.View, heads int, scale float32, kv backend.KV, layer int, s backend.StepBuf) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, st := kvOf(kv), stepOf(s)
	sp := c.spec
	n := st.n
	chunk := attnChunkFor(n)
	S := (st.lim.BlocksPerSeq*sp.BlockSize + chunk - 1) / chunk
	// sized for the narrowest chunk, so that steps of either never regrow it
	Smax := (st.lim.BlocksPerSeq*sp.BlockSize + attnChunk - 1) / attnChunk
	if err := b.ensure(&b.part, &b.partSize, int64(4*st.lim.Tokens*heads*Smax*(sp.HeadDim+2)), "attention workspace"); err != nil {
		if b.err == nil {
			b.err = err
		}
		return
	}
	// a counter per token and segment of the merged rows: at most one per head
	if err := b.ensureZeroed(&b.attnCnt, &b.cntSize, int64(4*st.lim.Tokens*heads), "attention counters"); err != nil {
		if b.err == nil {
			b.err = err
		}
		return
	}
	kc, vc := c.k+DevPtr(int64(layer)*c.perLayer), c.v+DevPtr(int64(layer)*c.perLayer)
	o, qp, qs := bufOf(dst).p, viewPtr(q), q.Stride
	f16 := sp.Type == backend.KVF16
	pre := prefillAttention(st.oneSeq, n, sp.HeadDim)
	grouped := b.d.attnGrouped(heads, sp.KVHeads, sp.HeadDim, chunk, f16, st.maxPos, n)
	// the shared words only where this step has a whole split to share: a
	// step without one (sequences of distinct prompts) launches no cascade
	// and gives its blocks no shared-prefix room
	shared := st.shared
	if blocks, minPos1 := st.prefixWords(); !sharesSplit(blocks, minPos1, sp.BlockSize, chunk) {
		shared = 0
	}
	// a one-token step within attnClusterMax positions: the cluster kernel,
	// if its consumer's rotation fits (attnClusterFits); part of the key, as
	// the positions decide it
	cl := b.fusing(n) && !pre && b.d.attnClusterStep(n, st.maxPos, heads, sp.KVHeads, sp.HeadDim, qs)
	e := b.enqueue(opAttn, uint64(o), uint64(qp), uint64(qs), uint64(kc), uint64(st.tables), uint64(math.Float32bits(scale)), uint64(heads),
		uint64(n), uint64(S), boolKey(pre), boolKey(grouped), uint64(shared), boolKey(cl))
	if e.run == nil {
		e.run = func() error {
			if pre {
				return b.d.attentionPrefill(o, qp, qs, kc, vc, f16, st.tables, st.lim.BlocksPerSeq, st.pos, st.seq, scale,
					heads, sp.KVHeads, sp.HeadDim, sp.BlockSize, n)
			}
			return b.d.attention(o, qp, qs, kc, vc, f16, st.tables, st.lim.BlocksPerSeq, st.pos, st.seq, scale,
				heads, sp.KVHeads, sp.HeadDim, sp.BlockSize, chunk, S, b.part, n, grouped, shared)
		}
	}
	if b.fusing(n) && !pre && bufOf(q.Buf) != bufOf(dst) {
		if e.pend == nil {
			hd, H, bs, part, tstride, cnt := sp.HeadDim, sp.KVHeads, sp.BlockSize, b.part, st.lim.BlocksPerSeq, b.attnCnt
			e.pend = &pend{kind: opAttn, idx: len(b.ops) - 1, out: o, n: n, cols: heads * hd,
				rotq: func(g *DenseGPU) func() error {
					if cl && attnClusterFits(g, heads, hd) {
						return func() error {
							return b.d.attnCluster(g, o, qp, qs, kc, vc, f16, st.tables, tstride, st.pos, st.seq, scale, heads, H, hd, bs, b.sc)
						}
					}
					if attnRotqFits(g, heads, hd, chunk, grouped) {
						return func() error {
							return b.d.attnRotq(g, o, qp, qs, kc, vc, f16, st.tables, tstride, st.pos, st.seq, scale, heads, H, hd, bs, chunk, S, part, cnt, n, b.sc)
						}
					}
					return func() error {
						if err := b.d.attnSplit(qp, qs, kc, vc, f16, st.tables, tstride, st.pos, st.seq, scale, heads, H, hd, bs, chunk, S, part, n, grouped, shared); err != nil {
							return err
						}
						return b.d.combineRotq(g, o, part, st.pos, chunk, S, heads, hd, n, b.sc)
					}
				}}
		}
		b.last = e.pend
	}
}

// SwiGLU implements backend.Backend.
func (b *Backend) SwiGLU(dst backend.Buffer, gate, up backend.View, width, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, gp, up_, gs, us := bufOf(dst).p, viewPtr(gate), viewPtr(up), gate.Stride, up.Stride
	b.partsOut(gp, up_, gs, us, width, n)
	q := b.enqueue(opSwiGLU, uint64(o), uint64(gp), uint64(gs), uint64(up_), uint64(us), uint64(width), uint64(n))
	if q.run == nil {
		q.run = func() error { return b.d.swiglu(o, gp, gs, up_, us, width, n, b.sc) }
	}
	if b.fusing(n) && bufOf(gate.Buf) != bufOf(dst) && bufOf(up.Buf) != bufOf(dst) {
		if q.pend == nil {
			q.pend = &pend{kind: opSwiGLU, idx: len(b.ops) - 1, out: o, n: n, cols: width,
				rotq: func(g *DenseGPU) func() error {
					return func() error { return b.d.swigluRotq(g, o, gp, gs, up_, us, n, b.sc) }
				}}
		}
		b.last = q.pend
	}
}

// CopyKVBlock implements backend.Backend (not part of step graphs).
func (b *Backend) CopyKVBlock(kv backend.KV, dst, src int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush()
	c := kvOf(kv)
	sp := c.spec
	blk := int64(sp.KVHeads) * int64(sp.BlockSize) * sp.Type.RowBytes(sp.HeadDim)
	err := b.d.Do(func() error {
		for l := 0; l < sp.Layers; l++ {
			for _, base := range []DevPtr{c.k, c.v} {
				lb := base + DevPtr(int64(l)*c.perLayer)
				if err := call("cuMemcpyDtoDAsync", sym.cuMemcpyDtoDAsync, uintptr(lb)+uintptr(int64(dst)*blk),
					uintptr(lb)+uintptr(int64(src)*blk), uintptr(blk), b.d.stream); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil && b.err == nil {
		b.err = err
	}
}

var (
	_ backend.Backend = (*Backend)(nil)
	_                 = codec.DefaultGroupSize
)
