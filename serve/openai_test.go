package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/constrain"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/serve"
)

func client(ts *testServer, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// reference generates text with a separate engine, as `upg run` does.
func reference(t *testing.T, prompt []int, maxTokens int, stops []string) (string, engine.Stats) {
	t.Helper()
	return referenceOf(t, engine.Request{Prompt: prompt, MaxTokens: maxTokens, Stop: stops})
}

// referenceOf generates req's text with a separate engine.
func referenceOf(t *testing.T, req engine.Request) (string, engine.Stats) {
	t.Helper()
	l := load(t, engine.Options{Ctx: 512})
	defer l.Close()
	var b strings.Builder
	st, err := l.Generate(context.Background(), req, func(s string) { b.WriteString(s) })
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), st
}

const codePrompt = "func (b *Buffer) Write(p []byte) (n int, err error) {"

// TestOpenAIGoCompletions drives /v1/completions with the official Go client:
// greedy text equal to a plain engine run, streaming equal to not, usage
// equal to the tokenizer's count, stop strings, seeded sampling.
func TestOpenAIGoCompletions(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{APIKey: "sk-test"})
	c := client(ts, "sk-test")
	ctx := context.Background()
	prompt := ts.eng.EncodePrompt(codePrompt)
	want, wst := reference(t, prompt, 40, nil)

	params := openai.CompletionNewParams{Model: "miniphi-29m", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(codePrompt)},
		MaxTokens: openai.Int(40), Temperature: openai.Float(0)}
	res, err := c.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Text != want {
		t.Fatalf("greedy completion %q\nwant (engine alone) %q", res.Choices[0].Text, want)
	}
	if res.Usage.PromptTokens != int64(len(prompt)) || res.Usage.CompletionTokens != int64(wst.GeneratedTokens) || res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens {
		t.Errorf("usage %+v, want prompt %d completion %d", res.Usage, len(prompt), wst.GeneratedTokens)
	}
	wantReason := "length"
	if wst.StopReason == "eos" {
		wantReason = "stop"
	}
	if string(res.Choices[0].FinishReason) != wantReason || res.Object != "text_completion" || res.Model != "miniphi-29m" {
		t.Errorf("finish %q object %q model %q", res.Choices[0].FinishReason, res.Object, res.Model)
	}

	// Streaming: the same text, usage at the end when asked.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	var usage openai.CompletionUsage
	finish := ""
	chunks := 0
	for stream.Next() {
		ch := stream.Current()
		chunks++
		for _, cc := range ch.Choices {
			text.WriteString(cc.Text)
			if cc.FinishReason != "" {
				finish = string(cc.FinishReason)
			}
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != want || finish != wantReason || usage.PromptTokens != int64(len(prompt)) || usage.CompletionTokens != int64(wst.GeneratedTokens) {
		t.Errorf("stream: %q finish %q usage %+v (%d chunks)\nwant %q", text.String(), finish, usage, chunks, want)
	}

	// A stop string from the middle of the greedy text ends it before the stop.
	stop := want[len(want)/2 : len(want)/2+6]
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	params.Stop = openai.CompletionNewParamsStopUnion{OfStringArray: []string{"\x00never", stop}}
	res, err = c.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Text; got != want[:strings.Index(want, stop)] || res.Choices[0].FinishReason != "stop" {
		t.Errorf("stop %q: %q (%s), want %q", stop, got, res.Choices[0].FinishReason, want[:strings.Index(want, stop)])
	}

	// Seeded sampling repeats itself; log-probabilities come per token.
	sampled := openai.CompletionNewParams{Model: "miniphi-29m", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("The old man")},
		MaxTokens: openai.Int(16), Temperature: openai.Float(0.9), TopP: openai.Float(0.95), Seed: openai.Int(42), Logprobs: openai.Int(3)}
	a, err := c.Completions.New(ctx, sampled)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Completions.New(ctx, sampled)
	if err != nil {
		t.Fatal(err)
	}
	if a.Choices[0].Text != b.Choices[0].Text {
		t.Errorf("same seed, different text: %q vs %q", a.Choices[0].Text, b.Choices[0].Text)
	}
	lp := a.Choices[0].Logprobs
	if n := int(a.Usage.CompletionTokens); len(lp.Tokens) != n || len(lp.TokenLogprobs) != n || len(lp.TopLogprobs) != n {
		t.Errorf("logprobs for %d tokens: %d tokens, %d logprobs, %d tops", n, len(lp.Tokens), len(lp.TokenLogprobs), len(lp.TopLogprobs))
	}
	for i, v := range lp.TokenLogprobs {
		if v > 0 || len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 3 {
			t.Errorf("token %d: logprob %v, %d top logprobs", i, v, len(lp.TopLogprobs[i]))
		}
	}

	// Token-id prompts are accepted too.
	ids := make([]int64, len(prompt))
	for i, id := range prompt {
		ids[i] = int64(id)
	}
	res, err = c.Completions.New(ctx, openai.CompletionNewParams{Model: "miniphi-29m", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: ids},
		MaxTokens: openai.Int(40), Temperature: openai.Float(0)})
	if err != nil || res.Choices[0].Text != want {
		t.Errorf("token-id prompt: %v %q", err, res.Choices[0].Text)
	}

	// The wrong key is refused with 401.
	wrong := client(ts, "sk-wrong")
	_, err = wrong.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
		t.Errorf("wrong key: %v", err)
	}
	// The model list.
	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "miniphi-29m" {
		t.Errorf("models: %v %+v", err, models)
	}
}

// TestOpenAIGoChat drives /v1/chat/completions with the official Go client.
func TestOpenAIGoChat(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{})
	c := client(ts, "unused")
	ctx := context.Background()
	msgs := []chat.Message{{Role: "system", Content: "You write Go."}, {Role: "user", Content: "Write a function that adds two numbers."}}
	prompt := ts.eng.EncodeChat(msgs)
	want, wst := reference(t, prompt, 48, ts.eng.Template.Stops())

	params := openai.ChatCompletionNewParams{Model: "anything",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(msgs[0].Content), openai.UserMessage(msgs[1].Content)},
		MaxCompletionTokens: openai.Int(48), Temperature: openai.Float(0), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(2)}
	res, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	ch := res.Choices[0]
	if ch.Message.Content != want || ch.Message.Role != "assistant" {
		t.Errorf("chat %q\nwant (engine alone) %q", ch.Message.Content, want)
	}
	if res.Usage.PromptTokens != int64(len(prompt)) || res.Usage.CompletionTokens != int64(wst.GeneratedTokens) {
		t.Errorf("usage %+v, want prompt %d completion %d", res.Usage, len(prompt), wst.GeneratedTokens)
	}
	if len(ch.Logprobs.Content) != wst.GeneratedTokens {
		t.Errorf("%d logprobs for %d tokens", len(ch.Logprobs.Content), wst.GeneratedTokens)
	}
	for _, lp := range ch.Logprobs.Content {
		if len(lp.TopLogprobs) != 2 || lp.TopLogprobs[0].Logprob < lp.TopLogprobs[1].Logprob || lp.Logprob > lp.TopLogprobs[0].Logprob+1e-6 {
			t.Errorf("logprob %+v", lp)
			break
		}
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != want || acc.Usage.PromptTokens != int64(len(prompt)) ||
		acc.Usage.CompletionTokens != int64(wst.GeneratedTokens) || acc.Choices[0].FinishReason != res.Choices[0].FinishReason {
		t.Errorf("stream: %+v\nwant %q", acc.ChatCompletion, want)
	}

	// Refused parameters name themselves.
	for name, p := range map[string]openai.ChatCompletionNewParams{
		"response_format": {ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "x"}}}},
	} {
		p.Model, p.Messages = "x", params.Messages
		_, err := c.Chat.Completions.New(ctx, p)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != name || !strings.Contains(apiErr.Message, name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestOpenAIGoPenalties: frequency_penalty, presence_penalty and
// logit_bias through the official client give what the engine gives alone
// with the same sampling options, and each changes the greedy text (a
// server that ignored one would fail); a bias of 100 on one token makes
// every generated token that one.
func TestOpenAIGoPenalties(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{})
	c := client(ts, "unused")
	ctx := context.Background()
	prompt := ts.eng.EncodePrompt(codePrompt)
	const n = 48
	plain, _ := reference(t, prompt, n, nil)
	x := ts.eng.Tokenizer.Encode(" x", false, false)
	if len(x) != 1 {
		t.Fatalf("\" x\" is %d tokens", len(x))
	}
	cases := []struct {
		name string
		p    openai.CompletionNewParams
		o    sample.Options
	}{
		{"frequency_penalty", openai.CompletionNewParams{FrequencyPenalty: openai.Float(1.5)}, sample.Options{FrequencyPenalty: 1.5}},
		{"presence_penalty", openai.CompletionNewParams{PresencePenalty: openai.Float(2)}, sample.Options{PresencePenalty: 2}},
		{"negative", openai.CompletionNewParams{FrequencyPenalty: openai.Float(-2), PresencePenalty: openai.Float(0.5)},
			sample.Options{FrequencyPenalty: -2, PresencePenalty: 0.5}},
		{"logit_bias", openai.CompletionNewParams{LogitBias: map[string]int64{strconv.Itoa(x[0]): 100}},
			sample.Options{LogitBias: map[int]float32{x[0]: 100}}},
	}
	for _, tc := range cases {
		tc.p.Model, tc.p.Prompt = "x", openai.CompletionNewParamsPromptUnion{OfString: openai.String(codePrompt)}
		tc.p.MaxTokens, tc.p.Temperature = openai.Int(n), openai.Float(0)
		res, err := c.Completions.New(ctx, tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want, _ := referenceOf(t, engine.Request{Prompt: prompt, MaxTokens: n, Sampling: tc.o})
		got := res.Choices[0].Text
		if got != want || got == plain {
			t.Errorf("%s: served %q\nengine alone %q\nwithout it %q", tc.name, got, want, plain)
		}
	}
	// the bias of 100 on " x" decides every token
	if want, _ := referenceOf(t, engine.Request{Prompt: prompt, MaxTokens: n, Sampling: cases[3].o}); want != strings.Repeat(" x", n) {
		t.Errorf("logit_bias 100: %q", want)
	}
}

// TestOpenAIGoChoices: n choices through the official client are n
// sequences, choice i sampled with seed + i: each equals the engine's text
// alone with that seed, usage counts the prompt once and every choice's
// tokens, and a stream carries every choice to its finish reason.
func TestOpenAIGoChoices(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{MaxQueue: 8})
	c := client(ts, "unused")
	ctx := context.Background()
	prompt := ts.eng.EncodePrompt(codePrompt)
	const n, maxTokens, seed = 3, 24, 11
	res, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "x", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(codePrompt)},
		MaxTokens: openai.Int(maxTokens), Temperature: openai.Float(0.9), Seed: openai.Int(seed), N: openai.Int(n)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != n {
		t.Fatalf("%d choices, want %d", len(res.Choices), n)
	}
	generated := 0
	texts := map[string]bool{}
	for i, ch := range res.Choices {
		want, st := referenceOf(t, engine.Request{Prompt: prompt, MaxTokens: maxTokens,
			Sampling: sample.Options{Temperature: 0.9, TopP: 1, Seed: seed + uint64(i)}})
		if ch.Index != int64(i) || ch.Text != want {
			t.Errorf("choice %d (index %d): %q\nwant (engine alone, seed %d) %q", i, ch.Index, ch.Text, seed+i, want)
		}
		generated += st.GeneratedTokens
		texts[ch.Text] = true
	}
	if len(texts) < 2 {
		t.Errorf("the %d sampled choices are all the same: %q", n, res.Choices[0].Text)
	}
	if res.Usage.PromptTokens != int64(len(prompt)) || res.Usage.CompletionTokens != int64(generated) {
		t.Errorf("usage %+v, want prompt %d completion %d", res.Usage, len(prompt), generated)
	}

	// a streamed chat: two greedy choices, each the greedy text
	msgs := []chat.Message{{Role: "user", Content: "Write a function that adds two numbers."}}
	want, wst := reference(t, ts.eng.EncodeChat(msgs), 32, ts.eng.Template.Stops())
	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(msgs[0].Content)},
		MaxCompletionTokens: openai.Int(32), Temperature: openai.Float(0), N: openai.Int(2),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	acc := openai.ChatCompletionAccumulator{}
	finished := map[int64]string{}
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		for _, c := range ch.Choices {
			if c.FinishReason != "" {
				finished[c.Index] = c.FinishReason
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 2 || len(finished) != 2 {
		t.Fatalf("stream: %d choices, finish reasons %v", len(acc.Choices), finished)
	}
	for i, ch := range acc.Choices {
		if ch.Message.Content != want {
			t.Errorf("streamed choice %d: %q\nwant %q", i, ch.Message.Content, want)
		}
	}
	if acc.Usage.CompletionTokens != int64(2*wst.GeneratedTokens) {
		t.Errorf("stream usage %+v, want %d completion tokens", acc.Usage, 2*wst.GeneratedTokens)
	}

	// more choices than the queue holds: a 400 naming n
	_, err = c.Completions.New(ctx, openai.CompletionNewParams{Model: "x", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("a")},
		MaxTokens: openai.Int(2), N: openai.Int(9)})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "n" || !strings.Contains(apiErr.Message, "queue holds (8 requests)") {
		t.Errorf("n over the queue: %v", err)
	}
	waitIdle(t, ts.Server, 2*time.Second)
}

// TestOpenAIGoJSONMode: response_format json_object through the official
// client: greedy answers are one JSON object (encoding/json accepts it)
// where the plain answer is not JSON; sampled choices are JSON at every
// token and one object when they end; streamed equals not streamed.
func TestOpenAIGoJSONMode(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{})
	c := client(ts, "unused")
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Write the user as JSON with a name and an age.")}
	jsonObject := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
	plain, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, MaxCompletionTokens: openai.Int(60), Temperature: openai.Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	if json.Valid([]byte(plain.Choices[0].Message.Content)) {
		t.Fatalf("the plain answer is JSON already: %q", plain.Choices[0].Message.Content)
	}
	// greedy, with a frequency penalty against this small model's loops:
	// answers that end are one object (at least one does)
	ended := 0
	for _, q := range []struct {
		msg string
		fp  float64
	}{{"Write the user as JSON with a name and an age.", 0.5}, {"Write the user as JSON with a name and an age.", 1}, {"Give me a JSON object.", 0}} {
		g, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(q.msg)},
			MaxCompletionTokens: openai.Int(200), Temperature: openai.Float(0), FrequencyPenalty: openai.Float(q.fp), ResponseFormat: jsonObject})
		if err != nil {
			t.Fatal(err)
		}
		text := []byte(g.Choices[0].Message.Content)
		switch {
		case !constrain.Prefix(text):
			t.Errorf("%q: not JSON: %q", q.msg, text)
		case g.Choices[0].FinishReason == "stop" && !json.Valid(text):
			t.Errorf("%q: finished, not one JSON object: %q", q.msg, text)
		case g.Choices[0].FinishReason == "stop":
			ended++
		}
		t.Logf("%q, frequency penalty %v: %s: %q", q.msg, q.fp, g.Choices[0].FinishReason, text)
	}
	if ended == 0 {
		t.Errorf("no greedy answer ended with a complete object")
	}
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, MaxCompletionTokens: openai.Int(100),
		Temperature: openai.Float(0.7), Seed: openai.Int(5), N: openai.Int(4), ResponseFormat: jsonObject})
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range res.Choices {
		text := []byte(ch.Message.Content)
		switch {
		case !constrain.Prefix(text):
			t.Errorf("choice %d: not JSON: %q", i, text)
		case ch.FinishReason == "stop" && !json.Valid(text):
			t.Errorf("choice %d: finished, not one JSON object: %q", i, text)
		}
		t.Logf("choice %d: %s: %.100q", i, ch.FinishReason, text)
	}
	sameStreamed(t, c, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, MaxCompletionTokens: openai.Int(100),
		Temperature: openai.Float(0.7), Seed: openai.Int(5), ResponseFormat: jsonObject}, res.Choices[0].Message.Content)
}

// sameStreamed checks that the chat completion p, streamed, has the text
// want (the first choice's, not streamed).
func sameStreamed(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams, want string) {
	t.Helper()
	stream := c.Chat.Completions.NewStreaming(context.Background(), p)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != want {
		t.Errorf("streamed %q\nnot streamed %q", got, want)
	}
}

// schemaFormat is response_format json_schema for the client with schema
// (its text), and the schema compiled as the server gets it: a Go map's
// keys, so its properties, sorted.
func schemaFormat(t *testing.T, name, schema string) (openai.ChatCompletionNewParamsResponseFormatUnion, *constrain.Schema) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(schema), &raw); err != nil {
		t.Fatal(err)
	}
	sent, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	check, err := constrain.NewSchema(constrain.NewJSON(0, nil, nil, nil), sent)
	if err != nil {
		t.Fatal(err)
	}
	return openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
		JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: name, Schema: raw, Strict: openai.Bool(true)}}}, check
}

// TestOpenAIGoJSONSchemaRefs: a schema with nested models as pydantic
// writes them (the model's classes under $defs, fields that $ref them,
// Optional[...] as anyOf with null, constr's max_length, Field(ge=, le=),
// date and UUID fields' formats) through the official Go client: greedy
// answers decode into the nested structs, with a date and a UUID where the
// formats say and the bounds kept.
func TestOpenAIGoJSONSchemaRefs(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{})
	c := client(ts, "unused")
	const schema = `{"$defs":{"Address":{"properties":{"city":{"maxLength":16,"title":"City","type":"string"},` +
		`"since":{"format":"date","title":"Since","type":"string"}},"required":["city","since"],"title":"Address","type":"object","additionalProperties":false}},` +
		`"properties":{"name":{"maxLength":12,"title":"Name","type":"string"},"age":{"maximum":120,"minimum":0,"title":"Age","type":"integer"},` +
		`"code":{"pattern":"^[A-Z]{3}-\\d{2}$","type":"string"},"home":{"$ref":"#/$defs/Address"},` +
		`"work":{"anyOf":[{"$ref":"#/$defs/Address"},{"type":"null"}]},"id":{"format":"uuid","title":"Id","type":"string"}},` +
		`"required":["name","age","code","home","work","id"],"title":"Person","type":"object","additionalProperties":false}`
	format, check := schemaFormat(t, "Person", schema)
	date := regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$`)
	uuid := regexp.MustCompile(`^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$`)
	for _, prompt := range []string{"Write the person as JSON.", "Ada lives in Oslo."} {
		g, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "x", MaxCompletionTokens: openai.Int(300),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}, Temperature: openai.Float(0), ResponseFormat: format})
		if err != nil {
			t.Fatal(err)
		}
		text := []byte(g.Choices[0].Message.Content)
		t.Logf("%s: %q", g.Choices[0].FinishReason, text)
		if g.Choices[0].FinishReason != "stop" || !check.Valid(text) {
			t.Fatalf("%s, not a whole value of the schema: %q", g.Choices[0].FinishReason, text)
		}
		type address struct {
			City  string `json:"city"`
			Since string `json:"since"`
		}
		var p struct {
			Age  int      `json:"age"`
			Code string   `json:"code"`
			Home address  `json:"home"`
			ID   string   `json:"id"`
			Name string   `json:"name"`
			Work *address `json:"work"`
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("does not decode into the nested structs: %v: %q", err, text)
		}
		if !date.MatchString(p.Home.Since) || p.Work != nil && !date.MatchString(p.Work.Since) || !uuid.MatchString(p.ID) ||
			utf8.RuneCountInString(p.Name) > 12 || utf8.RuneCountInString(p.Home.City) > 16 || p.Age < 0 || p.Age > 120 ||
			!regexp.MustCompile(`^[A-Z]{3}-\d{2}$`).MatchString(p.Code) {
			t.Errorf("a format or length not kept: %+v", p)
		}
	}
}

// TestOpenAIGoJSONSchema: response_format json_schema through the official
// client: answers are, at every token, a prefix of a value the schema
// accepts, and when they end one such value (encoding/json decodes it into
// the schema's shape: the enum's name, an integer age, a boolean); an
// unsupported keyword is a 400 naming response_format and the keyword;
// streamed equals not streamed.
func TestOpenAIGoJSONSchema(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{})
	c := client(ts, "unused")
	ctx := context.Background()
	const schema = `{"type":"object","properties":{"name":{"enum":["Ada","Bob"]},"age":{"type":"integer"},"admin":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"},"maxItems":2}},"required":["name","age","admin","tags"],"additionalProperties":false}`
	format, check := schemaFormat(t, "user", schema)
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Write the user as JSON.")}
	ended := 0
	for _, fp := range []float64{0, 0.5, 1} {
		g, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, MaxCompletionTokens: openai.Int(120),
			Temperature: openai.Float(0), FrequencyPenalty: openai.Float(fp), ResponseFormat: format})
		if err != nil {
			t.Fatal(err)
		}
		text := []byte(g.Choices[0].Message.Content)
		t.Logf("frequency penalty %v: %s: %q", fp, g.Choices[0].FinishReason, text)
		if !check.Prefix(text) {
			t.Fatalf("not a prefix of a value the schema accepts: %q", text)
		}
		if g.Choices[0].FinishReason != "stop" {
			continue
		}
		ended++
		var u struct {
			Name  string   `json:"name"`
			Age   int      `json:"age"`
			Admin bool     `json:"admin"`
			Tags  []string `json:"tags"`
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&u); err != nil || !check.Valid(text) || (u.Name != "Ada" && u.Name != "Bob") || len(u.Tags) > 2 {
			t.Errorf("finished, not the schema's value (%v): %q", err, text)
		}
	}
	if ended == 0 {
		t.Errorf("no greedy answer ended with a complete value")
	}
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, MaxCompletionTokens: openai.Int(60),
		Temperature: openai.Float(0.8), Seed: openai.Int(3), N: openai.Int(3), ResponseFormat: format})
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range res.Choices {
		text := []byte(ch.Message.Content)
		if !check.Prefix(text) || ch.FinishReason == "stop" && !check.Valid(text) {
			t.Errorf("choice %d (%s): not the schema's: %q", i, ch.FinishReason, text)
		}
	}
	sameStreamed(t, c, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, MaxCompletionTokens: openai.Int(60),
		Temperature: openai.Float(0.8), Seed: openai.Int(3), ResponseFormat: format}, res.Choices[0].Message.Content)
	bad := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
		JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "user", Schema: map[string]any{"type": "string", "not": map[string]any{"const": "a"}}}}}
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, ResponseFormat: bad})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "response_format" || !strings.Contains(apiErr.Message, `"not"`) {
		t.Errorf("a not keyword: %v, want a 400 naming response_format and the keyword", err)
	}
}

// TestOpenAIGoTools: tool calling through the official Go client. With
// tool_choice "required" every answer is a call of an offered tool whose
// arguments its parameters accept (finish_reason "tool_calls", no
// content); a named function is the one called; the streamed call (the
// client's accumulator) is the same call; a history with the call and its
// result (an assistant message with tool_calls, a tool message) is taken;
// with "auto" the demo model answers in text.
func TestOpenAIGoTools(t *testing.T) {
	ts := start(t, engine.Options{}, serve.Config{})
	c := client(ts, "unused")
	ctx := context.Background()
	weather := shared.FunctionDefinitionParam{Name: "get_weather", Description: openai.String("The weather in a city now."),
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
			"city": map[string]any{"type": "string", "maxLength": 20},
			"unit": map[string]any{"enum": []string{"celsius", "fahrenheit"}}}, "required": []string{"city", "unit"}, "additionalProperties": false}}
	clock := shared.FunctionDefinitionParam{Name: "get_time", Parameters: shared.FunctionParameters{"type": "object",
		"properties": map[string]any{"zone": map[string]any{"type": "string", "pattern": "^[A-Z][a-z]{2,12}/[A-Z][a-z]{2,12}$"}}}}
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(weather), openai.ChatCompletionFunctionTool(clock)}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Oslo?")}
	zone := regexp.MustCompile(`^[A-Z][a-z]{2,12}/[A-Z][a-z]{2,12}$`)
	checkCall := func(what string, tc openai.ChatCompletionMessageToolCallUnion) {
		t.Helper()
		fn := tc.Function
		dec := json.NewDecoder(strings.NewReader(fn.Arguments))
		dec.DisallowUnknownFields()
		switch fn.Name {
		case "get_weather":
			var a struct{ City, Unit string }
			if err := dec.Decode(&a); err != nil || utf8.RuneCountInString(a.City) > 20 || a.Unit != "celsius" && a.Unit != "fahrenheit" {
				t.Errorf("%s: get_weather arguments %s (%v)", what, fn.Arguments, err)
			}
		case "get_time":
			var a struct{ Zone string }
			if err := dec.Decode(&a); err != nil || !zone.MatchString(a.Zone) {
				t.Errorf("%s: get_time arguments %s (%v)", what, fn.Arguments, err)
			}
		default:
			t.Errorf("%s: a call of %q, which was not offered", what, fn.Name)
		}
		if tc.ID == "" || tc.Type != "function" {
			t.Errorf("%s: call id %q type %q", what, tc.ID, tc.Type)
		}
	}
	required := openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs, Tools: tools, ToolChoice: required,
		Temperature: openai.Float(0), MaxCompletionTokens: openai.Int(120)})
	if err != nil {
		t.Fatal(err)
	}
	ch := res.Choices[0]
	t.Logf("required: %s %+v", ch.FinishReason, ch.Message.ToolCalls)
	if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || ch.Message.Content != "" {
		t.Fatalf("required: finish %q, %d calls, content %q", ch.FinishReason, len(ch.Message.ToolCalls), ch.Message.Content)
	}
	checkCall("required", ch.Message.ToolCalls[0])
	// a named function, not streamed and streamed
	named := openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"})
	p := openai.ChatCompletionNewParams{Model: "x", Messages: msgs, Tools: tools, ToolChoice: named, Temperature: openai.Float(0), MaxCompletionTokens: openai.Int(120)}
	res, err = c.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	call := res.Choices[0].Message.ToolCalls
	if len(call) != 1 || call[0].Function.Name != "get_time" || res.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("named get_time: %s %+v", res.Choices[0].FinishReason, call)
	}
	checkCall("named", call[0])
	stream := c.Chat.Completions.NewStreaming(ctx, p)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	got := acc.Choices[0].Message.ToolCalls
	if len(got) != 1 || got[0].Function.Name != "get_time" || got[0].Function.Arguments != call[0].Function.Arguments || acc.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("streamed %s %+v, not streamed %+v", acc.Choices[0].FinishReason, got, call)
	}
	// the call and its result in the history
	hist := append(msgs, res.Choices[0].Message.ToParam(), openai.ToolMessage(`{"time": "12:00"}`, call[0].ID))
	res, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: hist, Tools: tools, ToolChoice: required,
		Temperature: openai.Float(0), MaxCompletionTokens: openai.Int(120)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("after a tool result: %+v", res.Choices[0])
	}
	checkCall("after a result", res.Choices[0].Message.ToolCalls[0])
	// auto, with the first token pushed to "{" by logit_bias: the call the model begins is kept well formed
	brace := ts.eng.Tokenizer.Encode("{", false, false)
	pb := openai.ChatCompletionNewParams{Model: "x", Messages: msgs, Tools: tools, Temperature: openai.Float(0), MaxCompletionTokens: openai.Int(120),
		LogitBias: map[string]int64{strconv.Itoa(brace[0]): 100}}
	res, err = c.Chat.Completions.New(ctx, pb)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto, begun with {: %s %+v", res.Choices[0].FinishReason, res.Choices[0].Message.ToolCalls)
	if len(res.Choices[0].Message.ToolCalls) != 1 || res.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("auto begun with {: %s %q", res.Choices[0].FinishReason, res.Choices[0].Message.Content)
	}
	checkCall("auto begun with {", res.Choices[0].Message.ToolCalls[0])
	// auto: the model may answer in text (the demo model does); streamed equals not streamed either way
	pa := openai.ChatCompletionNewParams{Model: "x", Messages: hist, Tools: tools, Temperature: openai.Float(0), MaxCompletionTokens: openai.Int(40)}
	res, err = c.Chat.Completions.New(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto: %s %q %+v", res.Choices[0].FinishReason, res.Choices[0].Message.Content, res.Choices[0].Message.ToolCalls)
	if len(res.Choices[0].Message.ToolCalls) == 0 {
		if res.Choices[0].Message.Content == "" {
			t.Errorf("auto: neither text nor a call")
		}
		sameStreamed(t, c, pa, res.Choices[0].Message.Content)
	} else {
		checkCall("auto", res.Choices[0].Message.ToolCalls[0])
	}
}
