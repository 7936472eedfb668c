package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/internal/enginetest"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/serve"
)

var loadPrompts = enginetest.Prompts

type streamResult struct {
	text       string
	finish     string
	done       bool
	usage      *struct{ PromptTokens, CompletionTokens int }
	chunks     int
	err        error
	status     int
	firstToken time.Duration
}

// streamCompletion posts a streaming completion and reads it to the end.
func streamCompletion(ctx context.Context, url string, body map[string]any) streamResult {
	var r streamResult
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		r.err = fmt.Errorf("status %d: %s", resp.StatusCode, msg)
		return r
	}
	events, done, err := sse(resp.Body)
	r.done, r.err = done, err
	var text strings.Builder
	for _, ev := range events {
		var c struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal(ev, &c); err != nil {
			r.err = err
			return r
		}
		if c.Error != nil {
			r.err = fmt.Errorf("error event: %s", c.Error.Message)
			return r
		}
		for _, ch := range c.Choices {
			if ch.Text != "" && r.firstToken == 0 {
				r.firstToken = time.Since(t0)
			}
			text.WriteString(ch.Text)
			if ch.FinishReason != nil {
				r.finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			r.usage = &struct{ PromptTokens, CompletionTokens int }{c.Usage.PromptTokens, c.Usage.CompletionTokens}
		}
		r.chunks++
	}
	r.text = text.String()
	return r
}

// TestConcurrentStreams runs 64 streaming requests of up to 64 tokens at
// once: no errors, every stream ends with [DONE] and correct usage, greedy
// ones produce what they produce alone, and afterwards no KV block is
// referenced by a request and memory stayed within model + KV budget + 0.5 GiB.
// Its speed is logged, not asserted.
func TestConcurrentStreams(t *testing.T) {
	t0 := time.Now()
	ts := start(t, engine.Options{MaxSeqs: 32, Ctx: 512}, serve.Config{})
	const n = 64
	type spec struct {
		prompt    string
		maxTokens int
		greedy    bool
	}
	specs := make([]spec, n)
	for i := range specs {
		specs[i] = spec{prompt: fmt.Sprintf("%s // %d", loadPrompts[i%len(loadPrompts)], i), maxTokens: 1 + (i*37)%64, greedy: i%2 == 0}
	}
	results := make([]streamResult, n)
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"model": "miniphi-29m", "prompt": sp.prompt, "max_tokens": sp.maxTokens, "stream": true,
				"stream_options": map[string]any{"include_usage": true}}
			if sp.greedy {
				body["temperature"] = 0
			} else {
				body["temperature"], body["seed"] = 0.8, i
			}
			results[i] = streamCompletion(context.Background(), ts.URL, body)
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	tokens := 0
	for i, r := range results {
		if r.err != nil || !r.done {
			t.Errorf("request %d: err %v, [DONE] %v", i, r.err, r.done)
			continue
		}
		prompt := ts.eng.EncodePrompt(specs[i].prompt)
		if r.usage == nil || r.usage.PromptTokens != len(prompt) || r.usage.CompletionTokens > specs[i].maxTokens ||
			(r.finish == "length") != (r.usage.CompletionTokens == specs[i].maxTokens) {
			t.Errorf("request %d: usage %+v finish %q for max_tokens %d, prompt %d", i, r.usage, r.finish, specs[i].maxTokens, len(prompt))
			continue
		}
		tokens += r.usage.CompletionTokens
	}
	st := waitIdle(t, ts.Server, 2*time.Second)
	if st.BlocksReferenced != 0 {
		t.Errorf("%d KV blocks still referenced", st.BlocksReferenced)
	}
	t.Logf("%d requests, %d tokens in %v (%.0f tok/s); %d steps, %d preemptions, %d cached blocks", n, tokens, elapsed.Round(time.Millisecond),
		float64(tokens)/elapsed.Seconds(), st.Steps, st.Preemptions, st.BlocksCached)

	// Greedy ones equal the engine's output alone.
	ref := load(t, engine.Options{Ctx: 512})
	defer ref.Close()
	for i := 0; i < n; i += 8 {
		var b strings.Builder
		if _, err := ref.Generate(context.Background(), engine.Request{Prompt: ref.EncodePrompt(specs[i].prompt), MaxTokens: specs[i].maxTokens},
			func(s string) { b.WriteString(s) }); err != nil {
			t.Fatal(err)
		}
		if results[i].text != b.String() {
			t.Errorf("request %d batched: %q\nalone: %q", i, results[i].text, b.String())
		}
	}
	usage := sysmem.Self()
	limit := sysmem.PathSize(demo) + ts.eng.Pool.Bytes() + 512<<20
	if usage.PeakRSS > limit {
		t.Errorf("peak RSS %d MiB > model + KV budget + 512 MiB = %d MiB", usage.PeakRSS>>20, limit>>20)
	}
	// The request counter saw them.
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `upg_requests_total{code="200",endpoint="completions"} 64`) {
		t.Errorf("metrics do not count 64 completions:\n%s", m)
	}
}

// TestPrefixCacheReuse: a repeated long system prompt is served from the
// prefix cache (usage.prompt_tokens_details.cached_tokens), with the same
// greedy output as without the cache.
func TestPrefixCacheReuse(t *testing.T) {
	ts := start(t, engine.Options{Ctx: 1024}, serve.Config{})
	var sys strings.Builder
	for i := 1; sys.Len() < 2400; i++ {
		fmt.Fprintf(&sys, "Rule %d: check the error returned by call number %d before using its result.\n", i, i*7)
	}
	ask := func(q string) (text string, prompt, cached int) {
		body, _ := json.Marshal(map[string]any{"max_tokens": 12, "temperature": 0,
			"messages": []map[string]string{{"role": "system", "content": sys.String()}, {"role": "user", "content": q}}})
		code, _, b := post(t, ts.URL+"/v1/chat/completions", string(body))
		var r struct {
			Choices []struct{ Message struct{ Content string } } `json:"choices"`
			Usage   struct {
				PromptTokens        int `json:"prompt_tokens"`
				PromptTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if code != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("%d %s", code, b)
		}
		return r.Choices[0].Message.Content, r.Usage.PromptTokens, r.Usage.PromptTokensDetails.CachedTokens
	}
	first, n, cached := ask("Which rule matters most?")
	if cached != 0 || n < 500 {
		t.Fatalf("first request: %d prompt tokens, %d cached", n, cached)
	}
	_, n2, cached2 := ask("Which rule is easiest?")
	if cached2 < n2-64 || cached2 >= n2 {
		t.Errorf("second request (new question): %d of %d prompt tokens cached; want the system prompt's full blocks", cached2, n2)
	}
	again, n3, cached3 := ask("Which rule matters most?")
	if again != first || cached3 != (n3-1)/32*32 {
		t.Errorf("repeat: %q (%d of %d cached), first %q", again, cached3, n3, first)
	}
	st := waitIdle(t, ts.Server, time.Second)
	if st.BlocksCached == 0 {
		t.Errorf("no cached blocks kept: %+v", st)
	}
}

// TestLookupStreams serves with prompt lookup (engine.Options.Lookup):
// concurrent greedy and seeded sampled streams, some of whose steps
// produce several tokens, stream the text plain decoding gives alone, with
// usage and finish reasons that count every token, and free their blocks.
func TestLookupStreams(t *testing.T) {
	ts := start(t, engine.Options{MaxSeqs: 8, Ctx: 512, Lookup: 4}, serve.Config{})
	code := "func add(a, b int) int {\n\treturn a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n\nfunc mul(a, b int) int {\n\treturn"
	const n = 16
	prompts := make([]string, n)
	maxTokens := make([]int, n)
	for i := range prompts {
		prompts[i] = loadPrompts[i%len(loadPrompts)]
		if i%2 == 0 {
			prompts[i] = fmt.Sprintf("%s // %d\n%s", code, i, code)
		}
		maxTokens[i] = 20 + (i*13)%45
	}
	results := make([]streamResult, n)
	var wg sync.WaitGroup
	for i := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"model": "miniphi-29m", "prompt": prompts[i], "max_tokens": maxTokens[i], "stream": true,
				"stream_options": map[string]any{"include_usage": true}, "temperature": 0}
			if i%4 == 3 {
				body["temperature"], body["seed"] = 0.8, i
			}
			results[i] = streamCompletion(context.Background(), ts.URL, body)
		}()
	}
	wg.Wait()
	ref := load(t, engine.Options{Ctx: 512})
	defer ref.Close()
	for i, r := range results {
		if r.err != nil || !r.done || r.usage == nil {
			t.Errorf("request %d: err %v, [DONE] %v, usage %v", i, r.err, r.done, r.usage)
			continue
		}
		if (r.finish == "length") != (r.usage.CompletionTokens == maxTokens[i]) || r.usage.CompletionTokens > maxTokens[i] {
			t.Errorf("request %d: finish %q after %d tokens, max_tokens %d", i, r.finish, r.usage.CompletionTokens, maxTokens[i])
		}
		req := engine.Request{Prompt: ref.EncodePrompt(prompts[i]), MaxTokens: maxTokens[i]}
		if i%4 == 3 { // as the server turns the request's sampling fields into options
			req.Sampling = sample.Options{Temperature: 0.8, TopP: 1, Seed: uint64(i)}
		}
		var b strings.Builder
		st, err := ref.Generate(context.Background(), req, func(s string) { b.WriteString(s) })
		if err != nil {
			t.Fatal(err)
		}
		if r.text != b.String() || r.usage.CompletionTokens != st.GeneratedTokens {
			t.Errorf("request %d with lookup: %d tokens %q\nalone without: %d tokens %q", i, r.usage.CompletionTokens, r.text, st.GeneratedTokens, b.String())
		}
	}
	if st := waitIdle(t, ts.Server, 2*time.Second); st.BlocksReferenced != 0 {
		t.Errorf("%d KV blocks still referenced", st.BlocksReferenced)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var drafted, kept float64
	for _, line := range strings.Split(string(m), "\n") {
		fmt.Sscanf(line, "upg_lookup_drafted_tokens_total %g", &drafted)
		fmt.Sscanf(line, "upg_lookup_accepted_tokens_total %g", &kept)
	}
	if kept < 1 || kept > drafted {
		t.Errorf("metrics: %g of %g drafted tokens kept; want some kept", kept, drafted)
	}
	t.Logf("lookup kept %g of %g drafted tokens", kept, drafted)
}
