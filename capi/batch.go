package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/upg-ai/upg/batch"
)

// batchRequest is upg_batch_start's JSON: requests of upg_gen_start's
// shape, generated together.
type batchRequest struct {
	Requests []genRequest `json:"requests"`
}

// batchResult is a batch job's result (JSON).
type batchResult struct {
	Results         []batchText `json:"results"` // in the requests' order
	GeneratedTokens int         `json:"generated_tokens"`
	Seconds         float64     `json:"seconds"`
	TokS            float64     `json:"tok_s"` // generated tokens a second, all requests together
	MostTogether    int         `json:"max_running"`
	Preemptions     int         `json:"preemptions"`
}

type batchText struct {
	Text  string    `json:"text"`
	Stats statsJSON `json:"stats"`
}

// batchJob is one request of a batch, in the Batcher.
type batchJob struct {
	slot  batch.Slot
	limit int // the most tokens it may generate
	text  strings.Builder
}

func (j *batchJob) Slot() *batch.Slot { return &j.slot }

// startBatch validates every request (an error names the first bad one) and
// starts a job that generates them together: up to the model's max_batch
// at a time, the rest joining as others finish (package batch), each
// request's text the same as it would be alone (on the CPU; on a GPU,
// whose multi-token kernels round unlike its one-token ones, greedy text
// may part at a near-tie).
func (m *modelObj) startBatch(r batchRequest) (*jobObj, error) {
	if len(r.Requests) == 0 {
		return nil, argErrorf("a batch needs at least one request")
	}
	if err := m.use(); err != nil {
		return nil, err
	}
	jobs := make([]*batchJob, len(r.Requests))
	for i, gr := range r.Requests {
		req, err := m.request(gr)
		if err != nil {
			m.life.RUnlock()
			var ae *apiError
			if errors.As(err, &ae) {
				return nil, &apiError{ae.code, fmt.Errorf("request %d: %w", i, ae.err)}
			}
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		limit := m.l.Capacity() - len(req.Prompt)
		if req.MaxTokens > 0 {
			limit = min(limit, req.MaxTokens)
		}
		jobs[i] = &batchJob{slot: batch.Slot{ID: uint64(i + 1), Req: req}, limit: limit}
	}
	m.life.RUnlock()
	m.gensMu.Lock()
	defer m.gensMu.Unlock()
	if m.closing {
		return nil, errClosed
	}
	var j *jobObj
	j = startJob(func(progress func(int64, int64, string), cancelled func() bool) (any, error) {
		defer func() {
			m.gensMu.Lock()
			delete(m.batches, j)
			m.gensMu.Unlock()
		}()
		return m.runBatch(jobs, progress, cancelled)
	})
	m.batches[j] = true
	return j, nil
}

// runBatch holds the model's conversation (generations on one model take
// turns) and steps the engine over jobs until all have ended.
func (m *modelObj) runBatch(jobs []*batchJob, progress func(int64, int64, string), cancelled func() bool) (any, error) {
	if err := m.use(); err != nil {
		return nil, err
	}
	defer m.life.RUnlock()
	for waiting := false; ; waiting = true {
		if cancelled() {
			return nil, errCancelled
		}
		if waiting {
			progress(0, 0, "waiting for another generation")
		}
		select {
		case m.gen <- struct{}{}:
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	defer func() { <-m.gen }()

	e := m.l.Engine
	res := batchResult{Results: make([]batchText, len(jobs))}
	var failed error // a request that cannot run (none should: every prompt fits the context, the pool one context)
	var b *batch.Batcher[*batchJob]
	b = batch.New(e, 0, batch.Hooks[*batchJob]{
		Admitted: func(*batchJob) { res.MostTogether = max(res.MostTogether, len(b.Running())) },
		Failed: func(j *batchJob, err error) {
			if failed == nil {
				failed = fmt.Errorf("request %d: %w", j.slot.ID-1, err)
			}
		},
		Preempted: func(*batchJob) { res.Preemptions++ },
	})
	for _, j := range jobs {
		b.Add(j)
	}
	m.run.Lock()
	e.EndConversation() // its cached positions would keep the batch from the whole pool
	m.run.Unlock()
	defer func() { // also when cancelled (progress panics): every block back
		m.run.Lock()
		for _, j := range b.Take() {
			b.Release(j)
		}
		m.run.Unlock()
	}()

	// progress: tokens generated against the most the requests may still
	// generate (a finished request's limit drops to what it generated)
	total, done := int64(0), int64(0)
	for _, j := range jobs {
		total += int64(j.limit)
	}
	// step runs one engine step and takes its text; a finished request's
	// blocks go back at once, under the same hold of the backend
	step := func() error {
		m.run.Lock()
		defer m.run.Unlock()
		outs, err := b.Step()
		if err != nil {
			return err
		}
		for _, o := range outs {
			j, ok := b.Owner(o.Seq)
			if !ok {
				continue
			}
			j.text.WriteString(o.Text)
			if o.Done {
				n := o.Seq.Stats().GeneratedTokens
				total -= int64(j.limit - n)
				done += int64(n)
				b.Release(j)
			}
		}
		return failed
	}
	start := time.Now()
	for !b.Idle() {
		if cancelled() {
			return nil, errCancelled
		}
		b.Admit()
		if err := step(); err != nil {
			return nil, err
		}
		b.Retire()
		running := int64(0)
		for _, j := range b.Running() {
			running += int64(j.slot.Seq.Stats().GeneratedTokens)
		}
		progress(done+running, total, "generating")
	}
	res.Seconds = time.Since(start).Seconds()
	for i, j := range jobs {
		st := j.slot.Seq.Stats()
		res.GeneratedTokens += st.GeneratedTokens
		res.Results[i] = batchText{Text: j.text.String(), Stats: newStats(st)}
	}
	if res.Seconds > 0 {
		res.TokS = float64(res.GeneratedTokens) / res.Seconds
	}
	return res, nil
}
