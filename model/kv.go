package model

import (
	"fmt"

	"github.com/upg-ai/upg/backend"
)

// The KV storage of a split model (NewSplit) lives on two backends: each
// stage's layers on the stage's backend. The model allocates it and copies
// its blocks, so that kvcache.Pool, which manages blocks and slots on the
// host, uses the model as its storage (kvcache.Storage) exactly as it
// would use a backend; Context.Forward hands each stage its own part. An
// unsplit model's storage is its backend's own backend.KV: nothing in
// between.

// splitKV is a split model's KV storage: one backend.KV per stage.
type splitKV struct {
	spec  backend.KVSpec
	parts []backend.KV
	// off[i] is the first layer index of part i: the stage's first layer
	// when the storage holds every layer of the model, 0 for scratch
	// storage of fewer layers, which every stage holds whole (the
	// compressor's one-layer pool: RunLayer runs a layer of any stage over
	// the same KV layer index).
	off []int
}

func (k *splitKV) Spec() backend.KVSpec { return k.spec }

// NewKV allocates KV storage for contexts of m (kvcache.Storage). A spec of
// Config.Layers layers is split by stage, each stage's layers on its
// backend; a spec of fewer layers (scratch for RunLayer) is allocated whole
// on every stage's backend. An unsplit model's storage is its backend's.
func (m *Model) NewKV(spec backend.KVSpec) (backend.KV, error) {
	if len(m.stages) == 1 {
		return m.be.NewKV(spec)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	kv := &splitKV{spec: spec}
	whole := spec.Layers == m.Config.Layers
	if !whole && spec.Layers > m.Config.Layers {
		return nil, fmt.Errorf("model: KV storage of %d layers for a model of %d", spec.Layers, m.Config.Layers)
	}
	for _, st := range m.stages {
		s, off := spec, 0
		if whole {
			s.Layers, off = st.End-st.First, st.First
		}
		p, err := st.Backend.NewKV(s)
		if err != nil {
			return nil, fmt.Errorf("model: KV cache of layers %d-%d on %s: %w", st.First, st.End-1, st.Backend.Name(), err)
		}
		kv.parts = append(kv.parts, p)
		kv.off = append(kv.off, off)
	}
	return kv, nil
}

// CopyKVBlock copies block src to block dst in every layer of kv, on each
// stage's backend (kvcache.Storage: copy-on-write).
func (m *Model) CopyKVBlock(kv backend.KV, dst, src int) {
	s, ok := kv.(*splitKV)
	if !ok {
		m.be.CopyKVBlock(kv, dst, src)
		return
	}
	for i, p := range s.parts {
		m.stages[i].Backend.CopyKVBlock(p, dst, src)
	}
}

// kvPart is the storage of layer kvLayer on stage si, and the layer's index
// in it.
func (m *Model) kvPart(kv backend.KV, si, kvLayer int) (backend.KV, int, error) {
	if len(m.stages) == 1 {
		return kv, kvLayer, nil
	}
	s, ok := kv.(*splitKV)
	if !ok || len(s.parts) != len(m.stages) {
		return nil, 0, fmt.Errorf("model: a model split over %d backends needs KV storage from its NewKV, not %T", len(m.stages), kv)
	}
	l := kvLayer - s.off[si]
	if l < 0 || l >= s.parts[si].Spec().Layers {
		return nil, 0, fmt.Errorf("model: KV layer %d is not on the backend of stage %d (%s)", kvLayer, si, m.stages[si].Backend.Name())
	}
	return s.parts[si], l, nil
}
