//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/upg-ai/upg/backend"
)

// Host overlap (backend.Pipeliner). A decoding step's tokens go back by an
// asynchronous copy into page-locked memory that SampleAsync's function
// waits for, and the next step's metadata goes up by one from page-locked
// memory, followed by a device-to-device copy of the sampled ids into the
// step's tokens: nothing in between waits for the GPU, so the engine can
// queue step N+1 while step N runs and read N's tokens after.

// pinned is page-locked host memory in two halves, each with an event
// recorded after the copy that last used it: a half is written again only
// once its copy is done.
type pinned struct {
	buf   [2]unsafe.Pointer
	ev    [2]uintptr
	rec   [2]bool // ev[k] recorded
	bytes int     // per half
	next  int     // the half the next take returns
}

// allocHost allocates n bytes of page-locked host memory (owner thread).
func (d *Device) allocHost(n int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := call("cuMemAllocHost", sym.cuMemAllocHost, uintptr(unsafe.Pointer(&p)), uintptr(n)); err != nil {
		return nil, fmt.Errorf("cuda: page-locked host memory of %d bytes: %w", n, err)
	}
	return p, nil
}

// newPinned allocates two halves of bytes each and their events (owner thread).
func (d *Device) newPinned(bytes int) (*pinned, error) {
	p := &pinned{bytes: bytes}
	for k := range 2 {
		var err error
		if p.buf[k], err = d.allocHost(bytes); err != nil {
			d.freePinned(p)
			return nil, err
		}
		const disableTiming = 2 // CU_EVENT_DISABLE_TIMING: cheaper to record and wait for
		if err := call("cuEventCreate", sym.cuEventCreate, uintptr(unsafe.Pointer(&p.ev[k])), disableTiming); err != nil {
			d.freePinned(p)
			return nil, err
		}
	}
	return p, nil
}

// freePinned releases p after the stream's work (owner thread).
func (d *Device) freePinned(p *pinned) {
	if p == nil {
		return
	}
	_ = d.sync()
	for k := range 2 {
		if p.buf[k] != nil {
			_ = call("cuMemFreeHost", sym.cuMemFreeHost, uintptr(p.buf[k]))
			p.buf[k] = nil
		}
		if p.ev[k] != 0 {
			d.eventDestroy(p.ev[k])
			p.ev[k] = 0
		}
	}
}

// take returns the next half once its last copy is done (owner thread).
func (d *Device) take(p *pinned) (int, error) {
	k := p.next
	p.next ^= 1
	if p.rec[k] {
		if err := call("cuEventSynchronize", sym.cuEventSynchronize, p.ev[k]); err != nil {
			return 0, err
		}
		p.rec[k] = false
	}
	return k, nil
}

// done records half k's event after the copies queued so far (owner thread).
func (d *Device) done(p *pinned, k int) error {
	if err := d.eventRecord(p.ev[k]); err != nil {
		return err
	}
	p.rec[k] = true
	return nil
}

// uploadStep copies words of s's host metadata to the device in stream
// order through s's page-locked halves, then, for a step on the device's
// tokens (prevIDs not 0), the n sampled ids into its tokens (owner thread).
func (d *Device) uploadStep(s *stepBuf, words int, prevIDs DevPtr, n int) error {
	if s.stage == nil {
		p, err := d.newPinned(4 * len(s.host))
		if err != nil {
			return err
		}
		s.stage = p
	}
	k, err := d.take(s.stage)
	if err != nil {
		return err
	}
	copy(unsafe.Slice((*int32)(s.stage.buf[k]), words), s.host[:words])
	if err := call("cuMemcpyHtoDAsync", sym.cuMemcpyHtoDAsync, uintptr(s.dev), uintptr(s.stage.buf[k]), uintptr(4*words), d.stream); err != nil {
		return err
	}
	if err := d.done(s.stage, k); err != nil {
		return err
	}
	if prevIDs != 0 {
		return call("cuMemcpyDtoDAsync", sym.cuMemcpyDtoDAsync, uintptr(s.tokens), uintptr(prevIDs), uintptr(4*n), d.stream)
	}
	return nil
}

// prevTokens are the last SampleAsync's tokens, as a PrevTokens step takes
// them: on the device (ids, n rows) or, when they were sampled
// synchronously, on the host.
type prevTokens struct {
	ids  DevPtr
	host []int32
	n    int
}

// DeviceTokens implements backend.Pipeliner: every table but one embedded
// on the host (an overlay's rows, decoded from the step's host tokens).
func (b *Backend) DeviceTokens(table backend.Weight) bool {
	w := weightOf(table)
	return w.g == nil || w.g.ovK == 0
}

// SampleAsync implements backend.Pipeliner. Greedy requests without a
// repetition penalty or log-probabilities (the argmax kernel), and sampled
// ones without a penalty or the most likely tokens' log-probabilities
// (upg_sample, its rows uploaded from page-locked memory), come back by an
// asynchronous copy the returned function waits for; any other step is
// sampled as Sample does, before SampleAsync returns.
func (b *Backend) SampleAsync(logits backend.Buffer, vocab int, reqs []backend.SampleRequest) (backend.SampleWait, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(reqs)
	plain := plainRequests(reqs)
	if !plain && !hostSample && n > 0 && asyncRequests(reqs) {
		return b.sampleAsync(logits, vocab, reqs)
	}
	if !plain || hostSample || n == 0 {
		res := make([]backend.SampleResult, n)
		if err := b.sample(logits, vocab, reqs, res); err != nil {
			return nil, err
		}
		b.prev = prevTokens{n: n, host: make([]int32, n)}
		for i, r := range res {
			b.prev.host[i] = int32(r.Token)
		}
		return func(dst []backend.SampleResult) error {
			copy(dst, res)
			return nil
		}, nil
	}
	lb := bufOf(logits)
	if n*vocab > lb.n {
		return nil, fmt.Errorf("cuda: %d sample requests for %d logits rows of %d", n, lb.n/max(vocab, 1), vocab)
	}
	ids, err := b.queueArgmax(lb.p, vocab, n)
	if err != nil {
		return nil, err
	}
	return b.readAsync(ids, 4*n, n, func(out []byte, dst []backend.SampleResult) error {
		tokensFrom(out, dst[:n])
		return nil
	})
}

// sampleAsync is SampleAsync's upg_sample path: the n token ids and their
// log-probabilities come back together.
func (b *Backend) sampleAsync(logits backend.Buffer, vocab int, reqs []backend.SampleRequest) (backend.SampleWait, error) {
	n := len(reqs)
	lb := bufOf(logits)
	if n*vocab > lb.n {
		return nil, fmt.Errorf("cuda: %d sample requests for %d logits rows of %d", n, lb.n/max(vocab, 1), vocab)
	}
	tp, err := b.queueSample(lb.p, vocab, reqs, true)
	if err != nil {
		return nil, err
	}
	reqs = append([]backend.SampleRequest(nil), reqs...) // the caller may reuse its slice before the wait
	return b.readAsync(tp, 8*n, n, func(out []byte, dst []backend.SampleResult) error {
		return b.sampled(out, lb.p, vocab, reqs, dst)
	})
}

// asyncRequests reports whether upg_sample can answer reqs without the
// host: no repetition penalty (its tokens' history goes up with the rows,
// and a step queued on device tokens lacks the last one), no additive
// adjustment (logit bias, frequency or presence penalty: sampled on the
// host) and no request for the most likely tokens' log-probabilities
// (their rows come back).
func asyncRequests(reqs []backend.SampleRequest) bool {
	for _, r := range reqs {
		if o := r.Sampler.Options(); o.Penalizes() || o.Adds() || r.TopLogprobs > 0 {
			return false
		}
	}
	return true
}

// readAsync flushes the queued step with an asynchronous copy of bytes
// bytes at src (n rows' tokens first) into the page-locked results ring,
// records that those n token ids are the ones a PrevTokens step takes, and
// returns the function that waits for the copy and parses it.
func (b *Backend) readAsync(src DevPtr, bytes, n int, parse func(out []byte, dst []backend.SampleResult) error) (backend.SampleWait, error) {
	ids := src
	d := b.d
	var ring *pinned
	var k int
	b.flushThen(func() error {
		if b.results == nil || b.results.bytes < bytes {
			// a larger ring for a larger step; the old one's halves may
			// still be waited for: it is freed at Close
			p, err := d.newPinned(max(bytes, 2048))
			if err != nil {
				return err
			}
			if b.results != nil {
				b.oldRings = append(b.oldRings, b.results)
			}
			b.results = p
		}
		ring = b.results
		var err error
		if k, err = d.take(ring); err != nil {
			return err
		}
		if err := call("cuMemcpyDtoHAsync", sym.cuMemcpyDtoHAsync, uintptr(ring.buf[k]), uintptr(src), uintptr(bytes), d.stream); err != nil {
			return err
		}
		return d.done(ring, k)
	})
	if b.err != nil {
		return nil, b.err
	}
	b.prev = prevTokens{ids: ids, n: n}
	return func(dst []backend.SampleResult) error {
		began := time.Now()
		if err := d.Do(func() error { return call("cuEventSynchronize", sym.cuEventSynchronize, ring.ev[k]) }); err != nil {
			return err
		}
		if b.host != nil {
			b.mu.Lock()
			b.host.wait += time.Since(began)
			b.mu.Unlock()
		}
		return parse(unsafe.Slice((*byte)(ring.buf[k]), bytes), dst)
	}, nil
}

// stageRows copies h to dst in stream order through the backend's
// page-locked sampling halves (owner thread): SampleAsync's rows.
func (b *Backend) stageRows(dst DevPtr, h []byte) error {
	d := b.d
	if b.smpStage == nil || b.smpStage.bytes < len(h) {
		p, err := d.newPinned(max(len(h), 4096))
		if err != nil {
			return err
		}
		if b.smpStage != nil {
			b.oldRings = append(b.oldRings, b.smpStage)
		}
		b.smpStage = p
	}
	k, err := d.take(b.smpStage)
	if err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(b.smpStage.buf[k]), len(h)), h)
	if err := call("cuMemcpyHtoDAsync", sym.cuMemcpyHtoDAsync, uintptr(dst), uintptr(b.smpStage.buf[k]), uintptr(len(h)), d.stream); err != nil {
		return err
	}
	return d.done(b.smpStage, k)
}

// plainRequests reports whether every request is greedy on the logits as
// they are, without log-probabilities: the argmax kernel answers them.
func plainRequests(reqs []backend.SampleRequest) bool {
	for i := range reqs {
		if !argmaxAnswers(&reqs[i]) {
			return false
		}
	}
	return true
}

// argmaxAnswers reports whether the argmax kernel answers r: greedy on the
// logits as they are, without log-probabilities.
func argmaxAnswers(r *backend.SampleRequest) bool {
	return r.Sampler.Options().Argmax() && r.TopLogprobs < 0
}
