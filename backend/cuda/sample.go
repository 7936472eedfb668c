//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/sample"
)

// sampleRowBytes is the size of kernels/ops.cu's SampleRow (one logits
// row's options, as upg_sample reads them): float32 temperature, top-p,
// min-p and repetition penalty; int32 top-k, the offset and count of its
// penalized tokens, padding; uint64 seed. sampleTokens writes it.
const sampleRowBytes = 40

// putSampleRow writes one SampleRow: the options, the row's penalized
// tokens (n of them from hist[off]) and its seed.
func putSampleRow(w []byte, o sample.Options, off, n int, seed uint64) {
	binary.LittleEndian.PutUint32(w[0:], math.Float32bits(o.Temperature))
	binary.LittleEndian.PutUint32(w[4:], math.Float32bits(o.TopP))
	binary.LittleEndian.PutUint32(w[8:], math.Float32bits(o.MinP))
	binary.LittleEndian.PutUint32(w[12:], math.Float32bits(o.RepeatPenalty))
	binary.LittleEndian.PutUint32(w[16:], uint32(o.TopK))
	binary.LittleEndian.PutUint32(w[20:], uint32(off))
	binary.LittleEndian.PutUint32(w[24:], uint32(n))
	binary.LittleEndian.PutUint32(w[28:], 0)
	binary.LittleEndian.PutUint64(w[32:], seed)
}

// HostSampleEnv, set to 1, samples non-greedy requests on the host as
// before upg_sample existed (each row of logits read back and handed to
// the request's sampler): for comparisons, and a way around the device
// sampler should it misbehave.
const HostSampleEnv = "UPG_CUDA_HOST_SAMPLE"

var hostSample = os.Getenv(HostSampleEnv) == "1"

// Sample implements backend.Backend. A step whose requests are all greedy
// without a repetition penalty or log-probabilities is answered by an
// argmax kernel; any other runs upg_sample on the device over every row
// (the sampler's options, its distinct penalized tokens and the 64-bit key
// of the row's position, Sampler.Key, go up; a token id and the token's log-probability
// per row come back). Only the k > 0 most likely tokens' log-probabilities
// read their row of logits back. A prompt-lookup step's draft positions
// are rows like any other (the engine keeps a draft token when its row's
// token is the draft).
func (b *Backend) Sample(logits backend.Buffer, vocab int, reqs []backend.SampleRequest, res []backend.SampleResult) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prev = prevTokens{} // a PrevTokens step follows a SampleAsync only
	return b.sample(logits, vocab, reqs, res)
}

// sample is Sample with b.mu held.
func (b *Backend) sample(logits backend.Buffer, vocab int, reqs []backend.SampleRequest, res []backend.SampleResult) error {
	lb := bufOf(logits)
	if len(res) < len(reqs) || len(reqs)*vocab > lb.n {
		return fmt.Errorf("cuda: %d sample requests for %d logits rows of %d and %d results", len(reqs), lb.n/max(vocab, 1), vocab, len(res))
	}
	n := len(reqs)
	if n == 0 {
		b.flush()
		return b.err
	}
	plain := plainRequests(reqs)
	if plain || hostSample {
		if err := b.argmaxTokens(lb.p, vocab, res[:n]); plain || err != nil {
			return err
		}
		return b.hostTokens(lb.p, vocab, reqs, res, func(r *backend.SampleRequest) bool { return !argmaxAnswers(r) })
	}
	if err := b.sampleTokens(lb.p, vocab, reqs, res); err != nil {
		return err
	}
	// upg_sample applies the repetition penalty but not the additive
	// adjustments (logit bias, frequency and presence penalties, a
	// constraint's mask: Options.Adds): their rows are sampled again on the
	// host, the others keep the device's draw
	return b.hostTokens(lb.p, vocab, reqs, res, func(r *backend.SampleRequest) bool { return r.Sampler.Options().Adds() })
}

// hostTokens samples the requests pick selects on the host, from their
// rows read back (HostSampleEnv, and the rows upg_sample cannot sample);
// res holds the device's tokens for the others.
func (b *Backend) hostTokens(lp DevPtr, vocab int, reqs []backend.SampleRequest, res []backend.SampleResult, pick func(*backend.SampleRequest) bool) error {
	var row []float32
	for i := range reqs {
		r := &reqs[i]
		if !pick(r) {
			continue
		}
		if row == nil {
			row = make([]float32, vocab)
		}
		if err := b.d.DownloadF32(row, lp+DevPtr(4*i*vocab)); err != nil {
			return err
		}
		tok := r.Sampler.Sample(row, r.History)
		res[i] = backend.SampleResult{Token: tok, Top: res[i].Top[:0]}
		if r.TopLogprobs >= 0 {
			res[i].Logprob, res[i].Top = backend.Logprobs(row, tok, r.TopLogprobs, res[i].Top)
		}
	}
	return nil
}

// argmaxTokens answers greedy requests.
func (b *Backend) argmaxTokens(lp DevPtr, vocab int, res []backend.SampleResult) error {
	n := len(res)
	ids, err := b.queueArgmax(lp, vocab, n)
	if err != nil {
		return err
	}
	out := b.sampleOut(4 * n)
	b.flushThen(func() error { return b.d.dtoh(unsafe.Pointer(&out[0]), ids, 4*n) }) // one Do: step, argmax, tokens back
	if b.err != nil {
		return b.err
	}
	tokensFrom(out, res)
	return nil
}

// tokensFrom fills res with the token ids read back in out (int32 each),
// their log-probabilities and top lists empty.
func tokensFrom(out []byte, res []backend.SampleResult) {
	for i := range res {
		res[i] = backend.SampleResult{Token: int(int32(binary.LittleEndian.Uint32(out[4*i:]))), Top: res[i].Top[:0]}
	}
}

// queueArgmax queues the argmax of n rows of logits at lp and returns
// where their token ids will be.
func (b *Backend) queueArgmax(lp DevPtr, vocab, n int) (DevPtr, error) {
	// one allocation: the ids of rows rows, then the workspace laid out for
	// them (argmaxWork); its counters start at zero, a new layout's included
	rows := max(n, b.idsN, 64)
	if need := argmaxIDs(rows) + argmaxWork(vocab, rows); rows != b.idsN || b.idsSize < need {
		b.idsN = 0
		if err := b.ensure(&b.ids, &b.idsSize, need, "argmax"); err != nil {
			return 0, err
		}
		if err := b.d.Do(func() error { return b.d.memsetD32(b.ids, 0, int(b.idsSize/4)) }); err != nil {
			return 0, err
		}
		b.idsN = rows
	}
	ids, work := b.ids, b.ids+DevPtr(argmaxIDs(rows))
	if q := b.enqueue(opArgmax, uint64(lp), uint64(vocab), uint64(ids), uint64(n), uint64(work), uint64(rows)); q.run == nil {
		q.run = func() error { return b.d.argmax(lp, vocab, ids, n, work, rows) }
	}
	return ids, nil
}

// sampleTokens runs upg_sample. The scratch holds n rows, n token ids, n
// log-probabilities, then room for Hc penalized tokens and Hc saved
// logits; the rows and the tokens go up in one copy and the outputs come
// back in one. The kernel's arguments depend only on n and Hc (not on how
// many tokens are penalized), so the step's graph replays.
func (b *Backend) sampleTokens(lp DevPtr, vocab int, reqs []backend.SampleRequest, res []backend.SampleResult) error {
	n := len(reqs)
	tp, err := b.queueSample(lp, vocab, reqs, false)
	if err != nil {
		return err
	}
	out := b.sampleOut(8 * n)
	b.flushThen(func() error { return b.d.dtoh(unsafe.Pointer(&out[0]), tp, 8*n) })
	if b.err != nil {
		return b.err
	}
	return b.sampled(out, lp, vocab, reqs, res)
}

// queueSample uploads the requests' rows (and penalized tokens) at the next
// flush, after the step's own upload and before its graph — synchronously,
// or from page-locked memory in stream order when async — and queues
// upg_sample; the n token ids, then their n log-probabilities, will be at
// the returned address.
func (b *Backend) queueSample(lp DevPtr, vocab int, reqs []backend.SampleRequest, async bool) (DevPtr, error) {
	n := len(reqs)
	hist := b.smpHist[:0]
	F := 48 * n
	if cap(b.smpHost) < F {
		b.smpHost = make([]byte, F)
	}
	h := b.smpHost[:F]
	clear(h)
	for i, r := range reqs {
		o := r.Sampler.Options()
		off := len(hist)
		hist = r.Sampler.Penalized(hist, r.History, vocab)
		var seed uint64
		if !o.Greedy() {
			seed = r.Sampler.Key(len(r.History))
		}
		putSampleRow(h[i*sampleRowBytes:], o, off, len(hist)-off, seed)
	}
	b.smpHist = hist
	H := len(hist)
	b.smpHc = max(b.smpHc, 1024)
	for b.smpHc < H {
		b.smpHc *= 2
	}
	if err := b.ensure(&b.smp, &b.smpSize, int64(F+8*b.smpHc), "sampling"); err != nil {
		return 0, err
	}
	h = append(h, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(hist))), 4*H)...)
	b.smpHost = h[:0]
	smp := b.smp
	up := func() error { return b.d.htod(smp, unsafe.Pointer(&h[0]), len(h)) }
	if async {
		up = func() error { return b.stageRows(smp, h) }
	}
	if prev := b.upload; prev != nil {
		b.upload = func() error {
			if err := prev(); err != nil {
				return err
			}
			return up()
		}
	} else {
		b.upload = up
	}
	rp := b.smp
	tp := rp + DevPtr(sampleRowBytes*n)
	op := tp + DevPtr(4*n)
	hp := rp + DevPtr(F)
	sp := hp + DevPtr(4*b.smpHc)
	if q := b.enqueue(opSample, uint64(lp), uint64(vocab), uint64(rp), uint64(n), uint64(b.smpHc)); q.run == nil {
		q.run = func() error { return b.d.sample(lp, vocab, rp, hp, sp, tp, op, n) }
	}
	return tp, nil
}

// sampled turns upg_sample's outputs read back (n token ids, then n
// log-probabilities) into res; a request for the k > 0 most likely tokens
// reads its row of logits back.
func (b *Backend) sampled(out []byte, lp DevPtr, vocab int, reqs []backend.SampleRequest, res []backend.SampleResult) error {
	n := len(reqs)
	var row []float32
	for i, r := range reqs {
		tok := int(int32(binary.LittleEndian.Uint32(out[4*i:])))
		res[i] = backend.SampleResult{Token: tok, Top: res[i].Top[:0]}
		switch {
		case r.TopLogprobs == 0:
			res[i].Logprob = math.Float32frombits(binary.LittleEndian.Uint32(out[4*n+4*i:]))
		case r.TopLogprobs > 0:
			if row == nil {
				row = make([]float32, vocab)
			}
			if err := b.d.DownloadF32(row, lp+DevPtr(4*i*vocab)); err != nil {
				return err
			}
			res[i].Logprob, res[i].Top = backend.Logprobs(row, tok, r.TopLogprobs, res[i].Top)
		}
	}
	return nil
}

// sampleOut is a host buffer of n bytes for a step's sampled tokens (and
// log-probabilities), reused from step to step.
func (b *Backend) sampleOut(n int) []byte {
	if cap(b.smpOut) < n {
		b.smpOut = make([]byte, n)
	}
	return b.smpOut[:n]
}
