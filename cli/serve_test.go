package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoUpg is the bundled demo model, relative to this package.
const demoUpg = "../models/miniphi-29m.upg"

// syncBuffer collects a child's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `upg serve` on a free port and returns its base URL.
func startServe(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer, string) {
	t.Helper()
	cmd := exec.Command(upgBin, append([]string{"serve", "--port", "0"}, args...)...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	re := regexp.MustCompile(`msg=listening url=(http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return cmd, stderr, m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("upg serve did not start:\n%s", stderr.String())
	return nil, nil, ""
}

// TestServeMatchesRunAndStopsOnSIGTERM: the server's greedy completion is
// what `upg run --temperature 0` prints, its prompt token count is what
// `upg tokenize` prints, and on SIGTERM running streams finish with
// [DONE] and the process exits 0.
func TestServeMatchesRunAndStopsOnSIGTERM(t *testing.T) {
	const prompt = "func (b *Buffer) Write(p []byte) (n int, err error) {"
	cmd, stderr, url := startServe(t, "--model", demoUpg, "--max-batch", "4", "--kv-budget", "64MiB")
	if !strings.Contains(stderr.String(), "msg=\"kv cache\"") || !strings.Contains(stderr.String(), "positions=") {
		t.Errorf("the KV budget is not logged with its positions:\n%s", stderr.String())
	}
	run := upg(t, "run", "--model", demoUpg, "--temperature", "0", "--max-tokens", "32", prompt)
	tok := upg(t, "tokenize", "--model", demoUpg, prompt)
	if run.code != 0 || tok.code != 0 {
		t.Fatalf("%s\n%s", run, tok)
	}
	body := `{"model":"miniphi-29m","prompt":` + strconv.Quote(prompt) + `,"max_tokens":32,"temperature":0}`
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Choices []struct{ Text string } `json:"choices"`
		Usage   struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if len(res.Choices) != 1 || res.Choices[0].Text != run.stdout {
		t.Errorf("served %+v\nupg run %q", res, run.stdout)
	}
	if n := len(strings.Fields(tok.stdout)); res.Usage.PromptTokens != n {
		t.Errorf("usage.prompt_tokens %d, upg tokenize gives %d", res.Usage.PromptTokens, n)
	}

	// Streams in flight when SIGTERM arrives finish.
	type streamEnd struct {
		done bool
		err  error
	}
	ends := make(chan streamEnd, 3)
	started := make(chan struct{}, 3)
	for range 3 {
		go func() {
			body := `{"prompt":"Once upon a time","max_tokens":64,"stream":true,"temperature":0}`
			resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				started <- struct{}{}
				ends <- streamEnd{err: err}
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			first, done := true, false
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") && first {
					first = false
					started <- struct{}{}
				}
				if sc.Text() == "data: [DONE]" {
					done = true
				}
			}
			if first {
				started <- struct{}{}
			}
			ends <- streamEnd{done: done, err: sc.Err()}
		}()
	}
	for range 3 {
		<-started
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if e := <-ends; !e.done || e.err != nil {
			t.Errorf("stream cut by SIGTERM: [DONE] %v, %v", e.done, e.err)
		}
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("upg serve exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("upg serve did not exit after SIGTERM\n%s", stderr.String())
	}
	for _, want := range []string{"msg=\"shutting down\"", "msg=stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("panic:\n%s", stderr.String())
	}
	// The port is closed.
	if _, err := http.Get(url + "/health"); err == nil {
		t.Errorf("still serving after exit")
	}
}

// TestServeFlags: bad flag values are usage errors (exit 2) before any model loads.
func TestServeFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		frag string
	}{
		{[]string{"--kv-budget", "lots"}, "--kv-budget"},
		{[]string{"--max-batch", "0"}, "--max-batch"},
		{[]string{"--port", "http"}, "--port"},
		{[]string{"--max-body", "1XB"}, "--max-body"},
		{[]string{"--device", "tpu"}, "--device"},
		{[]string{"--ctx", "100000"}, "--allow-long-ctx"},
	} {
		wantFail(t, upg(t, append([]string{"serve", "--model", demoUpg}, c.args...)...), 2, c.frag)
	}
}

// TestServePortInUse: a port already taken fails at once, before the model
// loads (no "loading" or "model loaded" line), with the system's reason.
func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	r := upg(t, "serve", "--model", demoUpg, "--port", port)
	wantFail(t, r, 1, "127.0.0.1:"+port, "address already in use")
}
