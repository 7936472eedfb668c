package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A generation's text crosses buffers of any size whole and never split
// inside a UTF-8 character (unless the buffer is smaller than one).
func TestNextReassemblesTextInSmallBuffers(t *testing.T) {
	pieces := []string{"héllo", " wörld", " 🙂🙂🙂", strings.Repeat("ж", 40), "", "end"}
	want := strings.Join(pieces, "")
	for _, size := range []int{1, 2, 3, 4, 5, 7, 16, 1 << 16} {
		for _, maxPieces := range []int{0, 1, 2} {
			g := &genObj{ch: make(chan string, len(pieces)), done: make(chan struct{}), timer: time.NewTimer(time.Hour)}
			g.timer.Stop()
			for _, p := range pieces {
				g.ch <- p
			}
			close(g.done)
			close(g.ch)
			buf := make([]byte, size)
			var got strings.Builder
			for calls := 0; ; calls++ {
				if calls > 10000 {
					t.Fatal("no end")
				}
				n, fin, err := g.next(time.Millisecond, maxPieces, buf)
				if err != nil {
					t.Fatal(err)
				}
				if size >= utf8.UTFMax && !utf8.Valid(buf[:n]) {
					t.Fatalf("size %d: chunk %q splits a character", size, buf[:n])
				}
				got.Write(buf[:n])
				if fin {
					break
				}
			}
			if got.String() != want {
				t.Fatalf("size %d, maxPieces %d: got %q, want %q", size, maxPieces, got.String(), want)
			}
		}
	}
}

// next returns within its timeout when no text comes, and a failed
// generation's error comes with the end.
func TestNextTimeoutAndError(t *testing.T) {
	g := &genObj{ch: make(chan string, 1), done: make(chan struct{}), timer: time.NewTimer(time.Hour)}
	g.timer.Stop()
	buf := make([]byte, 64)
	for _, mp := range []int{0, 1} {
		start := time.Now()
		n, fin, err := g.next(20*time.Millisecond, mp, buf)
		if n != 0 || fin || err != nil || time.Since(start) > time.Second {
			t.Fatalf("maxPieces %d: n %d fin %v err %v after %v", mp, n, fin, err, time.Since(start))
		}
	}
	g.ch <- "text"
	g.err = errors.New("boom")
	close(g.done)
	close(g.ch)
	n, fin, err := g.next(time.Second, 0, buf)
	if string(buf[:n]) != "text" || !fin || err == nil || err.Error() != "boom" {
		t.Fatalf("got %q fin %v err %v", buf[:n], fin, err)
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
