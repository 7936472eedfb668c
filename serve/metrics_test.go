package serve

import (
	"testing"

	"github.com/upg-ai/upg/backend/cuda"
)

type fakeGraphs struct{ s cuda.GraphStats }

func (f *fakeGraphs) GraphStats() cuda.GraphStats { return f.s }

// TestGraphMetrics: a GPU backend's step-graph counts are read at each
// scrape, by kind.
func TestGraphMetrics(t *testing.T) {
	m := newMetrics()
	g := &fakeGraphs{cuda.GraphStats{Eager: 3, Captured: 2, Replayed: 40, Evicted: 1, Held: 1}}
	m.addGraphs(g)
	g.s.Replayed = 41
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			name := f.GetName()
			for _, l := range mt.GetLabel() {
				name += "/" + l.GetValue()
			}
			if c := mt.GetCounter(); c != nil {
				got[name] = c.GetValue()
			}
			if gg := mt.GetGauge(); gg != nil {
				got[name] = gg.GetValue()
			}
		}
	}
	want := map[string]float64{"upg_cuda_graph_steps_total/replayed": 41, "upg_cuda_graph_steps_total/captured": 2,
		"upg_cuda_graph_steps_total/eager": 3, "upg_cuda_graph_evictions_total": 1, "upg_cuda_graphs": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %g, want %g", k, got[k], v)
		}
	}
}
