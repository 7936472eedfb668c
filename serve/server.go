// Package serve is an OpenAI-compatible HTTP server over an engine.Engine:
// POST /v1/chat/completions and /v1/completions (streamed as server-sent
// events or not), GET /v1/models, /health and /metrics (Prometheus).
//
// One scheduler goroutine owns the engine. Handlers tokenize and validate
// a request, queue it, and turn the scheduler's events into JSON; the
// scheduler admits queued requests into the running batch between steps
// (first come, first served), advances every running sequence with one
// Engine.Step per iteration (decode tokens first, then prompt chunks, under
// the engine's token budget), preempts the newest sequences when the KV
// pool runs out (they are recomputed later, with the same output), and
// drops requests whose client went away before the next step.
package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// ModelName is the id /v1/models lists and responses carry. Requests
	// may name any model: there is one.
	ModelName string
	// APIKey, when set, is required as "Authorization: Bearer KEY" on /v1/.
	APIKey string
	// CORSOrigins are the browser origins allowed to call the API ("*" for any).
	CORSOrigins []string
	// MaxQueue is the most requests waiting to join the batch; more get 429 (default 256).
	MaxQueue int
	// MaxBatch is the most sequences in the running batch (default and
	// maximum: the engine's MaxSeqs).
	MaxBatch int
	// MaxBodyBytes limits request bodies (default 4 MiB).
	MaxBodyBytes int64
	// RequestTimeout bounds a request from arrival to its last token (default 10 minutes).
	RequestTimeout time.Duration
	// Logger receives the server's structured logs (default slog.Default()).
	Logger *slog.Logger
}

// Server serves one engine over HTTP.
type Server struct {
	cfg      Config
	e        *engine.Engine
	log      *slog.Logger
	m        *metrics
	sched    *scheduler
	mux      *http.ServeMux
	created  int64
	capacity int    // most positions (prompt + completion) one request may use
	limitBy  string // what sets capacity
	keyHash  [32]byte

	hs       *http.Server
	draining atomic.Bool
	handlers sync.WaitGroup
	stopOnce sync.Once
	shutOnce sync.Once
	shutErr  error
}

// New starts a scheduler over e (which it owns from now on: nothing else
// may call it) and returns the server. Close or Shutdown stops it.
func New(e *engine.Engine, cfg Config) *Server {
	if cfg.ModelName == "" {
		cfg.ModelName = "upg"
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 256
	}
	if cfg.MaxBatch <= 0 || cfg.MaxBatch > e.Config().MaxSeqs {
		cfg.MaxBatch = e.Config().MaxSeqs
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, e: e, log: cfg.Logger, m: newMetrics(), created: time.Now().Unix()}
	s.keyHash = sha256.Sum256([]byte(cfg.APIKey))
	s.capacity, s.limitBy = e.Capacity(), "context window"
	if pos := e.Pool.Blocks() * e.Pool.BlockSize(); pos < s.capacity {
		s.capacity, s.limitBy = pos, "KV cache budget"
	}
	s.m.kvTotal.Set(float64(e.Pool.Blocks()))
	if g, ok := e.Context().Model().Backend().(cuda.GraphReporter); ok {
		s.m.addGraphs(g)
	}
	s.sched = newScheduler(e, s.log, s.m, cfg.MaxQueue, cfg.MaxBatch)
	go s.sched.run()

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/chat/completions", s.instrument("chat", s.handleChat))
	s.mux.HandleFunc("POST /v1/completions", s.instrument("completions", s.handleCompletions))
	s.mux.HandleFunc("GET /v1/models", s.instrument("models", s.handleModels))
	s.mux.HandleFunc("GET /v1/models/{id}", s.instrument("models", s.handleModel))
	s.mux.HandleFunc("GET /health", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", s.instrument("other", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: strp("not_found"),
			Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	}))
	return s
}

// Capacity is the most positions (prompt and completion) one request may use.
func (s *Server) Capacity() int { return s.capacity }

// Stats is the scheduler's state after its last step.
func (s *Server) Stats() Stats { return *s.sched.snap.Load() }

// Handler is the server's HTTP handler (CORS, API key and panic recovery
// around the routes).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "panic", v, "stack", string(debug.Stack()))
				writeError(w, &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error"})
			}
		}()
		if s.cors(w, r) {
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			if s.draining.Load() {
				writeError(w, errShuttingDown)
				return
			}
			if s.cfg.APIKey != "" && !s.authorized(r) {
				writeError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: strp("invalid_api_key"),
					Message: "missing or incorrect API key: send it as 'Authorization: Bearer KEY'"})
				return
			}
		}
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	// Compare digests so that neither the key's length nor its content leaks.
	got := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(got[:], s.keyHash[:]) == 1
}

// cors sets the CORS headers for allowed origins and answers preflight
// requests (returning true when it did).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	allowed := slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin)
	if !allowed {
		return false
	}
	h := w.Header()
	if slices.Contains(s.cfg.CORSOrigins, "*") {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, OpenAI-Organization, OpenAI-Project, X-Stainless-Lang, X-Stainless-Package-Version, X-Stainless-OS, X-Stainless-Arch, X-Stainless-Runtime, X-Stainless-Runtime-Version, X-Stainless-Retry-Count, X-Stainless-Timeout")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// statusWriter records the status code for the request counter; Unwrap
// keeps http.ResponseController (Flush) working through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
	w.ResponseWriter.WriteHeader(c)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		code := sw.code
		if code == 0 {
			code = 499 // the client went away before anything was written
		}
		s.m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":{"message":"response encoding failed","type":"server_error","param":null,"code":null}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := s.Stats()
	status, code := "ok", http.StatusOK
	if s.draining.Load() {
		status, code = "shutting_down", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "model": s.cfg.ModelName, "running": st.Running, "waiting": st.Waiting,
		"kv_blocks_total": st.BlocksTotal, "kv_blocks_free": st.BlocksFree})
}

func (s *Server) modelObject() modelObject {
	return modelObject{ID: s.cfg.ModelName, Object: "model", Created: s.created, OwnedBy: "upg"}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: []modelObject{s.modelObject()}})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.cfg.ModelName {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: strp("model"), Code: strp("model_not_found"),
			Message: fmt.Sprintf("the model %q does not exist; this server serves %q", id, s.cfg.ModelName)})
		return
	}
	writeJSON(w, http.StatusOK, s.modelObject())
}

// readJSON decodes the body strictly, with the size limit and a read deadline.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer rc.SetReadDeadline(time.Time{})
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: strp("request_too_large"),
			Message: fmt.Sprintf("request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, s.cfg.MaxBodyBytes)}
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	return decodeJSON(body, v)
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// admitParams checks a tokenized prompt against the capacity and fills in
// the engine request.
func (s *Server) request(prompt []int, p params, stops []string) (engine.Request, *apiError) {
	if len(prompt) == 0 {
		return engine.Request{}, invalid("prompt", "the prompt is empty (this tokenizer adds no BOS token): give some text")
	}
	vocab := s.e.Model.Config.Vocab
	for _, t := range prompt {
		if t < 0 || t >= vocab {
			return engine.Request{}, invalid("prompt", "token id %d is out of range [0, %d)", t, vocab)
		}
	}
	limit := fmt.Sprintf("%d tokens (the server's %s)", s.capacity, s.limitBy)
	if len(prompt) >= s.capacity {
		e := invalid("messages", "the prompt has %d tokens, but the maximum context length is %s; shorten the prompt", len(prompt), limit)
		e.Code = strp("context_length_exceeded")
		return engine.Request{}, e
	}
	maxTokens := p.maxTokens
	if maxTokens == 0 {
		maxTokens = s.capacity - len(prompt)
	} else if len(prompt)+maxTokens > s.capacity {
		e := invalid("max_tokens", "the maximum context length is %s, but %d tokens were requested (%d in the prompt, %d for the completion); lower max_tokens or shorten the prompt",
			limit, len(prompt)+maxTokens, len(prompt), maxTokens)
		e.Code = strp("context_length_exceeded")
		return engine.Request{}, e
	}
	for id := range p.logitBias {
		if id >= vocab {
			return engine.Request{}, invalid("logit_bias", "logit_bias token id %d is out of range [0, %d)", id, vocab)
		}
	}
	seed := p.seed
	if !p.hasSeed {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			seed = seed<<8 | uint64(x)
		}
	}
	o := sample.Options{Temperature: p.temperature, TopP: p.topP, Seed: seed,
		FrequencyPenalty: p.frequency, PresencePenalty: p.presence, LogitBias: p.logitBias}
	if p.json {
		o.Constraint = s.e.JSON()
	}
	if p.schema != nil {
		c, err := s.e.Schema(p.schema)
		if err != nil {
			if p.schemaParam == "tools" {
				return engine.Request{}, invalid("tools", "a tool's parameters: %v", err)
			}
			return engine.Request{}, invalid("response_format", "response_format json_schema: %v", err)
		}
		o.Constraint = c
	}
	if p.toolMode == toolsAuto && !p.json && p.schema == nil {
		// a call the model begins is kept well formed; tools whose
		// parameters the constraint cannot take leave the answer free
		if c, err := s.e.Schema(p.toolSchema()); err == nil {
			o.Constraint = c.OrText()
		} else {
			s.log.Debug("tool calls not constrained", "reason", err.Error())
		}
	}
	return engine.Request{Prompt: prompt, MaxTokens: maxTokens, Stop: stops, Sampling: o,
		Logprobs: p.logprobs, TopLogprobs: p.topLogprobs, IgnoreEOS: p.ignoreEOS}, nil
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if e := s.readJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	p, e := req.validate()
	if e != nil {
		writeError(w, e)
		return
	}
	if req.Logprobs != nil && *req.Logprobs {
		p.logprobs = true
	}
	if req.TopLogprobs != nil {
		if *req.TopLogprobs < 0 || *req.TopLogprobs > 20 {
			writeError(w, invalid("top_logprobs", "top_logprobs must be between 0 and 20, got %d", *req.TopLogprobs))
			return
		}
		if !p.logprobs && *req.TopLogprobs > 0 {
			writeError(w, invalid("top_logprobs", "top_logprobs requires logprobs to be true"))
			return
		}
		p.topLogprobs = *req.TopLogprobs
	}
	if len(req.Messages) == 0 {
		writeError(w, invalid("messages", "messages must contain at least one message"))
		return
	}
	msgs := make([]chat.Message, 0, len(req.Messages))
	callNames := map[string]string{} // the history's call ids → function names
	for i, m := range req.Messages {
		role := m.Role
		switch role {
		case "system", "user", "assistant":
		case "developer":
			role = "system"
		case "tool":
		case "function":
			writeError(w, unsupported(fmt.Sprintf("messages[%d].role", i), "messages with role \"function\" (deprecated) are not supported: use tool"))
			return
		default:
			writeError(w, invalid(fmt.Sprintf("messages[%d].role", i), "invalid role %q: expected system, developer, user, assistant or tool", m.Role))
			return
		}
		if len(m.ToolCalls) > 0 && role != "assistant" {
			writeError(w, invalid(fmt.Sprintf("messages[%d].tool_calls", i), "only assistant messages have tool_calls"))
			return
		}
		text, e := messageText(i, m.Content)
		if e != nil {
			writeError(w, e)
			return
		}
		switch {
		case role == "tool":
			id := ""
			if m.ToolCallID != nil {
				id = *m.ToolCallID
			}
			role, text = "user", toolResult(id, callNames[id], text)
		case len(m.ToolCalls) > 0:
			for j, c := range m.ToolCalls {
				if c.Function.Name == "" {
					writeError(w, invalid(fmt.Sprintf("messages[%d].tool_calls[%d].function.name", i, j), "a call needs its function's name"))
					return
				}
				callNames[c.ID] = c.Function.Name
			}
			text = historyCalls(text, m.ToolCalls)
		}
		msgs = append(msgs, chat.Message{Role: role, Content: text})
	}
	prompt := s.e.EncodeChat(p.toolMessages(msgs))
	stops := append(s.e.Template.Stops(), p.stop...)
	ereq, e := s.request(prompt, p, stops)
	if e != nil {
		writeError(w, e)
		return
	}
	s.generate(w, r, "chat", ereq, p)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if e := s.readJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	p, e := req.validate()
	if e != nil {
		writeError(w, e)
		return
	}
	switch {
	case req.Echo != nil && *req.Echo:
		writeError(w, unsupported("echo", "echo is not supported by this server"))
		return
	case req.Suffix != nil && *req.Suffix != "":
		writeError(w, unsupported("suffix", "suffix (insertion) is not supported by this server"))
		return
	case req.BestOf != nil && *req.BestOf != 1:
		writeError(w, unsupported("best_of", "best_of other than 1 is not supported by this server"))
		return
	case len(p.tools) > 0 || p.toolName != "":
		writeError(w, unsupported("tools", "tools are for /v1/chat/completions"))
		return
	}
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > 20 {
			writeError(w, invalid("logprobs", "logprobs must be between 0 and 20, got %d", *req.Logprobs))
			return
		}
		p.logprobs, p.topLogprobs = true, *req.Logprobs
	}
	in, e := parsePrompt(req.Prompt)
	if e != nil {
		writeError(w, e)
		return
	}
	prompt := in.tokens
	if !in.isIDs {
		prompt = s.e.EncodePrompt(in.text)
	}
	ereq, e := s.request(prompt, p, p.stop)
	if e != nil {
		writeError(w, e)
		return
	}
	s.generate(w, r, "completions", ereq, p)
}

// finishReason maps the engine's stop reasons to OpenAI's.
func finishReason(r string) string {
	switch r {
	case "length", "context":
		return "length"
	}
	return "stop"
}

var errTimeout = &apiError{Status: http.StatusGatewayTimeout, Type: "server_error", Code: strp("timeout"), Message: "the request timed out"}

// generate queues the request (p.n sequences for n choices) and writes
// its response: one JSON object, or server-sent events.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, kind string, req engine.Request, p params) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	n := p.n
	if n > s.sched.maxQueue {
		writeError(w, invalid("n", "n of %d is more than the server's queue holds (%d requests): ask for fewer choices", n, s.sched.maxQueue))
		return
	}
	jobs := make([]*job, n)
	notify := make(chan struct{}, 1) // one for all the choices' jobs
	for i := range jobs {
		ri := req
		ri.Sampling.Seed += uint64(i) // choice i draws with seed + i
		jobs[i] = newJob(ctx, ri)
		jobs[i].notify = notify
		if e := s.sched.submit(jobs[i]); e != nil {
			cancel() // the scheduler drops the ones already queued
			writeError(w, e)
			return
		}
	}
	chatAPI := kind == "chat"
	out := &responder{s: s, w: w, rc: http.NewResponseController(w), chat: chatAPI, p: p, created: time.Now().Unix(),
		choices: make([]choice, n)}
	if chatAPI {
		out.id = newID("chatcmpl-")
	} else {
		out.id = newID("cmpl-")
	}
	if p.stream {
		if err := out.begin(); err != nil {
			return
		}
	}
	start := time.Now()
	var buf []event
	for left := n; left > 0; {
		select {
		case <-notify:
		case <-ctx.Done():
			// The scheduler drops the jobs (and frees their blocks) before its next step.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
				out.fail(errTimeout)
			}
			s.log.Info("request ended early", "id", out.id, "reason", ctx.Err().Error(), "tokens", out.completion())
			return
		}
		for i, j := range jobs {
			buf = j.take(buf)
			for _, ev := range buf {
				if ev.err != nil {
					out.fail(ev.err)
					return
				}
				if err := out.token(i, ev); err != nil {
					return // the client went away; cancel() drops the jobs
				}
				if ev.done {
					if ev.reason == "timeout" {
						out.fail(errTimeout)
					}
					if ev.reason == "cancelled" || ev.reason == "timeout" {
						return
					}
					left--
					break
				}
			}
		}
	}
	reused := 0
	for i := range out.choices {
		reused += out.choices[i].end.reused
	}
	s.m.cacheHitTokens.Add(float64(reused))
	u := out.usage()
	out.finish(u)
	s.log.Info("request", "id", out.id, "endpoint", kind, "stream", p.stream, "choices", n, "prompt_tokens", u.PromptTokens,
		"cached_tokens", reused, "completion_tokens", u.CompletionTokens, "finish", finishReason(out.choices[0].end.reason),
		"elapsed", time.Since(start).Round(time.Millisecond))
}

// Serve accepts connections on ln until Shutdown; it returns
// http.ErrServerClosed after a shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.hs = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	return s.hs.Serve(ln)
}

// Shutdown stops accepting requests (new ones get 503), lets running
// requests finish until ctx is done, then cancels the rest and stops the
// scheduler. The engine is free for the caller again when it returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.draining.Store(true)
		if s.hs != nil {
			s.shutErr = s.hs.Shutdown(ctx)
		}
		s.Close()
		if errors.Is(s.shutErr, context.DeadlineExceeded) || errors.Is(s.shutErr, context.Canceled) {
			s.shutErr = nil // the remaining requests were cancelled, as asked
		}
	})
	return s.shutErr
}

// Close cancels every queued and running request, closes the connections,
// waits for the handlers, and stops the scheduler.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		s.sched.stop()
		// Let the handlers write their requests' last events, then close
		// the connections of any stuck on a client that does not read.
		done := make(chan struct{})
		go func() {
			s.handlers.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		if s.hs != nil {
			s.hs.Close()
		}
		<-done
	})
}
