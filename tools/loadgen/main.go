// Command loadgen measures an OpenAI-compatible server (upg serve) under
// concurrent streaming requests: aggregate decode throughput, time to first
// token and inter-token latency percentiles.
//
//	upg serve --max-batch 16 &
//	go run ./tools/loadgen -c 1 -requests 4 -max-tokens 128      # one stream at a time
//	go run ./tools/loadgen -c 16 -requests 32 -max-tokens 128    # 16 concurrent streams
//	go run ./tools/loadgen -c 1 -requests 8 -system-tokens 1000  # a repeated ~1,000-token system prompt
//
// Each request streams (stream_options.include_usage) with ignore_eos, so
// every one decodes -max-tokens tokens. Aggregate decode is every
// request's generated tokens divided by the wall time from the first
// request's start to the last one's end; per-stream decode is a request's
// tokens after its first, divided by the time between its first and last.
// With -system-tokens, requests are chat completions sharing a long system
// message and differing in the user message: the first request's time to
// first token is reported apart (cache miss) from the others' (prefix
// cache hits).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	ttft, total  time.Duration
	gaps         []time.Duration
	tokens       int // usage.completion_tokens
	promptTokens int
	decodeTokS   float64
	err          error
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	conc := flag.Int("c", 16, "concurrent streams")
	requests := flag.Int("requests", 0, "requests in all (default: 2 × -c)")
	maxTokens := flag.Int("max-tokens", 128, "tokens to generate per request (ignore_eos)")
	prompt := flag.String("prompt", "package main\n\nimport (", "completion prompt (a request number is appended)")
	system := flag.Int("system-tokens", 0, "use chat requests sharing a system message of about this many tokens")
	key := flag.String("key", os.Getenv("UPG_API_KEY"), "API key")
	warmup := flag.Int("warmup", 1, "requests sent (one at a time) before measuring")
	jsonOut := flag.Bool("json", false, "print the summary as JSON")
	flag.Parse()
	if *requests <= 0 {
		*requests = 2 * *conc
	}
	sys := ""
	if *system > 0 {
		sys = systemPrompt(*system)
	}
	body := func(i int) map[string]any {
		b := map[string]any{"model": "loadgen", "max_tokens": *maxTokens, "stream": true, "ignore_eos": true,
			"stream_options": map[string]any{"include_usage": true}, "temperature": 0.8, "seed": i}
		if sys != "" {
			b["messages"] = []map[string]string{{"role": "system", "content": sys},
				{"role": "user", "content": fmt.Sprintf("Question %d: which rule matters most, and why?", i)}}
		} else {
			b["prompt"] = fmt.Sprintf("%s // request %d\n", *prompt, i)
		}
		return b
	}
	for i := range *warmup {
		b := body(-1 - i)
		if sys != "" {
			// Warm the server without caching the measured system prompt.
			b["messages"] = []map[string]string{{"role": "user", "content": "Warm-up."}}
		}
		if r := run(*url, *key, b); r.err != nil {
			log.Fatalf("warm-up request: %v", r.err)
		}
	}

	results := make([]result, *requests)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *requests {
					return
				}
				results[i] = run(*url, *key, body(i))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	summarize(results, wall, *conc, *maxTokens, sys != "", *jsonOut)
}

// systemPrompt is a system message of about n tokens (≈ 4 characters each).
func systemPrompt(n int) string {
	var b strings.Builder
	b.WriteString("You are a careful Go reviewer. Apply these rules to every answer.\n")
	for i := 1; b.Len() < 4*n; i++ {
		fmt.Fprintf(&b, "Rule %d: check the error returned by call number %d before using its result, and say why.\n", i, i*7)
	}
	return b.String()
}

func run(url, key string, body map[string]any) result {
	var r result
	path := "/v1/completions"
	if _, chat := body["messages"]; chat {
		path = "/v1/chat/completions"
	}
	buf, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", url+path, bytes.NewReader(buf))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e bytes.Buffer
		e.ReadFrom(resp.Body)
		r.err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(e.String()))
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var first, last time.Time
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ch struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			r.err = err
			return r
		}
		if ch.Error != nil {
			r.err = fmt.Errorf("stream error: %s", ch.Error.Message)
			return r
		}
		now := time.Now()
		for _, c := range ch.Choices {
			if c.Text == "" && c.Delta.Content == "" {
				continue
			}
			if first.IsZero() {
				first = now
				r.ttft = now.Sub(t0)
			} else {
				r.gaps = append(r.gaps, now.Sub(last))
			}
			last = now
		}
		if ch.Usage != nil {
			r.tokens, r.promptTokens = ch.Usage.CompletionTokens, ch.Usage.PromptTokens
		}
	}
	if !done {
		r.err = fmt.Errorf("stream ended without [DONE] (%v)", sc.Err())
	}
	r.total = time.Since(t0)
	if r.tokens > 1 && last.After(first) {
		r.decodeTokS = float64(r.tokens-1) / last.Sub(first).Seconds()
	}
	return r
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s)-1) + 0.5)
	return s[i]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summarize(rs []result, wall time.Duration, conc, maxTokens int, system, asJSON bool) {
	var ttft, ttftWarm, gaps []time.Duration
	var perStream []float64
	tokens, prompt, errs := 0, 0, 0
	for i, r := range rs {
		if r.err != nil {
			errs++
			log.Printf("request %d: %v", i, r.err)
			continue
		}
		tokens += r.tokens
		prompt = r.promptTokens
		ttft = append(ttft, r.ttft)
		if i > 0 {
			ttftWarm = append(ttftWarm, r.ttft)
		}
		gaps = append(gaps, r.gaps...)
		perStream = append(perStream, r.decodeTokS)
	}
	s := map[string]any{
		"requests": len(rs), "errors": errs, "concurrency": conc, "max_tokens": maxTokens, "prompt_tokens": prompt,
		"wall_s":                  wall.Seconds(),
		"completion_tokens":       tokens,
		"aggregate_tok_s":         float64(tokens) / wall.Seconds(),
		"per_stream_decode_tok_s": median(perStream),
		"ttft_p50_ms":             ms(pct(ttft, 50)),
		"ttft_p99_ms":             ms(pct(ttft, 99)),
		"itl_p50_ms":              ms(pct(gaps, 50)),
		"itl_p99_ms":              ms(pct(gaps, 99)),
	}
	if system && len(rs) > 1 && rs[0].err == nil {
		s["ttft_first_ms"] = ms(rs[0].ttft)
		s["ttft_repeat_p50_ms"] = ms(pct(ttftWarm, 50))
	}
	if asJSON {
		json.NewEncoder(os.Stdout).Encode(s)
	} else {
		fmt.Printf("%d requests (%d errors), %d concurrent, %d prompt + %d max tokens each\n", len(rs), errs, conc, prompt, maxTokens)
		fmt.Printf("aggregate decode %.1f tok/s (%d tokens in %.2f s); per-stream decode median %.1f tok/s\n",
			s["aggregate_tok_s"], tokens, wall.Seconds(), s["per_stream_decode_tok_s"])
		fmt.Printf("TTFT p50 %.1f ms, p99 %.1f ms; inter-token p50 %.1f ms, p99 %.1f ms\n",
			s["ttft_p50_ms"], s["ttft_p99_ms"], s["itl_p50_ms"], s["itl_p99_ms"])
		if v, ok := s["ttft_first_ms"]; ok {
			fmt.Printf("shared system prompt: first request TTFT %.1f ms, repeats p50 %.1f ms (%.1fx)\n",
				v, s["ttft_repeat_p50_ms"], v.(float64)/s["ttft_repeat_p50_ms"].(float64))
		}
	}
	if errs > 0 {
		os.Exit(1)
	}
}
