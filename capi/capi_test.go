package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
