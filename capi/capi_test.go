package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/engine"
)

const demoModel = "../models/miniphi-29m.upg"

func loadDemo(t *testing.T) *modelObj {
	t.Helper()
	m, err := loadModel(demoModel, loadOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.close() })
	return m
}

func greedy(prompt string, maxTokens int) genRequest {
	zero := float32(0)
	return genRequest{Prompt: &prompt, MaxTokens: &maxTokens, Temperature: &zero}
}

// poll runs g to its end through buffers of size bytes.
func poll(t *testing.T, g *genObj, size, maxPieces int) string {
	t.Helper()
	buf := make([]byte, size)
	var got strings.Builder
	for calls := 0; ; calls++ {
		if calls > 100000 {
			t.Fatal("no end")
		}
		n, fin, err := g.next(time.Second, maxPieces, buf)
		if err != nil {
			t.Fatal(err)
		}
		if size >= utf8.UTFMax && !utf8.Valid(buf[:n]) {
			t.Fatalf("size %d: chunk %q splits a character", size, buf[:n])
		}
		got.Write(buf[:n])
		if fin {
			return got.String()
		}
	}
}

// A generation polled through buffers of any size gives the text of
// engine.Generate (what upg run prints), never split inside a UTF-8
// character (unless the buffer is smaller than one).
func TestPolledGenerationEqualsGenerate(t *testing.T) {
	m := loadDemo(t)
	prompt := "It was a bright cold day in April, and the clocks were"
	var want strings.Builder
	req, err := m.request(greedy(prompt, 48))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.l.Generate(context.Background(), req, func(s string) { want.WriteString(s) }); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 2, 3, 4, 7, 64, 1 << 16} {
		for _, maxPieces := range []int{0, 1, 3} {
			g, err := m.startGen(greedy(prompt, 48))
			if err != nil {
				t.Fatal(err)
			}
			if got := poll(t, g, size, maxPieces); got != want.String() {
				t.Fatalf("size %d, maxPieces %d: got %q, want %q", size, maxPieces, got, want.String())
			}
			st, err := g.finishedStats()
			if err != nil || st.GeneratedTokens != 48 || st.StopReason != "length" {
				t.Fatalf("stats %+v, %v", st, err)
			}
		}
	}
	if len(m.gens) != 0 {
		t.Fatalf("%d generations still registered", len(m.gens))
	}
}

// A second generation on a model waits for the first (its polls time out
// empty), and a cancelled one ends with stop reason "cancelled".
func TestGenerationsTakeTurnsAndCancel(t *testing.T) {
	m := loadDemo(t)
	ignore := greedy("package main", 0)
	ignore.IgnoreEOS = true
	a, err := m.startGen(ignore)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.startGen(greedy("package main", 8))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	if n, fin, err := a.next(time.Second, 1, buf); n == 0 || fin || err != nil {
		t.Fatalf("a: n %d fin %v err %v", n, fin, err)
	}
	start := time.Now()
	if n, fin, err := b.next(30*time.Millisecond, 1, buf); n != 0 || fin || err != nil || time.Since(start) > time.Second {
		t.Fatalf("b while a runs: n %d fin %v err %v after %v", n, fin, err, time.Since(start))
	}
	a.cancel()
	if n, fin, err := a.next(time.Second, 0, buf); !fin || err != nil {
		t.Fatalf("cancelled a: n %d fin %v err %v", n, fin, err)
	}
	if st, _ := a.finishedStats(); st.StopReason != "cancelled" {
		t.Fatalf("a stopped for %q", st.StopReason)
	}
	if got := poll(t, b, 256, 0); got == "" {
		t.Fatal("b produced nothing")
	}
	// Closing the model ends a generation that owns it.
	c, _ := m.startGen(ignore)
	c.next(time.Second, 1, buf)
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if _, fin, err := c.next(time.Second, 1, buf); !fin || err != nil {
		t.Fatalf("c after close: fin %v err %v", fin, err)
	}
	if _, err := m.startGen(ignore); classify(err, codeError) != codeClosed {
		t.Fatalf("start after close: %v", err)
	}
}

func TestClassify(t *testing.T) {
	_, statErr := os.Stat("/nonexistent/file")
	cases := []struct {
		err      error
		fallback int
		want     int
	}{
		{argErrorf("x"), codeError, codeArgument},
		{fmt.Errorf("open model: %w", statErr), codeFormat, codeNotFound},
		{&fs.PathError{Op: "open", Path: "p", Err: fs.ErrPermission}, codeFormat, codeIO},
		{&fs.PathError{Op: "read", Path: "p", Err: errors.New("eio")}, codeError, codeIO},
		{errors.New("corrupt: bad magic"), codeFormat, codeFormat},
		{errClosed, codeError, codeClosed},
		{fmt.Errorf("wrapped: %w", errCancelled), codeError, codeCancelled},
	}
	for _, c := range cases {
		if got := classify(c.err, c.fallback); got != c.want {
			t.Errorf("classify(%v, %d) = %d, want %d", c.err, c.fallback, got, c.want)
		}
	}
}

// A cancelled job stops at its next progress report, running its deferred
// cleanups; a job that finishes reports its result as JSON.
func TestJobCancelAndResult(t *testing.T) {
	cleaned := make(chan bool, 1)
	j := startJob(func(progress func(int64, int64, string), cancelled func() bool) (any, error) {
		defer func() { cleaned <- true }()
		for i := int64(0); ; i++ {
			progress(i, 1000, "working")
			time.Sleep(time.Millisecond)
		}
	})
	for j.wait(10*time.Millisecond).Updates == 0 {
	}
	j.cancel.Store(true)
	for !j.wait(time.Second).Finished {
	}
	if _, err := j.outcome(); !errors.Is(err, errCancelled) {
		t.Fatalf("cancelled job: %v", err)
	}
	if !<-cleaned {
		t.Fatal("no cleanup")
	}
	j = startJob(func(progress func(int64, int64, string), _ func() bool) (any, error) {
		progress(1, 1, "done")
		return map[string]int{"answer": 42}, nil
	})
	st := j.wait(10 * time.Second)
	res, err := j.outcome()
	if !st.Finished || err != nil || string(res) != `{"answer":42}` || st.Stage != "done" {
		t.Fatalf("state %+v result %s err %v", st, res, err)
	}
	j = startJob(func(func(int64, int64, string), func() bool) (any, error) { panic("bug") })
	j.wait(10 * time.Second)
	if _, err := j.outcome(); err == nil || !strings.Contains(err.Error(), "internal error: bug") {
		t.Fatalf("panicking job: %v", err)
	}
}

func TestHandles(t *testing.T) {
	n := liveHandles()
	h := newHandle(&jobObj{})
	if _, err := lookup[*modelObj](h); classify(err, codeError) != codeClosed {
		t.Fatalf("a job handle looked up as a model: %v", err)
	}
	if _, err := release[*jobObj](h); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup[*jobObj](h); err == nil {
		t.Fatal("released handle still valid")
	}
	if _, err := lookup[*jobObj](0); err == nil {
		t.Fatal("handle 0 valid")
	}
	if liveHandles() != n {
		t.Fatal("handle leaked")
	}
}

// TestPlacement: the load options' device and gpu_layers map onto the
// engine's as upg run's --device and --gpu-layers do, and bad values are
// argument errors naming the option.
func TestPlacement(t *testing.T) {
	for _, c := range []struct {
		device, layers string // layers: gpu_layers' JSON ("" = absent)
		wantDev        string
		wantN          int
		wantErr        string
	}{
		{"", "", "auto", 0, ""},
		{"CUDA", "", "cuda", 0, ""},
		{"cpu", "null", "cpu", 0, ""},
		{"cuda", "0", "cpu", 0, ""}, // no layer on the GPU: the CPU, no driver needed
		{"auto", "5", "auto", 5, ""},
		{"cuda", `"auto"`, "cuda", engine.GPULayersAuto, ""},
		{"tpu", "", "", 0, `device must be "auto", "cpu" or "cuda", not "tpu"`},
		{"cpu", "3", "", 0, `gpu_layers 3 needs device "cuda" or "auto"`},
		{"cpu", `"auto"`, "", 0, `gpu_layers "auto" needs device`},
		{"cuda", "-1", "", 0, "gpu_layers must be None (every layer), a number of layers ≥ 0 or \"auto\", not -1"},
		{"cuda", `"most"`, "", 0, `not "most"`},
		{"cuda", "1.5", "", 0, "not 1.5"},
	} {
		o := loadOptions{Device: c.device}
		if c.layers != "" {
			o.GPULayers = []byte(c.layers)
		}
		dev, n, err := o.placement()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || classify(err, codeFormat) != codeArgument {
				t.Errorf("%q, %s: %v, want an argument error with %q", c.device, c.layers, err, c.wantErr)
			}
			continue
		}
		if err != nil || dev != c.wantDev || n != c.wantN {
			t.Errorf("%q, %s: %q, %d, %v; want %q, %d", c.device, c.layers, dev, n, err, c.wantDev, c.wantN)
		}
	}
}

// TestDeviceUnusable: a GPU asked for on a machine without one is its own
// code (UPG_ERR_DEVICE, Python's DeviceError), message the backend's.
func TestDeviceUnusable(t *testing.T) {
	if cuda.Probe() == nil {
		t.Skip("an NVIDIA GPU is usable here: the no-GPU error cannot be produced")
	}
	_, err := loadModel(demoModel, loadOptions{Device: "cuda", Threads: 1})
	if err == nil || classify(err, codeFormat) != codeDevice || !strings.Contains(err.Error(), "cuda: ") {
		t.Fatalf("device cuda without a GPU: %v (code %d), want code %d", err, classify(err, codeFormat), codeDevice)
	}
	// The backend's advice in the C ABI's option names, not the command line's flags.
	if msg := err.Error(); !strings.Contains(msg, `use device "cpu"`) || strings.Contains(msg, "--") {
		t.Errorf("device cuda without a GPU: %q, want the advice as `use device \"cpu\"`", msg)
	}
	m, err := loadModel(demoModel, loadOptions{Device: "auto", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if info, _ := m.info(); !strings.HasPrefix(info.Device, "cpu/") || info.GPULayers != 0 {
		t.Errorf("auto without a GPU: device %q, %d GPU layers", info.Device, info.GPULayers)
	}
}

func TestOptionNames(t *testing.T) {
	err := abiError{fmt.Errorf("wrapped: %w", engine.ErrDevice)}
	if !errors.Is(err, engine.ErrDevice) || classify(err, codeFormat) != codeDevice {
		t.Errorf("abiError hides its cause: %v", err)
	}
	for in, want := range map[string]string{
		"needs 9.1 GiB; --gpu-layers 26 fits (...), or try --device cpu; or use --kv-cache f16": `needs 9.1 GiB; gpu_layers 26 fits (...), or try device "cpu"; or use kv_cache f16`,
		"2.070 bits per weight, over the 0.500 asked: raise --target-bpw":                       "2.070 bits per weight, over the 0.500 asked: raise target_bpw",
		"--calib-tokens 100 with --calib x.txt (--ctx 64)":                                      "calib_tokens 100 with calib x.txt (ctx 64)",
	} {
		if got := (abiError{errors.New(in)}).Error(); got != want {
			t.Errorf("%q\nwant %q", got, want)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for v, want := range map[string]slog.Level{"": slog.LevelWarn, "debug": slog.LevelDebug, "INFO": slog.LevelInfo, "error": slog.LevelError, "loud": slog.LevelWarn} {
		if got := logLevel(v); got != want {
			t.Errorf("%s=%q: %v, want %v", LogEnv, v, got, want)
		}
	}
}

// finish waits for a job and decodes its result into v.
func finish(t *testing.T, j *jobObj, v any) error {
	t.Helper()
	for !j.wait(time.Second).Finished {
	}
	res, err := j.outcome()
	if err == nil {
		err = json.Unmarshal(res, v)
	}
	return err
}

// A batch generation gives each request the text a generation of it alone
// gives (greedy, and sampled with its own seed), in the requests' order,
// with more requests than max_batch (the rest join as others end); it
// counts tokens and frees every block; it takes its turn after a
// running generation, and a chat turn after it starts afresh.
func TestBatchEqualsAlone(t *testing.T) {
	m, err := loadModel(demoModel, loadOptions{Threads: 1, MaxBatch: 3, Ctx: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if info, _ := m.info(); info.MaxBatch != 3 || info.KVTokens < 3*256 {
		t.Fatalf("max_batch %d, kv_positions %d: want 3 and at least 3 contexts", info.MaxBatch, info.KVTokens)
	}
	prompts := []string{"package main", "It was a dark and stormy night", "func (b *Buffer) Write(", "The old man", "type Reader interface {"}
	var reqs []genRequest
	for i, p := range prompts {
		r := greedy(p, 20+5*i)
		if i%2 == 1 {
			temp, seed := float32(0.9), uint64(40+i)
			r.Temperature, r.Seed = &temp, &seed
		}
		reqs = append(reqs, r)
	}
	var want []string
	for _, r := range reqs {
		g, err := m.startGen(r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, poll(t, g, 1<<16, 0))
	}
	// a generation holds the model when the batch starts: the batch waits for it
	g, err := m.startGen(greedy("In the beginning", 8))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	if _, _, err := g.next(time.Second, 1, buf); err != nil {
		t.Fatal(err)
	}
	j, err := m.startBatch(batchRequest{Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if st := j.wait(200 * time.Millisecond); st.Finished || st.Stage != "waiting for another generation" {
		t.Errorf("the batch while a generation holds the model: %+v", st)
	}
	poll(t, g, 1<<16, 0)
	var res batchResult
	if err := finish(t, j, &res); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, r := range res.Results {
		if r.Text != want[i] {
			t.Errorf("request %d: batched %q, alone %q", i, r.Text, want[i])
		}
		if r.Stats.GeneratedTokens != *reqs[i].MaxTokens && r.Stats.StopReason != "eos" {
			t.Errorf("request %d: %d tokens, stopped by %q", i, r.Stats.GeneratedTokens, r.Stats.StopReason)
		}
		total += r.Stats.GeneratedTokens
	}
	if len(res.Results) != len(reqs) || res.GeneratedTokens != total || res.MostTogether != 3 || res.TokS <= 0 {
		t.Errorf("result: %d results, %d tokens (requests' sum %d), %d together (want 3), %.1f tok/s", len(res.Results), res.GeneratedTokens, total, res.MostTogether, res.TokS)
	}
	if st := j.wait(0); st.Done != int64(total) || st.Total != int64(total) || st.Stage != "generating" {
		t.Errorf("last progress %+v, want done = total = %d", st, total)
	}
	if p := m.l.Pool; p.FreeBlocks() != p.Blocks() {
		t.Errorf("%d of %d blocks free after the batch", p.FreeBlocks(), p.Blocks())
	}
	g, err = m.startGen(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := poll(t, g, 1<<16, 0); got != want[0] {
		t.Errorf("a generation after the batch: %q, want %q", got, want[0])
	}
}

// A batch's bad request is refused before anything runs, named by its
// index; a cancelled batch ends "cancelled" with every block free; closing
// the model stops a running batch.
func TestBatchErrors(t *testing.T) {
	m := loadDemo(t)
	bad := greedy("x", 4)
	k := -1
	bad.TopK = &k
	_, err := m.startBatch(batchRequest{Requests: []genRequest{greedy("a", 4), bad}})
	if classify(err, codeError) != codeArgument || !strings.Contains(err.Error(), "request 1: top_k -1") {
		t.Errorf("bad request: code %d, %v", classify(err, codeError), err)
	}
	if _, err := m.startBatch(batchRequest{}); classify(err, codeError) != codeArgument {
		t.Errorf("no requests: %v", err)
	}
	long := greedy("package main", 2000)
	j, err := m.startBatch(batchRequest{Requests: []genRequest{long, long}})
	if err != nil {
		t.Fatal(err)
	}
	for j.wait(50*time.Millisecond).Done == 0 {
	}
	j.cancel.Store(true)
	var res batchResult
	if err := finish(t, j, &res); !errors.Is(err, errCancelled) {
		t.Errorf("cancelled batch: %v", err)
	}
	if p := m.l.Pool; p.FreeBlocks() != p.Blocks() {
		t.Errorf("%d of %d blocks free after the cancelled batch", p.FreeBlocks(), p.Blocks())
	}
	j, err = m.startBatch(batchRequest{Requests: []genRequest{long}})
	if err != nil {
		t.Fatal(err)
	}
	for j.wait(50*time.Millisecond).Done == 0 {
	}
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if err := finish(t, j, &res); !errors.Is(err, errCancelled) {
		t.Errorf("batch of a closed model: %v", err)
	}
	if _, err := m.startBatch(batchRequest{Requests: []genRequest{long}}); !errors.Is(err, errClosed) {
		t.Errorf("batch on a closed model: %v", err)
	}
}

// A batch on a model loaded for one sequence (max_batch 1: a pool of one
// context) runs after a chat turn whose cached conversation fills that
// pool: the batch takes the whole pool.
func TestBatchAfterConversation(t *testing.T) {
	m, err := loadModel(demoModel, loadOptions{Threads: 1, Ctx: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	g, err := m.startGen(greedy("It was a dark and stormy night", 40))
	if err != nil {
		t.Fatal(err)
	}
	poll(t, g, 1<<16, 0)
	if p := m.l.Pool; p.FreeBlocks() != 0 {
		t.Fatalf("%d of %d blocks free after the chat turn: the test wants the conversation to hold them all", p.FreeBlocks(), p.Blocks())
	}
	j, err := m.startBatch(batchRequest{Requests: []genRequest{greedy("package main", 40), greedy("The old man", 40)}})
	if err != nil {
		t.Fatal(err)
	}
	var res batchResult
	if err := finish(t, j, &res); err != nil {
		t.Fatal(err)
	}
	if res.GeneratedTokens == 0 || res.MostTogether != 1 {
		t.Errorf("%d tokens, %d together", res.GeneratedTokens, res.MostTogether)
	}
}
