package serve_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/serve"
)

// FuzzRequests posts arbitrary bodies to the completion endpoints of one
// server: every answer is a 200 with a completion (a JSON object, or for
// "stream": true server-sent events ending in [DONE]) or a 4xx with an
// OpenAI error object, and the server keeps answering. Seeds: valid
// requests (a few tokens each) and the shapes TestBadRequests rejects.
//
//	go test ./serve -run XXX -fuzz FuzzRequests -fuzztime 2m
func FuzzRequests(f *testing.F) {
	ts := start(f, engine.Options{Ctx: 256}, serve.Config{MaxBodyBytes: 4096})
	for _, s := range []struct {
		chat bool
		body string
	}{
		{false, `{"prompt":"Once upon a time","max_tokens":3}`},
		{false, `{"prompt":"a","max_tokens":2,"stream":true}`},
		{false, `{"prompt":[1,2,3],"max_tokens":2,"temperature":0.7,"top_p":0.9,"seed":5,"logprobs":2}`},
		{false, `{"prompt":"a","stop":["x","y"],"max_tokens":2,"frequency_penalty":0}`},
		{false, `{"prompt":"a","max_tokens":3,"frequency_penalty":1.5,"presence_penalty":-0.5,"logit_bias":{"15":-100,"7":3}}`},
		{true, `{"messages":[{"role":"user","content":"x"}],"max_tokens":3,"temperature":0.8,"logit_bias":{"1":100},"presence_penalty":2}`},
		{false, `{"prompt":"a",`},
		{false, `[1,2]`},
		{false, `{"prompt":"a","max_tokens":"ten"}`},
		{false, `{"prompt":[1,99999999]}`},
		{false, ``},
		{true, `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":3}`},
		{true, `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}`},
		{true, `{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":2,"max_tokens":2}`},
		{true, `{"messages":[]}`},
		{true, `{"messages":[{"role":"wizard","content":"x"}]}`},
		{true, `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"max_tokens":4}`},
		{true, `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}`},
		{true, `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer","maximum":9}}}}}],"tool_choice":"required","max_tokens":12}`},
		{true, `{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}],"tools":[{"type":"function","function":{"name":"f"}}],"max_tokens":3,"stream":true}`},
	} {
		f.Add(s.chat, s.body)
	}
	f.Fuzz(func(t *testing.T, chat bool, body string) {
		path := "/v1/completions"
		if chat {
			path = "/v1/chat/completions"
		}
		code, hdr, b := post(t, ts.URL+path, body)
		switch {
		case code == 200 && strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream"):
			events, done, err := sse(bytes.NewReader(b))
			if err != nil || !done || len(events) == 0 {
				t.Fatalf("%s %q: stream of %d events, [DONE] %v, err %v: %.300s", path, body, len(events), done, err, b)
			}
		case code == 200:
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil || v["choices"] == nil {
				t.Fatalf("%s %q: 200 without a completion: %.300s", path, body, b)
			}
		case code >= 400 && code < 500:
			var e errorBody
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("%s %q: status %d without an OpenAI error object: %.300s", path, body, code, b)
			}
		default:
			t.Fatalf("%s %q: status %d: %.300s", path, body, code, b)
		}
	})
}
