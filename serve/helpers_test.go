package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/internal/enginetest"
	"github.com/upg-ai/upg/serve"
)

const demo = enginetest.Demo

type testServer struct {
	*serve.Server
	URL  string
	eng  *engine.Loaded
	errc chan error
}

// load loads the demo model; a server started on it closes it, other
// callers leave it to the process's end.
func load(t testing.TB, o engine.Options) *engine.Loaded { return enginetest.Open(t, o) }

// start loads the demo model and serves it on 127.0.0.1; the cleanup shuts
// it down and checks that no goroutine was left behind.
func start(t testing.TB, o engine.Options, cfg serve.Config) *testServer {
	t.Helper()
	before, _ := goroutines()
	if o.MaxSeqs == 0 {
		o.MaxSeqs = 16
	}
	if o.Ctx == 0 {
		o.Ctx = 512
	}
	o.PrefixCache = true
	l := load(t, o)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	if cfg.ModelName == "" {
		cfg.ModelName = "miniphi-29m"
	}
	srv := serve.New(l.Engine, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, URL: "http://" + ln.Addr().String(), eng: l, errc: make(chan error, 1)}
	go func() { ts.errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-ts.errc; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
		l.Close()
		http.DefaultClient.CloseIdleConnections()
		noLeaks(t, before)
	})
	return ts
}

// goroutines counts the live goroutines, leaving out process-wide ones
// that packages start once (regexp2's clock; os/signal's loop, which the
// fuzzing engine starts once a fuzz target runs).
func goroutines() (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var kept []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "regexp2.runClock") || strings.Contains(g, "os/signal.loop") {
			continue
		}
		n++
		kept = append(kept, g)
	}
	return n, strings.Join(kept, "\n\n")
}

// noLeaks waits for the goroutine count to come back to what it was.
func noLeaks(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, stacks := goroutines()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines after shutdown, %d before:\n%s", n, before, stacks)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// post sends a JSON body and returns the status, headers and body.
func post(t testing.TB, url, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// wantError checks an OpenAI error object with the status and a message fragment.
func wantError(t testing.TB, what string, status int, body []byte, gotStatus int, fragment string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("%s: body is not an OpenAI error object: %s", what, body)
		return
	}
	if gotStatus != status {
		t.Errorf("%s: status %d, want %d (%s)", what, gotStatus, status, body)
	}
	if !strings.Contains(e.Error.Message, fragment) {
		t.Errorf("%s: message %q does not mention %q", what, e.Error.Message, fragment)
	}
}

// sse reads a stream of server-sent events: the data payloads, and
// whether the last one was [DONE].
func sse(r io.Reader) (events []json.RawMessage, done bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		if done {
			return events, false, io.ErrUnexpectedEOF
		}
		events = append(events, json.RawMessage(bytes.Clone(data)))
	}
	return events, done, sc.Err()
}

// waitIdle waits until the scheduler has nothing running or queued and no
// KV block is referenced by a sequence.
func waitIdle(t testing.TB, s *serve.Server, within time.Duration) serve.Stats {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := s.Stats()
		if st.Running == 0 && st.Waiting == 0 && st.BlocksReferenced == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("not idle after %v: %+v", within, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
