package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/upg-ai/upg/backend/cuda"
)

// metrics are the server's Prometheus metrics, on a registry of its own
// (several servers can live in one process, as in the tests).
type metrics struct {
	reg *prometheus.Registry

	requests                 *prometheus.CounterVec
	promptTokens, genTokens  prometheus.Counter
	cacheHitTokens           prometheus.Counter
	preemptions, cancelled   prometheus.Counter
	drafted, accepted        prometheus.Counter
	overlapped               prometheus.Counter
	queue, running           prometheus.Gauge
	kvUsed, kvFree, kvCached prometheus.Gauge
	kvTotal                  prometheus.Gauge
	ttft, itl, e2e           prometheus.Histogram
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "upg_requests_total",
		Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"})
	f(m.requests)
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		f(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		f(g)
		return g
	}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
		f(h)
		return h
	}
	m.promptTokens = counter("upg_prompt_tokens_total", "Prompt tokens of admitted requests.")
	m.genTokens = counter("upg_generation_tokens_total", "Tokens generated.")
	m.cacheHitTokens = counter("upg_prefix_cache_hit_tokens_total", "Prompt tokens whose KV entries came from the prefix cache.")
	m.preemptions = counter("upg_preemptions_total", "Sequences preempted (their KV blocks freed, recomputed later) to make room.")
	m.cancelled = counter("upg_cancelled_requests_total", "Requests cancelled by a client disconnect or a timeout.")
	m.drafted = counter("upg_lookup_drafted_tokens_total", "Tokens prompt lookup (--lookup) proposed after sequences' last tokens.")
	m.accepted = counter("upg_lookup_accepted_tokens_total", "Proposed prompt-lookup tokens the model picked itself (kept).")
	m.overlapped = counter("upg_overlapped_steps_total", "Decoding steps queued on the tokens the GPU sampled before the step before was read back (host overlap).")
	m.queue = gauge("upg_queue_depth", "Requests waiting to join the running batch.")
	m.running = gauge("upg_running_sequences", "Sequences in the running batch.")
	m.kvUsed = gauge("upg_kv_blocks_used", "KV cache blocks referenced by sequences.")
	m.kvFree = gauge("upg_kv_blocks_free", "KV cache blocks free for new positions (including unreferenced cached prefix blocks).")
	m.kvCached = gauge("upg_kv_blocks_cached", "Unreferenced KV cache blocks kept for prefix reuse (part of free).")
	m.kvTotal = gauge("upg_kv_blocks_total", "KV cache blocks in the pool.")
	lat := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m.ttft = hist("upg_time_to_first_token_seconds", "Time from a request's arrival to its first generated token.", lat)
	m.itl = hist("upg_inter_token_latency_seconds", "Time between consecutive generated tokens of a request.", lat)
	m.e2e = hist("upg_request_duration_seconds", "Time from a request's arrival to its last token.", lat)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// addGraphs registers the step-graph counts of a GPU backend: how many
// steps were replayed from a captured graph, captured, or run op by op, and
// the graphs held and evicted (the cache holds UPG_CUDA_GRAPH_CACHE). Each
// scrape reads them under the backend's lock, so it waits for a step in
// flight (milliseconds).
func (m *metrics) addGraphs(g cuda.GraphReporter) {
	steps := func(kind string, v func(cuda.GraphStats) int64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "upg_cuda_graph_steps_total",
			Help:        "Forward passes on the GPU by how they ran: replayed (a captured CUDA graph), captured, eager (op by op: a step's first time).",
			ConstLabels: prometheus.Labels{"kind": kind}}, func() float64 { return float64(v(g.GraphStats())) }))
	}
	steps("replayed", func(s cuda.GraphStats) int64 { return s.Replayed })
	steps("captured", func(s cuda.GraphStats) int64 { return s.Captured })
	steps("eager", func(s cuda.GraphStats) int64 { return s.Eager })
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "upg_cuda_graph_evictions_total",
		Help: "Step graphs destroyed to keep the cache within UPG_CUDA_GRAPH_CACHE."},
		func() float64 { return float64(g.GraphStats().Evicted) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "upg_cuda_graphs",
		Help: "Step graphs the GPU backend holds."},
		func() float64 { return float64(g.GraphStats().Held) }))
}
