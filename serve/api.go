package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/upg-ai/upg/sample"
)

// apiError is an OpenAI error object with the HTTP status it goes out with.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	// RetryAfter, when > 0, is sent as a Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// invalid is a 400 invalid_request_error about param.
func invalid(param, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...), Type: "invalid_request_error", Param: strp(param)}
}

// unsupported is a 400 for a parameter this server does not implement.
func unsupported(param, format string, a ...any) *apiError {
	e := invalid(param, format, a...)
	e.Code = strp("unsupported_parameter")
	return e
}

// stopList is OpenAI's "stop": a string, an array of strings, or null.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
	// IncludeObfuscation is accepted and ignored (no obfuscation is added).
	IncludeObfuscation *bool `json:"include_obfuscation,omitempty"`
}

type responseFormat struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

// common holds the parameters shared by /v1/chat/completions and
// /v1/completions. Fields that are accepted only to be refused (or
// ignored) are listed too, so that unknown fields can be rejected.
type common struct {
	Model               string             `json:"model"`
	Stream              *bool              `json:"stream"`
	StreamOptions       *streamOptions     `json:"stream_options"`
	MaxTokens           *int               `json:"max_tokens"`
	Temperature         *float64           `json:"temperature"`
	TopP                *float64           `json:"top_p"`
	Seed                *int64             `json:"seed"`
	Stop                stopList           `json:"stop"`
	FrequencyPenalty    *float64           `json:"frequency_penalty"`
	PresencePenalty     *float64           `json:"presence_penalty"`
	N                   *int               `json:"n"`
	LogitBias           map[string]float64 `json:"logit_bias"`
	User                *string            `json:"user"`
	Metadata            json.RawMessage    `json:"metadata"`
	Store               *bool              `json:"store"`
	ServiceTier         *string            `json:"service_tier"`
	Tools               json.RawMessage    `json:"tools"`
	ToolChoice          json.RawMessage    `json:"tool_choice"`
	ParallelToolCalls   *bool              `json:"parallel_tool_calls"`
	Functions           json.RawMessage    `json:"functions"`
	FunctionCall        json.RawMessage    `json:"function_call"`
	ResponseFormat      *responseFormat    `json:"response_format"`
	MaxCompletionTokens *int               `json:"max_completion_tokens"`
	WebSearchOptions    json.RawMessage    `json:"web_search_options"`
	// IgnoreEOS (an extension, as in vLLM) generates past end-of-text
	// tokens, up to max_tokens: for benchmarks.
	IgnoreEOS *bool `json:"ignore_eos"`
	// Accepted and ignored (hints and identifiers with no effect here).
	PromptCacheKey       *string         `json:"prompt_cache_key"`
	PromptCacheRetention *string         `json:"prompt_cache_retention"`
	PromptCacheOptions   json.RawMessage `json:"prompt_cache_options"`
	SafetyIdentifier     *string         `json:"safety_identifier"`
	Verbosity            *string         `json:"verbosity"`
	Moderation           json.RawMessage `json:"moderation"`
}

// chatMessage is one message; Content is a string, an array of text
// parts, or null.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       *string         `json:"name"`
	Refusal    *string         `json:"refusal"`
	ToolCalls  []toolCall      `json:"tool_calls"`   // an assistant message's calls (tools.go)
	ToolCallID *string         `json:"tool_call_id"` // a tool message's: the call it answers
}

type chatRequest struct {
	common
	Messages    []chatMessage `json:"messages"`
	Logprobs    *bool         `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
	// Accepted and ignored.
	ReasoningEffort *string         `json:"reasoning_effort"`
	Modalities      json.RawMessage `json:"modalities"`
	Audio           json.RawMessage `json:"audio"`
	Prediction      json.RawMessage `json:"prediction"`
}

type completionRequest struct {
	common
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int            `json:"logprobs"`
	Echo     *bool           `json:"echo"`
	Suffix   *string         `json:"suffix"`
	BestOf   *int            `json:"best_of"`
}

// decodeJSON reads one JSON object from body into v, strictly: unknown
// fields, wrong types, trailing data and oversized bodies are errors.
func decodeJSON(body io.Reader, v any) *apiError {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &mbe):
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: strp("request_too_large"),
				Message: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit)}
		case errors.As(err, &ute):
			field := strings.TrimPrefix(ute.Field, "common.")
			return invalid(field, "invalid type for %q: expected %s, got JSON %s", field, jsonKind(ute.Type.String()), ute.Value)
		case errors.As(err, &se):
			return invalid("", "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.EOF):
			return invalid("", "empty request body: expected a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("", "malformed JSON: unexpected end of the body")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(f, "unrecognized request argument supplied: %s", f)
		}
		return invalid("", "invalid JSON body: %v", err)
	}
	// Exactly one value.
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: strp("request_too_large"),
				Message: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit)}
		}
		return invalid("", "invalid JSON body: unexpected data after the JSON object")
	}
	return nil
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "serve.stopList"):
		return "an array"
	}
	return "an object"
}

// params are the validated generation parameters of a request.
type params struct {
	stream       bool
	includeUsage bool
	maxTokens    int // 0 = as many as fit
	temperature  float32
	topP         float32
	seed         uint64
	hasSeed      bool
	stop         []string
	logprobs     bool
	topLogprobs  int
	ignoreEOS    bool
	frequency    float32         // frequency_penalty
	presence     float32         // presence_penalty
	logitBias    map[int]float32 // token id → bias; ids checked against the vocabulary by request
	n            int             // choices: sequences generated for the request
	json         bool            // response_format json_object: the output is one JSON object
	schema       json.RawMessage // response_format json_schema's schema (or a tool call's): the output is one value it accepts
	schemaParam  string          // the parameter schema came from (errors name it)
	tools        []tool          // tools the request offers (tools.go)
	toolMode     toolMode        // what tool_choice allows
	toolName     string          // tool_choice's named function
}

// MaxStops is the most stop strings a request may give.
const MaxStops = 16

// MaxChoices is the largest n (choices a request asks for): OpenAI's.
const MaxChoices = 128

// MaxLogitBias is the most tokens a request's logit_bias may give.
const MaxLogitBias = 1024

// validate checks the shared parameters and refuses what this server does
// not implement with a clear 400.
func (c *common) validate() (params, *apiError) {
	p := params{temperature: 1, topP: 1}
	if c.IgnoreEOS != nil {
		p.ignoreEOS = *c.IgnoreEOS
	}
	if c.Stream != nil {
		p.stream = *c.Stream
	}
	if c.StreamOptions != nil {
		if !p.stream {
			return p, invalid("stream_options", "stream_options is only allowed when stream is true")
		}
		p.includeUsage = c.StreamOptions.IncludeUsage
	}
	mt := c.MaxTokens
	param := "max_tokens"
	if c.MaxCompletionTokens != nil {
		if mt != nil && *mt != *c.MaxCompletionTokens {
			return p, invalid("max_completion_tokens", "max_tokens (%d) and max_completion_tokens (%d) disagree; give one", *mt, *c.MaxCompletionTokens)
		}
		mt, param = c.MaxCompletionTokens, "max_completion_tokens"
	}
	if mt != nil {
		if *mt < 1 {
			return p, invalid(param, "%s must be at least 1, got %d", param, *mt)
		}
		p.maxTokens = *mt
	}
	if t := c.Temperature; t != nil {
		if !(*t >= 0 && *t <= 2) {
			return p, invalid("temperature", "temperature must be between 0 and 2, got %v", *t)
		}
		p.temperature = float32(*t)
	}
	if t := c.TopP; t != nil {
		if !(*t >= 0 && *t <= 1) {
			return p, invalid("top_p", "top_p must be between 0 and 1, got %v", *t)
		}
		p.topP = float32(*t)
		if p.topP == 0 {
			p.temperature = 0 // only the most likely token is left
		}
	}
	if c.Seed != nil {
		p.seed, p.hasSeed = uint64(*c.Seed), true
	}
	if len(c.Stop) > MaxStops {
		return p, invalid("stop", "at most %d stop strings are allowed, got %d", MaxStops, len(c.Stop))
	}
	for _, s := range c.Stop {
		if s == "" {
			return p, invalid("stop", "stop strings must not be empty")
		}
	}
	p.stop = c.Stop
	for _, pen := range []struct {
		name string
		v    *float64
		dst  *float32
	}{{"frequency_penalty", c.FrequencyPenalty, &p.frequency}, {"presence_penalty", c.PresencePenalty, &p.presence}} {
		if pen.v != nil {
			if !(*pen.v >= -sample.PenaltyLimit && *pen.v <= sample.PenaltyLimit) {
				return p, invalid(pen.name, "%s must be between %d and %d, got %v", pen.name, -sample.PenaltyLimit, sample.PenaltyLimit, *pen.v)
			}
			*pen.dst = float32(*pen.v)
		}
	}
	p.n = 1
	if c.N != nil {
		if *c.N < 1 || *c.N > MaxChoices {
			return p, invalid("n", "n must be between 1 and %d, got %d", MaxChoices, *c.N)
		}
		p.n = *c.N
	}
	if len(c.LogitBias) > MaxLogitBias {
		return p, invalid("logit_bias", "logit_bias may give at most %d tokens, got %d", MaxLogitBias, len(c.LogitBias))
	}
	for k, v := range c.LogitBias {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			return p, invalid("logit_bias", "logit_bias keys are token ids (integers >= 0), got %q", k)
		}
		if !(v >= -sample.BiasLimit && v <= sample.BiasLimit) {
			return p, invalid("logit_bias", "logit_bias of token %d must be between %d and %d, got %v", id, -sample.BiasLimit, sample.BiasLimit, v)
		}
		if v != 0 {
			if p.logitBias == nil {
				p.logitBias = map[int]float32{}
			}
			p.logitBias[id] = float32(v)
		}
	}
	if !isNullOrEmpty(c.Functions) {
		return p, unsupported("functions", "functions (deprecated) is not supported by this server: use tools")
	}
	if e := p.parseTools(c.Tools, c.ToolChoice); e != nil {
		return p, e
	}
	if !isNullOrEmpty(c.FunctionCall) && !bytes.Equal(bytes.TrimSpace(c.FunctionCall), []byte(`"none"`)) {
		return p, unsupported("function_call", "function_call is not supported by this server")
	}
	if !isNullOrEmpty(c.WebSearchOptions) {
		return p, unsupported("web_search_options", "web search is not supported by this server")
	}
	if rf := c.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object", "json_schema":
			if p.ignoreEOS {
				return p, invalid("ignore_eos", "ignore_eos cannot be combined with response_format %s: the value's end ends the text", rf.Type)
			}
			if rf.Type == "json_object" {
				p.json = true
				break
			}
			var js struct { // its name, description and strict are accepted as they are
				Schema json.RawMessage `json:"schema"`
			}
			if err := json.Unmarshal(rf.JSONSchema, &js); err != nil || isNullOrEmpty(js.Schema) {
				return p, invalid("response_format", "response_format json_schema needs json_schema.schema, a JSON Schema object")
			}
			p.schema, p.schemaParam = js.Schema, "response_format"
		default:
			return p, unsupported("response_format", "response_format %q is not supported by this server (\"text\", \"json_object\" and \"json_schema\" are)", rf.Type)
		}
	}
	if p.toolMode == toolsRequired {
		switch {
		case p.json || p.schema != nil:
			return p, invalid("tool_choice", "tool_choice %s cannot be combined with response_format: the answer is a call", map[bool]string{true: "required", false: "naming a function"}[p.toolName == ""])
		case p.ignoreEOS:
			return p, invalid("ignore_eos", "ignore_eos cannot be combined with a required tool call: the call's end ends the text")
		}
		p.schema, p.schemaParam = p.toolSchema(), "tools"
	}
	return p, nil
}

func isNullOrEmpty(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte("[]"))
}

// messageText returns a message's content: a string, an array of text
// parts (joined), or null (empty).
func messageText(i int, raw json.RawMessage) (string, *apiError) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return "", nil
	}
	var s string
	if t[0] == '"' {
		if err := json.Unmarshal(t, &s); err != nil {
			return "", invalid(fmt.Sprintf("messages[%d].content", i), "invalid content string: %v", err)
		}
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&parts); err != nil {
		return "", invalid(fmt.Sprintf("messages[%d].content", i), "content must be a string or an array of text parts")
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", unsupported(fmt.Sprintf("messages[%d].content[%d].type", i, j), "content parts of type %q are not supported (only \"text\")", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// promptInput is a completion prompt: text, or token ids.
type promptInput struct {
	text   string
	tokens []int
	isIDs  bool
}

// parsePrompt accepts a string, an array of one string, an array of token
// ids, or an array of one array of token ids.
func parsePrompt(raw json.RawMessage) (promptInput, *apiError) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return promptInput{}, invalid("prompt", "prompt is required")
	}
	var s string
	if json.Unmarshal(t, &s) == nil {
		return promptInput{text: s}, nil
	}
	var ss []string
	if json.Unmarshal(t, &ss) == nil {
		if len(ss) != 1 {
			return promptInput{}, unsupported("prompt", "exactly one prompt per request is supported, got %d", len(ss))
		}
		return promptInput{text: ss[0]}, nil
	}
	var ids []int
	if json.Unmarshal(t, &ids) == nil {
		return promptInput{tokens: ids, isIDs: true}, nil
	}
	var idss [][]int
	if json.Unmarshal(t, &idss) == nil {
		if len(idss) != 1 {
			return promptInput{}, unsupported("prompt", "exactly one prompt per request is supported, got %d", len(idss))
		}
		return promptInput{tokens: idss[0], isIDs: true}, nil
	}
	return promptInput{}, invalid("prompt", "prompt must be a string, an array of one string, or an array of token ids")
}

// Response types.

type usage struct {
	PromptTokens        int                 `json:"prompt_tokens"`
	CompletionTokens    int                 `json:"completion_tokens"`
	TotalTokens         int                 `json:"total_tokens"`
	PromptTokensDetails promptTokensDetails `json:"prompt_tokens_details"`
}

// promptTokensDetails reports, as OpenAI does, how many prompt tokens came
// from the (prefix) cache.
type promptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"`
}

type chatMessageOut struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"` // null with tool calls
	Refusal   *string    `json:"refusal"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type chatChoice struct {
	Index        int            `json:"index"`
	Message      chatMessageOut `json:"message"`
	Logprobs     *chatLogprobs  `json:"logprobs"`
	FinishReason string         `json:"finish_reason"`
}

type chatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             usage        `json:"usage"`
}

type chatDelta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type chatChunkChoice struct {
	Index        int           `json:"index"`
	Delta        chatDelta     `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatChunk struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Created           int64             `json:"created"`
	Model             string            `json:"model"`
	SystemFingerprint string            `json:"system_fingerprint"`
	Choices           []chatChunkChoice `json:"choices"`
	Usage             *usage            `json:"usage,omitempty"`
}

// completionLogprobs is the legacy completions log-probability format.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             *usage             `json:"usage,omitempty"`
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

// finiteLogprob keeps JSON encodable values (-Inf becomes a very negative number).
func finiteLogprob(v float32) float64 {
	f := float64(v)
	if math.IsInf(f, -1) || math.IsNaN(f) {
		return -9999
	}
	return f
}
