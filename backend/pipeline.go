package backend

import "fmt"

// SyncPipeline makes any backend a Pipeliner whose SampleAsync samples at
// once: a step set with PrevTokens gets the tokens of the last SampleAsync
// from the host. It overlaps nothing; it lets the callers that pipeline
// (the engine, the benchmark) run, and be tested, on a backend without a
// device, with the tokens the pipelined path must reproduce.
func SyncPipeline(b Backend) Backend {
	if _, ok := b.(Pipeliner); ok {
		return b
	}
	return &syncPipeline{Backend: b}
}

type syncPipeline struct {
	Backend
	last []int32 // the last SampleAsync's tokens
	step Step    // a PrevTokens step with the tokens filled in
}

// SetStep implements Backend: a PrevTokens step's tokens come from the last
// SampleAsync.
func (p *syncPipeline) SetStep(dst StepBuf, s *Step) error {
	if !s.PrevTokens {
		return p.Backend.SetStep(dst, s)
	}
	if len(s.Tokens) > len(p.last) {
		return fmt.Errorf("backend: step of %d tokens on the previous sample's %d", len(s.Tokens), len(p.last))
	}
	p.step = *s
	p.step.Tokens = append(p.step.Tokens[:0:0], p.last[:len(s.Tokens)]...)
	p.step.PrevTokens = false
	return p.Backend.SetStep(dst, &p.step)
}

// SampleAsync implements Pipeliner: Sample, whose results the returned
// function copies.
func (p *syncPipeline) SampleAsync(logits Buffer, vocab int, reqs []SampleRequest) (SampleWait, error) {
	res := make([]SampleResult, len(reqs))
	if err := p.Backend.Sample(logits, vocab, reqs, res); err != nil {
		return nil, err
	}
	p.last = p.last[:0]
	for _, r := range res {
		p.last = append(p.last, int32(r.Token))
	}
	return func(dst []SampleResult) error {
		copy(dst, res)
		return nil
	}, nil
}

// DeviceTokens implements Pipeliner: every table can.
func (p *syncPipeline) DeviceTokens(Weight) bool { return true }
